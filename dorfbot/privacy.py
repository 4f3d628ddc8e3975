"""Privacy: ``!meinedaten`` (export), ``!vergessen`` (erasure) and retention.

Both commands span every plugin through the hooks
:meth:`~dorfbot.plugin.Plugin.export_user_data`,
:meth:`~dorfbot.plugin.Plugin.forget_user` and
:meth:`~dorfbot.plugin.Plugin.purge_items`, so a new plugin takes part by
implementing them. The core's own tables (items, blocks, moderation log, the
record of sent messages) are handled here.

The erasure is one database transaction across the core and every plugin: a
plugin that fails its part rolls the whole erasure back. The messages to
redact are queued in ``privacy_redactions`` inside that transaction and sent
after the commit; a queue left by a crash is worked off at the next start and
every few minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from dorfbot import items as states
from dorfbot.commands import command
from dorfbot.context import CommandContext
from dorfbot.i18n import Translator
from dorfbot.items import Item, chunks, marks
from dorfbot.matrix import MatrixError
from dorfbot.moderation import pseudonym
from dorfbot.plugin import Plugin
from dorfbot.storage import sql_script

CONFIRM_SECONDS = 600
CONFIRM_WORDS = ("ja", "yes", "bestaetigen", "bestätigen", "confirm")
FORGOTTEN = "(gelöscht)"
CLOSED_STATES = (
    states.DONE,
    states.EXPIRED,
    states.REMOVED,
    states.REJECTED,
    states.DELETED,
    states.CANCELLED,
)
#: Items purged in one transaction by the retention job (one by one if a batch fails).
PURGE_BATCH = 100
#: Redactions tried per round, and how often one is tried before it is given up.
REDACT_BATCH = 500
REDACT_ATTEMPTS = 20
REDACT_EVERY_SECONDS = 300

MIGRATIONS = [
    sql_script(
        """CREATE TABLE privacy_redactions (
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            queued_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (room_id, event_id)
        )""",
    ),
]


class PrivacyPlugin(Plugin):
    """Data export and erasure for every plugin; purging of old closed items."""

    name = "privacy"
    defaults = {"retention_days": 180}
    migrations = MIGRATIONS

    def __init__(self) -> None:
        self._pending_forget: dict[str, float] = {}
        self._redacting = asyncio.Lock()

    async def start(self) -> None:
        self.scheduler.every("retention", 6 * 3600, self.purge_closed)
        # Redactions queued by an erasure the bot did not finish (it stopped in between).
        self.scheduler.at(
            "redactions-resume", datetime.now(UTC) + timedelta(seconds=1), self.send_redactions
        )
        self.scheduler.every("redactions", REDACT_EVERY_SECONDS, self.send_redactions)

    def _others(self) -> list[Plugin]:
        return [p for p in self.bot.plugins.values() if p is not self]

    # ----------------------------------------------------------------- export

    async def collect(self, user_id: str, t: Translator | None = None) -> dict[str, Any]:
        """Everything stored about ``user_id``, by plugin.

        Only what is about the caller: moderators who acted on the caller's
        items, blocks or log entries appear as "die Moderation" (as in the
        replies), and a moderator's own decisions list the number and the
        outcome, never the other person's item or ID.
        """
        t = t or self.bot.translator(None)
        moderation = t.plain("privacy.moderation")
        db = self.bot.db
        own = [
            Item.from_row(r)
            for r in await db.fetchall(
                "SELECT * FROM items WHERE author = ? ORDER BY id", (user_id,)
            )
        ]
        decided = await db.fetchall(
            "SELECT village, number, kind, state, decided_at, reason FROM items "
            "WHERE decided_by = ? AND author != ? ORDER BY id",
            (user_id, user_id),
        )
        names = (user_id, pseudonym(user_id))
        blocked = await db.fetchall(
            "SELECT village, until, reason, created_at FROM blocks WHERE user_id IN (?, ?)", names
        )
        blocked_by = await db.fetchall(
            "SELECT village, until, reason, created_at FROM blocks WHERE blocked_by = ?",
            (user_id,),
        )
        log = await db.fetchall(
            "SELECT village, ts, actor, action, number, target_user, reason FROM modlog "
            "WHERE actor = ? OR target_user IN (?, ?) ORDER BY ts, id",
            (user_id, *names),
        )
        messages = await self.bot.moderation.items.sent_about(user_id, [i.id for i in own])
        data: dict[str, Any] = {
            "user_id": user_id,
            "exported_at": _iso(time.time()),
            "core": {
                "items": [_own_item(item, moderation) for item in own],
                "decisions": [{**dict(r), "decided_at": _iso(r["decided_at"])} for r in decided],
                "blocks": [
                    {**dict(r), "blocked_by": moderation, **_times(r, "until", "created_at")}
                    for r in blocked
                ],
                "blocks_by_you": [
                    {**dict(r), **_times(r, "until", "created_at")} for r in blocked_by
                ],
                "moderation_log": [
                    {
                        **dict(r),
                        "ts": _iso(r["ts"]),
                        "actor": user_id if r["actor"] == user_id else moderation,
                        "target_user": user_id if r["target_user"] in names else None,
                    }
                    for r in log
                ],
                "messages_about_you": [{"room_id": room, "event_id": ev} for room, ev in messages],
            },
        }
        for plugin in self._others():
            exported = await plugin.export_user_data(user_id)
            if exported:
                data[plugin.name] = exported
        return data

    @command("meinedaten", "mydata", needs_village=False, examples=("!meinedaten",))
    async def my_data(self, ctx: CommandContext) -> None:
        data = await self.collect(ctx.sender, ctx.t)
        payload = json.dumps(data, ensure_ascii=False, indent=2, default=str).encode()
        room_id = await self.bot.direct.send_file(
            ctx.sender,
            payload,
            "dorfbot-meine-daten.json",
            "application/json",
            key=ctx.key("mydata-file"),
            room_name=ctx.t.plain("privacy.dm_name"),
        )
        await ctx.answer("privacy.sent" if room_id != ctx.room_id else "privacy.sent_here")

    # ------------------------------------------------------------------ forget

    @command("vergessen", "forgetme", needs_village=False, examples=("!vergessen",))
    async def forget_me(self, ctx: CommandContext) -> None:
        word = ctx.args.text.strip().lower()
        asked = self._pending_forget.get(ctx.sender)
        if word not in CONFIRM_WORDS or asked is None or time.time() - asked > CONFIRM_SECONDS:
            self._pending_forget[ctx.sender] = time.time()
            await ctx.answer(
                "privacy.confirm",
                prefix=self.bot.config.command_prefix,
                minutes=CONFIRM_SECONDS // 60,
            )
            return
        del self._pending_forget[ctx.sender]
        dms = self.bot.direct.rooms_of(ctx.sender)
        try:
            redacted = await self.forget(ctx.sender)
        except Exception:
            self.log.exception("erasure failed and was rolled back")
            self.bot.metrics.errors.inc()
            await ctx.answer("privacy.forget_failed")
            return
        await ctx.answer("privacy.forgotten", redacted=redacted)
        # No record of the DM is kept, so the bot leaves it (after answering there).
        for room_id in dms:
            try:
                await self.bot.matrix.leave(room_id)
            except Exception as exc:
                self.log.warning("could not leave DM %s: %s", room_id, exc)

    async def forget(self, user_id: str) -> int:
        """Erase ``user_id`` everywhere; returns how many messages were redacted now.

        One transaction: the core's and every plugin's rows go together or not
        at all. The bot's messages carrying the person's content are queued in
        the same transaction and redacted after it committed.
        """
        db = self.bot.db
        store = self.bot.moderation.items
        async with db.transaction():
            rows = await db.fetchall("SELECT id FROM items WHERE author = ?", (user_id,))
            ids = [r["id"] for r in rows]
            messages = dict.fromkeys(await store.sent_about(user_id, ids))
            # Messages sent before they were recorded: the item's columns still name them.
            for chunk in chunks(ids):
                for r in await db.fetchall(
                    "SELECT queue_room, queue_event, published_room, published_event FROM items "
                    f"WHERE id IN ({marks(chunk)})",
                    chunk,
                ):
                    for room, event in ((r[0], r[1]), (r[2], r[3])):
                        if room and event:
                            messages[(room, event)] = None
            now = time.time()
            await db.executemany(
                "INSERT INTO privacy_redactions (room_id, event_id, queued_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(room, event, now) for room, event in messages],
            )
            await store.forget_sent(user_id, ids)
            for plugin in self._others():
                await self._hook(plugin, "forget_user", user_id)
            await self.bot.direct.forget_user(user_id)
            if ids:
                for plugin in self._others():
                    await self._hook(plugin, "purge_items", ids)
            for chunk in chunks(ids):
                await db.execute(f"DELETE FROM items WHERE id IN ({marks(chunk)})", chunk)
            await db.execute(
                "UPDATE items SET decided_by = ? WHERE decided_by = ?", (FORGOTTEN, user_id)
            )
            # A block outlives the erasure (abuse prevention), under a pseudonym only.
            await db.execute(
                "UPDATE blocks SET user_id = ? WHERE user_id = ?", (pseudonym(user_id), user_id)
            )
            await db.execute(
                "UPDATE blocks SET blocked_by = ? WHERE blocked_by = ?", (FORGOTTEN, user_id)
            )
            await db.execute("UPDATE modlog SET actor = ? WHERE actor = ?", (FORGOTTEN, user_id))
            await db.execute(
                "UPDATE modlog SET target_user = ? WHERE target_user = ?", (FORGOTTEN, user_id)
            )
        await self.bot.direct.forgotten(user_id)
        self.log.info("erased a user: %d items, %d messages to redact", len(ids), len(messages))
        done = await self.send_redactions()
        return len(done & set(messages))

    async def _hook(self, plugin: Plugin, hook: str, *args: Any) -> None:
        try:
            await getattr(plugin, hook)(*args)
        except Exception:
            self.log.error("plugin %s failed in %s; the erasure is rolled back", plugin.name, hook)
            raise

    async def send_redactions(self) -> set[tuple[str, str]]:
        """Redact the queued messages and their edits; returns the (room, event) done.

        A message stays queued until it is redacted (retried every few minutes,
        given up after ``REDACT_ATTEMPTS`` failures, with an error in the log).
        Edits go first: a redacted original still has its edits, with the text.
        """
        async with self._redacting:
            rows = await self.bot.db.fetchall(
                "SELECT room_id, event_id, attempts FROM privacy_redactions "
                "ORDER BY queued_at, rowid LIMIT ?",
                (REDACT_BATCH,),
            )
            done: set[tuple[str, str]] = set()
            for row in rows:
                room, event = row["room_id"], row["event_id"]
                try:
                    for edit in await self.bot.matrix.edits_of(room, event):
                        await self.bot.matrix.redact(room, edit, key=f"forget:{room}:{edit}")
                    await self.bot.matrix.redact(room, event, key=f"forget:{room}:{event}")
                except MatrixError as exc:
                    await self._redaction_failed(room, event, row["attempts"] + 1, exc)
                    continue
                await self.bot.db.execute(
                    "DELETE FROM privacy_redactions WHERE room_id = ? AND event_id = ?",
                    (room, event),
                )
                done.add((room, event))
            return done

    async def _redaction_failed(self, room: str, event: str, attempts: int, exc: Exception) -> None:
        if attempts >= REDACT_ATTEMPTS:
            self.log.error(
                "giving up redacting %s in %s after %d attempts: %s", event, room, attempts, exc
            )
            await self.bot.db.execute(
                "DELETE FROM privacy_redactions WHERE room_id = ? AND event_id = ?", (room, event)
            )
            return
        self.log.warning("could not redact %s in %s (retrying later): %s", event, room, exc)
        await self.bot.db.execute(
            "UPDATE privacy_redactions SET attempts = ? WHERE room_id = ? AND event_id = ?",
            (attempts, room, event),
        )

    # --------------------------------------------------------------- retention

    async def purge_closed(self) -> int:
        """Delete closed items older than ``retention_days``; returns how many.

        Batches of ``PURGE_BATCH`` items, each one transaction with every
        plugin's rows; a batch that fails is retried item by item, so one item
        a plugin cannot purge never keeps the others.
        """
        days = float(self.config.get("retention_days", 180))
        cutoff = time.time() - days * 86400
        rows = await self.bot.db.fetchall(
            f"SELECT id FROM items WHERE state IN ({marks(CLOSED_STATES)}) "
            "AND COALESCE(closed_at, created_at) < ? ORDER BY id",
            (*CLOSED_STATES, cutoff),
        )
        purged = 0
        for batch in chunks([r["id"] for r in rows], PURGE_BATCH):
            try:
                await self._purge(list(batch))
                purged += len(batch)
                continue
            except Exception:
                self.log.warning("retention: a batch failed; purging its items one by one")
            for item_id in batch:
                try:
                    await self._purge([item_id])
                    purged += 1
                except Exception:
                    self.log.exception("retention: item %s could not be purged", item_id)
        if purged:
            self.log.info("retention: purged %d closed items", purged)
        return purged

    async def _purge(self, ids: list[int]) -> None:
        db = self.bot.db
        async with db.transaction():
            for plugin in self._others():
                await plugin.purge_items(ids)
            await self.bot.moderation.items.forget_sent(None, ids)
            await db.execute(f"DELETE FROM items WHERE id IN ({marks(ids)})", ids)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _times(row: Any, *keys: str) -> dict[str, str | None]:
    return {key: _iso(row[key]) for key in keys}


TIMES = ("created_at", "published_at", "closed_at", "expires_at", "decided_at", "reminded_at")


def _own_item(item: Item, moderation: str) -> dict[str, Any]:
    """One of the caller's items for the export, with readable times; the deciding
    moderator is not named."""
    values = dict(item.__dict__)
    for key in TIMES:
        values[key] = _iso(values[key])
    if values.get("decided_by"):
        values["decided_by"] = moderation
    return values
