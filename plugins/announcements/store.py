"""The plugin's tables: fan-outs with their per-room deliveries, and scheduled items.

A *fan-out* is one message sent into one or more rooms: an announcement (one
room), a push alert (every room of a village, or of every village), or one
occurrence of a scheduled item. It is stored with one *delivery* row per room
before anything is sent, and each delivery is marked when its room has the
message, so a crash mid-way resumes with the rooms still missing. ``origin``
names what caused the fan-out (the command's event ID, or the scheduled item
and occurrence); it is unique, so a command or an occurrence never creates two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dorfbot.storage import Database, Row, sql_script

MIGRATIONS = [
    sql_script(
        """CREATE TABLE announcements_fanouts (
            id INTEGER PRIMARY KEY,
            origin TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            village TEXT NOT NULL,
            sender TEXT NOT NULL,
            text_plain TEXT NOT NULL,
            text_html TEXT NOT NULL,
            pin INTEGER NOT NULL DEFAULT 0,
            late_for TEXT,
            reply_room TEXT,
            reply_event TEXT,
            status_event TEXT,
            state TEXT NOT NULL DEFAULT 'running',
            created_at REAL NOT NULL,
            finished_at REAL
        )""",
        "CREATE INDEX announcements_fanouts_state ON announcements_fanouts (state)",
        """CREATE TABLE announcements_deliveries (
            fanout_id INTEGER NOT NULL
                REFERENCES announcements_fanouts (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            room_id TEXT NOT NULL,
            village TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            mode TEXT,
            event_id TEXT,
            error TEXT,
            PRIMARY KEY (fanout_id, room_id)
        )""",
        """CREATE TABLE announcements_schedule (
            id INTEGER PRIMARY KEY,
            village TEXT NOT NULL,
            number INTEGER NOT NULL,
            kind TEXT NOT NULL,
            scope TEXT NOT NULL DEFAULT 'village',
            creator TEXT NOT NULL,
            text_plain TEXT NOT NULL,
            text_html TEXT NOT NULL,
            start_local TEXT NOT NULL,
            tz TEXT NOT NULL,
            rrule TEXT,
            next_run TEXT,
            last_fired TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'active',
            source_event TEXT UNIQUE,
            created_at REAL NOT NULL,
            UNIQUE (village, number)
        )""",
        "CREATE INDEX announcements_schedule_due ON announcements_schedule (state, next_run)",
    ),
    # The public page lists recent fan-outs; a redaction finds its delivery by event.
    sql_script(
        "CREATE INDEX announcements_fanouts_created ON announcements_fanouts (created_at)",
        "CREATE INDEX announcements_deliveries_event ON announcements_deliveries (event_id)",
    ),
]

# kinds of fan-outs and scheduled items
ANNOUNCE = "announce"
ALERT = "alert"
# scopes of alerts
VILLAGE = "village"
ALL = "all"


@dataclass(frozen=True)
class Fanout:
    id: int
    origin: str
    kind: str
    village: str
    sender: str
    text_plain: str
    text_html: str
    pin: bool
    late_for: str | None
    reply_room: str | None
    reply_event: str | None
    status_event: str | None
    state: str
    created_at: float
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> Fanout:
        values = dict(zip(row.keys(), tuple(row), strict=True))
        values["pin"] = bool(values["pin"])
        return cls(**values)


@dataclass(frozen=True)
class Delivery:
    fanout_id: int
    position: int
    room_id: str
    village: str
    state: str
    mode: str | None
    event_id: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls(**dict(zip(row.keys(), tuple(row), strict=True)))


@dataclass(frozen=True)
class Scheduled:
    id: int
    village: str
    number: int
    kind: str
    scope: str
    creator: str
    text_plain: str
    text_html: str
    start_local: str
    tz: str
    rrule: str | None
    next_run: str | None
    last_fired: str
    state: str
    source_event: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Scheduled:
        return cls(**dict(zip(row.keys(), tuple(row), strict=True)))


class Store:
    """Queries of the announcements plugin; multi-row writes are transactions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ fan-outs

    async def create_fanout(
        self,
        *,
        origin: str,
        kind: str,
        village: str,
        sender: str,
        text_plain: str,
        text_html: str,
        rooms: list[tuple[str, str]],
        pin: bool = False,
        late_for: str | None = None,
        reply_room: str | None = None,
        reply_event: str | None = None,
    ) -> int:
        """Store a fan-out and its deliveries (``rooms``: (room ID, village)); its ID.

        An existing fan-out of the same origin is returned instead: a command
        handled again after a crash does not send twice. Joins an open
        transaction of the caller.
        """
        async with self.db.transaction():
            existing = await self.db.fetchval(
                "SELECT id FROM announcements_fanouts WHERE origin = ?", (origin,)
            )
            if existing is not None:
                return int(existing)
            fanout_id = await self.db.fetchval(
                "INSERT INTO announcements_fanouts (origin, kind, village, sender, text_plain, "
                "text_html, pin, late_for, reply_room, reply_event, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    origin,
                    kind,
                    village,
                    sender,
                    text_plain,
                    text_html,
                    int(pin),
                    late_for,
                    reply_room,
                    reply_event,
                    time.time(),
                ),
            )
            await self.db.executemany(
                "INSERT OR IGNORE INTO announcements_deliveries "
                "(fanout_id, position, room_id, village) VALUES (?, ?, ?, ?)",
                [(fanout_id, i, room, vid) for i, (room, vid) in enumerate(rooms)],
            )
            return int(fanout_id)

    async def published(self, village: str, since: float, limit: int) -> list[Fanout]:
        """Announcements and alerts that reached a room of ``village`` since ``since``.

        Newest first. A fan-out counts once at least one delivery into the village
        was sent; one whose message a moderator redacted in any room is left out.
        """
        rows = await self.db.fetchall(
            "SELECT f.* FROM announcements_fanouts f WHERE f.created_at >= ? "
            "AND EXISTS (SELECT 1 FROM announcements_deliveries d WHERE d.fanout_id = f.id "
            "AND d.village = ? AND d.state = 'sent') "
            "AND NOT EXISTS (SELECT 1 FROM announcements_deliveries d "
            "WHERE d.fanout_id = f.id AND d.state = 'redacted') "
            "ORDER BY f.created_at DESC, f.id DESC LIMIT ?",
            (since, village, limit),
        )
        return [Fanout.from_row(r) for r in rows]

    async def redacted(self, room_id: str, event_id: str) -> bool:
        """Mark the delivery whose message was redacted; whether there was one."""
        count = await self.db.execute_rowcount(
            "UPDATE announcements_deliveries SET state = 'redacted' "
            "WHERE room_id = ? AND event_id = ? AND state = 'sent'",
            (room_id, event_id),
        )
        return count > 0

    async def fanout(self, fanout_id: int) -> Fanout | None:
        row = await self.db.fetchone(
            "SELECT * FROM announcements_fanouts WHERE id = ?", (fanout_id,)
        )
        return Fanout.from_row(row) if row else None

    async def running_fanouts(self) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM announcements_fanouts WHERE state = 'running' ORDER BY id"
        )
        return [int(r[0]) for r in rows]

    async def deliveries(self, fanout_id: int) -> list[Delivery]:
        rows = await self.db.fetchall(
            "SELECT * FROM announcements_deliveries WHERE fanout_id = ? ORDER BY position",
            (fanout_id,),
        )
        return [Delivery.from_row(r) for r in rows]

    async def mark_delivery(
        self,
        fanout_id: int,
        room_id: str,
        *,
        state: str,
        mode: str | None,
        event_id: str | None = None,
        error: str | None = None,
    ) -> None:
        await self.db.execute(
            "UPDATE announcements_deliveries SET state = ?, mode = ?, event_id = ?, error = ? "
            "WHERE fanout_id = ? AND room_id = ?",
            (state, mode, event_id, error, fanout_id, room_id),
        )

    async def set_status_event(self, fanout_id: int, event_id: str) -> None:
        await self.db.execute(
            "UPDATE announcements_fanouts SET status_event = ? WHERE id = ?",
            (event_id, fanout_id),
        )

    async def finish_fanout(self, fanout_id: int) -> None:
        await self.db.execute(
            "UPDATE announcements_fanouts SET state = 'done', finished_at = ? WHERE id = ?",
            (time.time(), fanout_id),
        )

    async def prune_fanouts(self, older_than: float) -> None:
        """Forget finished fan-outs (and their deliveries) older than a timestamp."""
        await self.db.execute(
            "DELETE FROM announcements_fanouts WHERE state = 'done' AND finished_at < ?",
            (older_than,),
        )

    # ------------------------------------------------------------- scheduled items

    async def add_scheduled(
        self,
        *,
        village: str,
        kind: str,
        scope: str,
        creator: str,
        text_plain: str,
        text_html: str,
        start_local: str,
        tz: str,
        rrule: str | None,
        next_run: str,
        source_event: str,
    ) -> Scheduled:
        """Store a scheduled item with the village's next number (once per command)."""
        async with self.db.transaction():
            row = await self.db.fetchone(
                "SELECT * FROM announcements_schedule WHERE source_event = ?", (source_event,)
            )
            if row is not None:
                return Scheduled.from_row(row)
            number = await self.db.fetchval(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM announcements_schedule WHERE village = ?",
                (village,),
            )
            item_id = await self.db.fetchval(
                "INSERT INTO announcements_schedule (village, number, kind, scope, creator, "
                "text_plain, text_html, start_local, tz, rrule, next_run, source_event, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    village,
                    number,
                    kind,
                    scope,
                    creator,
                    text_plain,
                    text_html,
                    start_local,
                    tz,
                    rrule,
                    next_run,
                    source_event,
                    time.time(),
                ),
            )
            row = await self.db.fetchone(
                "SELECT * FROM announcements_schedule WHERE id = ?", (item_id,)
            )
            assert row is not None
            return Scheduled.from_row(row)

    async def scheduled(self, item_id: int) -> Scheduled | None:
        row = await self.db.fetchone(
            "SELECT * FROM announcements_schedule WHERE id = ?", (item_id,)
        )
        return Scheduled.from_row(row) if row else None

    async def scheduled_by_number(self, village: str, number: int) -> Scheduled | None:
        row = await self.db.fetchone(
            "SELECT * FROM announcements_schedule WHERE village = ? AND number = ?",
            (village, number),
        )
        return Scheduled.from_row(row) if row else None

    async def active(self, village: str | None = None) -> list[Scheduled]:
        """Active items (of one village), soonest first."""
        sql = "SELECT * FROM announcements_schedule WHERE state = 'active'"
        params: tuple[Any, ...] = ()
        if village is not None:
            sql += " AND village = ?"
            params = (village,)
        rows = await self.db.fetchall(sql + " ORDER BY next_run, number", params)
        return [Scheduled.from_row(r) for r in rows]

    async def due(self, now_iso: str) -> list[Scheduled]:
        rows = await self.db.fetchall(
            "SELECT * FROM announcements_schedule WHERE state = 'active' AND next_run <= ? "
            "ORDER BY next_run, id",
            (now_iso,),
        )
        return [Scheduled.from_row(r) for r in rows]

    async def advance(self, item: Scheduled, *, fired: str | None, next_run: str | None) -> bool:
        """Claim the item's due occurrence: move ``next_run`` on, note what fired.

        Only succeeds if nobody claimed it before (same ``next_run`` as read,
        and ``fired`` later than the last fired occurrence); joins the caller's
        transaction, so claiming and storing the fan-out commit together.
        """
        if fired is not None and fired <= item.last_fired:
            return False
        count = await self.db.execute_rowcount(
            "UPDATE announcements_schedule SET next_run = ?, last_fired = ?, state = ? "
            "WHERE id = ? AND state = 'active' AND next_run = ? AND last_fired = ?",
            (
                next_run,
                fired if fired is not None else item.last_fired,
                "active" if next_run is not None else "done",
                item.id,
                item.next_run,
                item.last_fired,
            ),
        )
        return count == 1

    async def cancel(self, item_id: int) -> bool:
        count = await self.db.execute_rowcount(
            "UPDATE announcements_schedule SET state = 'cancelled' "
            "WHERE id = ? AND state = 'active'",
            (item_id,),
        )
        return count == 1

    # ------------------------------------------------------------------- privacy

    async def export_user(self, user_id: str) -> dict[str, Any]:
        scheduled = await self.db.fetchall(
            "SELECT number, village, kind, text_plain, start_local, tz, rrule, state "
            "FROM announcements_schedule WHERE creator = ?",
            (user_id,),
        )
        sent = await self.db.fetchall(
            "SELECT kind, village, text_plain, created_at FROM announcements_fanouts "
            "WHERE sender = ?",
            (user_id,),
        )
        return {
            "scheduled": [dict(zip(r.keys(), tuple(r), strict=True)) for r in scheduled],
            "sent": [dict(zip(r.keys(), tuple(r), strict=True)) for r in sent],
        }

    async def forget_user(self, user_id: str) -> None:
        # Announcements are the village's, not the organizer's: keep them, drop the name.
        async with self.db.transaction():
            await self.db.execute(
                "UPDATE announcements_schedule SET creator = '' WHERE creator = ?", (user_id,)
            )
            await self.db.execute(
                "UPDATE announcements_fanouts SET sender = '' WHERE sender = ?", (user_id,)
            )
