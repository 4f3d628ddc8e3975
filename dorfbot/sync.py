"""The sync loop: every room event delivered exactly once, nothing lost.

- The sync token and the IDs of handled events live in the database. After a
  restart the loop continues from the stored token, asking once for the full
  room state (matrix-nio starts with empty rooms otherwise).
- On the very first start nothing older than the start is delivered; after a
  restart, events up to ``max_catchup`` old are.
- A sync carries at most ~100 timeline events per room and marks the timeline
  ``limited`` when more arrived; the loop then back-paginates from
  ``prev_batch`` to the last handled event, so a burst or a downtime loses no
  command.
- Failures of the homeserver are retried with a bounded backoff; the loop
  never spins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import nio

from dorfbot.matrix import Matrix
from dorfbot.outbox import EventScope
from dorfbot.storage import Database, sql_script

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
InviteHandler = Callable[[str, str | None, bool], Awaitable[None]]
SyncedHandler = Callable[[], Awaitable[None]]

SYNC_TIMEOUT_MS = 30_000
PAGE_SIZE = 100
MAX_BACKFILL_PAGES = 100
HANDLED_KEEP_HOURS_EXTRA = 24
UNDECRYPTABLE_HOLD_SECONDS = 3600

SYNC_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "room": {
        "timeline": {"limit": PAGE_SIZE},
        "state": {"lazy_load_members": False},
        "ephemeral": {"types": []},
    },
}

MIGRATIONS = [
    sql_script(
        "CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE handled_events (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, "
        "handled_at REAL NOT NULL)",
        "CREATE INDEX handled_events_at ON handled_events (handled_at)",
    )
]


class EventStream:
    """Runs the sync loop and hands each new room event to ``on_event`` once, in order."""

    def __init__(
        self,
        matrix: Matrix,
        db: Database,
        *,
        on_event: EventHandler,
        on_invite: InviteHandler,
        on_synced: SyncedHandler | None = None,
        max_catchup_hours: float = 24.0,
    ) -> None:
        self.matrix = matrix
        self.db = db
        self.on_event = on_event
        self.on_invite = on_invite
        self.on_synced = on_synced
        self.max_catchup = max_catchup_hours * 3600
        self.started_at = time.time()
        self.first_start = False
        self.last_sync_at: float | None = None
        self.in_round = False
        """True while a sync's events are being handled (a stop waits for it)."""
        self.first_round_done = asyncio.Event()
        """Set after the first complete round (keys uploaded, backlog handled)."""
        self._stop = asyncio.Event()
        self._handled_recent: set[str] = set()
        self._skipped: list[tuple[str, str, float]] = []
        self._undecrypted: dict[str, tuple[str, nio.MegolmEvent, float]] = {}

    def stop(self) -> None:
        self._stop.set()

    async def _get_state(self, key: str) -> str | None:
        value = await self.db.fetchval("SELECT value FROM sync_state WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def _set_state(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def is_handled(self, event_id: str) -> bool:
        if event_id in self._handled_recent:
            return True
        return (
            await self.db.fetchval("SELECT 1 FROM handled_events WHERE event_id = ?", (event_id,))
            is not None
        )

    async def mark_handled(
        self, event_id: str, room_id: str, scope: EventScope | None = None
    ) -> None:
        """Record ``event_id`` as handled, with the sends it still has in flight.

        One transaction: after a crash the event is either handled again (its
        sends get the same transaction IDs) or its undelivered sends are in the
        outbox and go out again; never neither, never both.
        """
        self._handled_recent.add(event_id)
        await self.db.batch(
            [
                (
                    "INSERT INTO handled_events (event_id, room_id, handled_at) "
                    "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (event_id, room_id, time.time()),
                ),
                *self.matrix.window.persist_statements(scope),
            ]
        )

    async def _handle(self, room_id: str, event_id: str, source: dict[str, Any]) -> None:
        """Hand one event to ``on_event`` and mark it handled.

        Its sends are queued in the window (order kept per room and sender), so
        the next event is handled during this one's round trips.
        """
        with self.matrix.window.scope(event_id, str(source.get("sender") or "")) as scope:
            try:
                await self.on_event(room_id, source)
            except Exception:
                log.exception("handling event %s in %s failed", event_id, room_id)
        await self.mark_handled(event_id, room_id, scope)

    async def run(self) -> None:
        """Sync until :meth:`stop`; returns then."""
        token = await self._get_state("next_batch")
        self.first_start = token is None
        if self.first_start:
            log.info("first start: messages older than now are not answered")
        client = self.matrix.client
        full_state = True
        failures = 0
        while not self._stop.is_set():
            try:
                resp = await client.sync(
                    timeout=0 if full_state else SYNC_TIMEOUT_MS,
                    sync_filter=SYNC_FILTER,
                    since=token,
                    full_state=full_state,
                )
                if isinstance(resp, nio.SyncError):
                    raise ConnectionError(f"sync failed: {resp.message}")
                self.in_round = True
                if full_state:
                    # nio has filled the room state: sends may go out from here on,
                    # including replies to commands that arrived while we were down.
                    full_state = False
                    self.matrix.ready.set()
                    log.info("first sync done: %d rooms", len(client.rooms))
                await self._after_sync_housekeeping()
                await self._process(resp)
                token = resp.next_batch
                await self._set_state("next_batch", token)
                self.last_sync_at = time.time()
                self.in_round = False
                self.first_round_done.set()
                if self.on_synced:
                    await self.on_synced()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must survive anything the server does
                self.in_round = False
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("sync problem (%s), retrying in %.1f s", exc, delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                except TimeoutError:
                    pass

    async def _after_sync_housekeeping(self) -> None:
        client = self.matrix.client
        if not self.matrix.encryption or client.olm is None:
            return
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    def _cutoff_ms(self) -> float:
        if self.first_start:
            return self.started_at * 1000
        return (time.time() - self.max_catchup) * 1000

    async def _process(self, resp: nio.SyncResponse) -> None:
        for room_id, info in resp.rooms.invite.items():
            try:  # one odd invite must not hold up every room's commands
                inviter, is_direct = _invite_details(info, self.matrix.user_id)
                await self.on_invite(room_id, inviter, is_direct)
            except Exception:
                log.exception("handling the invite to %s failed", room_id)
        # Only the first round of a process can repeat events a previous one handled
        # (it crashed before storing the token); later rounds' events are new since
        # the token this process stored, and what it handled itself is in memory.
        known: set[str] = set()
        if not self.first_round_done.is_set():
            known = await self._handled_among(
                str(eid)
                for info in resp.rooms.join.values()
                for event in info.timeline.events
                if (eid := (getattr(event, "source", {}) or {}).get("event_id"))
            )
        for room_id, info in resp.rooms.join.items():
            events = list(info.timeline.events)
            if info.timeline.limited and info.timeline.prev_batch:
                events = await self._backfill(room_id, info.timeline.prev_batch) + events
            await self._deliver(room_id, events, known)
        await self._flush_skipped()
        if self._undecrypted:
            await self._retry_undecryptable()
        await self._prune()

    async def _handled_among(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` the database records as handled: one query per 500."""
        wanted = [e for e in dict.fromkeys(event_ids) if e not in self._handled_recent]
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await self.db.fetchall(
                "SELECT event_id FROM handled_events WHERE event_id IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update(str(r[0]) for r in rows)
        return found

    async def _flush_skipped(self) -> None:
        """Mark the events that were passed over (old, the bot's own) handled, in one go."""
        if not self._skipped:
            return
        rows, self._skipped = self._skipped, []
        await self.db.executemany(
            "INSERT INTO handled_events (event_id, room_id, handled_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            rows,
        )

    async def _backfill(self, room_id: str, prev_batch: str) -> list[Any]:
        """Events older than the limited timeline, back to the last handled one."""
        cutoff = self._cutoff_ms()
        older: list[Any] = []
        start: str | None = prev_batch
        for _ in range(MAX_BACKFILL_PAGES):
            resp = await self.matrix.client.room_messages(
                room_id, start=start, direction=nio.MessageDirection.back, limit=PAGE_SIZE
            )
            if isinstance(resp, nio.RoomMessagesError):
                # Retry the whole round (the sync token is not saved), never skip the gap.
                raise ConnectionError(f"back-pagination in {room_id} failed: {resp.message}")
            reached = False
            handled = await self._handled_among(
                str((getattr(e, "source", {}) or {}).get("event_id", "")) for e in resp.chunk
            )
            for event in resp.chunk:
                source = getattr(event, "source", {}) or {}
                stamp = source.get("origin_server_ts")
                if not isinstance(stamp, int):
                    continue  # malformed; _deliver would drop it anyway
                event_id = str(source.get("event_id", ""))
                if stamp < cutoff or event_id in handled or event_id in self._handled_recent:
                    reached = True
                    break
                older.append(event)
            if reached or not resp.chunk or not resp.end or resp.end == start:
                break
            start = resp.end
        else:
            log.warning("back-pagination in %s stopped after %d pages", room_id, MAX_BACKFILL_PAGES)
        log.info("back-paginated %d events in %s", len(older), room_id)
        older.reverse()
        return older

    async def _deliver(self, room_id: str, events: list[Any], known: set[str]) -> None:
        """Hand each event not handled yet to ``on_event``; ``known`` were handled before."""
        cutoff = self._cutoff_ms()
        seen: set[str] = set()
        for event in events:
            source = dict(getattr(event, "source", {}) or {})
            event_id = source.get("event_id")
            if not isinstance(event_id, str) or event_id in seen:
                continue
            seen.add(event_id)
            if event_id in self._handled_recent or event_id in known:
                continue
            if isinstance(event, nio.MegolmEvent):
                await self._hold_undecryptable(room_id, event, source)
                continue
            if (
                source.get("sender") == self.matrix.user_id
                or not isinstance(source.get("origin_server_ts"), int)
                or source["origin_server_ts"] < cutoff
            ):
                # nothing to do for it: recorded with the others at the end of the round
                self._handled_recent.add(event_id)
                self._skipped.append((event_id, room_id, time.time()))
                continue
            await self._handle(room_id, event_id, source)

    async def _hold_undecryptable(
        self, room_id: str, event: nio.MegolmEvent, source: dict[str, Any]
    ) -> None:
        """Keep an event we cannot decrypt yet; ask for its key; tell the sender once."""
        if source.get("event_id") in self._undecrypted:
            return
        self._undecrypted[str(source["event_id"])] = (room_id, event, time.time())
        try:
            await self.matrix.client.request_room_key(event)
        except Exception as exc:  # a key request is best effort
            log.debug("room key request failed: %s", exc)
        await self.on_event(room_id, {**source, "dorfbot_undecryptable": True})

    async def _retry_undecryptable(self) -> None:
        """Deliver held events whose keys have arrived since; give up after an hour."""
        for event_id, (room_id, event, since) in list(self._undecrypted.items()):
            try:
                decrypted = self.matrix.client.decrypt_event(event)
            except Exception:
                decrypted = None
            if decrypted is not None and not isinstance(decrypted, nio.MegolmEvent):
                del self._undecrypted[event_id]
                source = dict(getattr(decrypted, "source", {}) or {})
                source.setdefault("event_id", event_id)
                source.setdefault("sender", event.sender)
                source.setdefault("origin_server_ts", event.server_timestamp)
                log.info("decrypted held event %s after its key arrived", event_id)
                await self._handle(room_id, event_id, source)
            elif time.time() - since > UNDECRYPTABLE_HOLD_SECONDS:
                del self._undecrypted[event_id]
                log.warning("gave up on undecryptable event %s in %s", event_id, room_id)
                await self.mark_handled(event_id, room_id)

    async def _prune(self) -> None:
        if len(self._handled_recent) > 20_000:
            self._handled_recent.clear()
        keep_s = self.max_catchup + HANDLED_KEEP_HOURS_EXTRA * 3600
        await self.db.execute(
            "DELETE FROM handled_events WHERE handled_at < ?", (time.time() - keep_s,)
        )


def _invite_details(info: Any, own_user_id: str) -> tuple[str | None, bool]:
    """Who invited the bot, and whether the invite is marked ``is_direct``.

    matrix-nio's ``InviteMemberEvent`` keeps the event's ``content`` in its own
    attribute and drops it from ``source``, so ``is_direct`` is read from there.
    """
    inviter: str | None = None
    direct = False
    for event in getattr(info, "invite_state", []):
        source = getattr(event, "source", {}) or {}
        if source.get("type") == "m.room.member" and source.get("state_key") == own_user_id:
            inviter = source.get("sender")
            content = getattr(event, "content", None)
            if not isinstance(content, dict):
                content = source.get("content")
            direct = isinstance(content, dict) and content.get("is_direct") is True
    return inviter, direct
