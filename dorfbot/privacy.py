"""Privacy: ``!meinedaten`` (export), ``!vergessen`` (erasure) and retention.

Both commands span every plugin through the hooks
:meth:`~dorfbot.plugin.Plugin.export_user_data` and
:meth:`~dorfbot.plugin.Plugin.forget_user`, so a new plugin takes part by
implementing them. The core's own tables (items, blocks, moderation log) are
handled here.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from dorfbot import items as states
from dorfbot.commands import command
from dorfbot.context import CommandContext
from dorfbot.items import Item
from dorfbot.moderation import pseudonym
from dorfbot.plugin import Plugin

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


class PrivacyPlugin(Plugin):
    """Data export and erasure for every plugin; purging of old closed items."""

    name = "privacy"
    defaults = {"retention_days": 180}

    def __init__(self) -> None:
        self._pending_forget: dict[str, float] = {}

    async def start(self) -> None:
        self.scheduler.every("retention", 6 * 3600, self.purge_closed)

    # ----------------------------------------------------------------- export

    async def collect(self, user_id: str) -> dict[str, Any]:
        """Everything stored about ``user_id``, by plugin."""
        db = self.bot.db
        items = await db.fetchall(
            "SELECT * FROM items WHERE author = ? OR decided_by = ? ORDER BY id", (user_id, user_id)
        )
        blocks = await db.fetchall(
            "SELECT * FROM blocks WHERE user_id = ? OR blocked_by = ?", (user_id, user_id)
        )
        log = await db.fetchall(
            "SELECT * FROM modlog WHERE actor = ? OR target_user = ?", (user_id, user_id)
        )
        data: dict[str, Any] = {
            "user_id": user_id,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "core": {
                "items": [_public(Item.from_row(r).__dict__) for r in items],
                "blocks": [dict(r) for r in blocks],
                "moderation_log": [dict(r) for r in log],
            },
        }
        for plugin in self.bot.plugins.values():
            if plugin is self:
                continue
            exported = await plugin.export_user_data(user_id)
            if exported:
                data[plugin.name] = exported
        return data

    @command("meinedaten", "mydata", needs_village=False, examples=("!meinedaten",))
    async def my_data(self, ctx: CommandContext) -> None:
        data = await self.collect(ctx.sender)
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
        redacted = await self.forget(ctx.sender)
        await ctx.answer("privacy.forgotten", redacted=redacted)
        # No record of the DM is kept, so the bot leaves it (after answering there).
        for room_id in dms:
            try:
                await self.bot.matrix.leave(room_id)
            except Exception as exc:
                self.log.warning("could not leave DM %s: %s", room_id, exc)

    async def forget(self, user_id: str) -> int:
        """Erase ``user_id`` everywhere; returns how many published messages were redacted."""
        db = self.bot.db
        own = [
            Item.from_row(r)
            for r in await db.fetchall("SELECT * FROM items WHERE author = ?", (user_id,))
        ]
        redacted = 0
        for item in own:
            if item.published_room and item.published_event and item.state == states.PUBLISHED:
                try:
                    await self.bot.matrix.redact(
                        item.published_room, item.published_event, key=f"forget:{item.id}"
                    )
                    redacted += 1
                except Exception as exc:
                    self.log.warning("could not redact item %s: %s", item.id, exc)
        for plugin in self.bot.plugins.values():
            if plugin is not self:
                await plugin.forget_user(user_id)
        await self.bot.direct.forget_user(user_id)
        ids = [item.id for item in own]
        for plugin in self.bot.plugins.values():
            if plugin is not self and ids:
                await plugin.purge_items(ids)
        async with db.transaction():
            await db.execute("DELETE FROM items WHERE author = ?", (user_id,))
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
        return redacted

    # --------------------------------------------------------------- retention

    async def purge_closed(self) -> int:
        """Delete closed items older than ``retention_days``; returns how many."""
        days = float(self.config.get("retention_days", 180))
        cutoff = time.time() - days * 86400
        marks = ",".join("?" * len(CLOSED_STATES))
        rows = await self.bot.db.fetchall(
            f"SELECT id FROM items WHERE state IN ({marks}) "
            "AND COALESCE(closed_at, created_at) < ?",
            (*CLOSED_STATES, cutoff),
        )
        ids = [r["id"] for r in rows]
        if not ids:
            return 0
        for plugin in self.bot.plugins.values():
            await plugin.purge_items(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            await self.bot.db.execute(
                f"DELETE FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
        self.log.info("retention: purged %d closed items", len(ids))
        return len(ids)


def _public(values: dict[str, Any]) -> dict[str, Any]:
    """An item for the export, with readable times."""
    out = dict(values)
    for key in (
        "created_at",
        "published_at",
        "closed_at",
        "expires_at",
        "decided_at",
        "reminded_at",
    ):
        if out.get(key):
            out[key] = datetime.fromtimestamp(out[key], UTC).isoformat(timespec="seconds")
    return out
