"""The calendar's tables and queries.

The core's ``items`` table holds what every item has (number, title, author,
state, published message); ``calendar_events`` adds the times, keyed by
``items.id``. Times are kept twice on purpose: as the wall-clock start in the
event's zone (``local_start``, the truth for RRULE expansion across DST) and as
UTC epoch seconds (``starts_at``, ``last_at``) so a window query can skip
events that cannot overlap it without expanding them.

``calendar_versions`` holds a number per village that triggers raise on every
insert, change and delete in ``calendar_events`` and of the calendar's rows in
``items``, whoever writes them; :mod:`.cache` keeps parsed events while it
stands still. RSVPs do not raise it: their counts are read for the rows shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dorfbot.items import PUBLISHED, chunks, marks
from dorfbot.storage import Database, Row, sql_script

from .ical import CalendarEvent
from .recurrence import Series

_ITEM_FIELDS = (
    "village",
    "number",
    "state",
    "author",
    "title",
    "body",
    "published_room",
    "published_event",
)
"""The columns of ``items`` a :class:`StoredEvent` carries (a change raises the version)."""

# Which writes raise a village's calendar version: (trigger name, SQLite's event, its
# row, PostgreSQL's event and condition). Spelled out, not built from _ITEM_FIELDS:
# a migration never changes once released.
_VERSION_TRIGGERS = (
    ("insert", "INSERT ON calendar_events", "NEW", "INSERT ON calendar_events", ""),
    ("update", "UPDATE ON calendar_events", "NEW", "UPDATE ON calendar_events", ""),
    ("delete", "DELETE ON calendar_events", "OLD", "DELETE ON calendar_events", ""),
    (
        "item_update",
        "UPDATE OF village, number, state, author, title, body, published_room, "
        "published_event ON items WHEN NEW.plugin = 'calendar'",
        "NEW",
        "UPDATE OF village, number, state, author, title, body, published_room, "
        "published_event ON items",
        "WHEN (NEW.plugin = 'calendar')",
    ),
    (
        "item_delete",
        "DELETE ON items WHEN OLD.plugin = 'calendar'",
        "OLD",
        "DELETE ON items",
        "WHEN (OLD.plugin = 'calendar')",
    ),
)


async def _versions(db: Database) -> None:
    """``calendar_versions`` and the triggers that raise a village's number on every
    insert, change and delete of its events, whoever writes."""
    await db.execute(
        "CREATE TABLE calendar_versions (village TEXT PRIMARY KEY, version BIGINT NOT NULL)"
    )
    bump = (
        "INSERT INTO calendar_versions (village, version) VALUES ({row}.village, 1) "
        "ON CONFLICT (village) DO UPDATE SET version = calendar_versions.version + 1"
    )
    if db.dialect == "postgresql":
        await db.execute(
            "CREATE FUNCTION calendar_version_bump() RETURNS trigger LANGUAGE plpgsql AS $body$ "
            "BEGIN IF TG_OP = 'DELETE' THEN "
            f"{bump.format(row='OLD')}; ELSE {bump.format(row='NEW')}; END IF; "
            "RETURN NULL; END $body$"
        )
    for name, sqlite_when, row, pg_when, pg_condition in _VERSION_TRIGGERS:
        if db.dialect == "postgresql":
            await db.execute(
                f"CREATE TRIGGER calendar_version_{name} AFTER {pg_when} FOR EACH ROW "
                f"{pg_condition} EXECUTE FUNCTION calendar_version_bump()"
            )
        else:
            await db.execute(
                f"CREATE TRIGGER calendar_version_{name} AFTER {sqlite_when} "
                f"BEGIN {bump.format(row=row)}; END"
            )


MIGRATIONS = [
    sql_script(
        """CREATE TABLE calendar_events (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            village TEXT NOT NULL,
            uid TEXT NOT NULL,
            tz TEXT NOT NULL,
            local_start TEXT NOT NULL,
            local_end TEXT,
            all_day INTEGER NOT NULL DEFAULT 0,
            rrule TEXT,
            exdates TEXT,
            starts_at REAL NOT NULL,
            ends_at REAL,
            last_at REAL,
            location TEXT,
            url TEXT,
            source TEXT,
            fingerprint TEXT,
            sequence INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (village, uid)
        )""",
        "CREATE INDEX calendar_events_window ON calendar_events (village, starts_at)",
        """CREATE TABLE calendar_rsvps (
            item_id INTEGER NOT NULL REFERENCES items(id),
            user_id TEXT NOT NULL,
            reaction_event TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (item_id, user_id)
        )""",
        "CREATE INDEX calendar_rsvps_user ON calendar_rsvps (user_id)",
        """CREATE TABLE calendar_digests (
            village TEXT NOT NULL,
            day TEXT NOT NULL,
            state TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            sent_at REAL,
            event_id TEXT,
            PRIMARY KEY (village, day)
        )""",
        """CREATE TABLE calendar_reminders (
            item_id INTEGER NOT NULL REFERENCES items(id),
            occurrence REAL NOT NULL,
            state TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            sent_at REAL,
            PRIMARY KEY (item_id, occurrence)
        )""",
    ),
    # taking back a 👍 looks the RSVP up by its reaction event
    sql_script("CREATE INDEX calendar_rsvps_reaction ON calendar_rsvps (reaction_event)"),
    # A version per village that every change of its events raises (cache.py)
    _versions,
]

_COLUMNS = "e.*, " + ", ".join(f"i.{name}" for name in _ITEM_FIELDS if name != "village")
_RSVPS = "(SELECT count(*) FROM calendar_rsvps r WHERE r.item_id = e.item_id) AS rsvps"


@dataclass(frozen=True)
class StoredEvent:
    """A calendar event joined with its item (and its RSVP count where asked).

    ``starts_at`` and ``last_at`` bound its occurrences (UTC epoch seconds;
    ``last_at`` is None for an endless series).
    """

    item_id: int
    village: str
    number: int
    state: str
    author: str
    event: CalendarEvent
    source: str | None
    published_room: str | None
    published_event: str | None
    rsvps: int = 0
    starts_at: float = 0.0
    last_at: float | None = None

    @classmethod
    def from_row(cls, row: Row, keys: Sequence[str] | None = None) -> StoredEvent:
        """The event of a query row; ``keys`` (the rows' column names) saves looking
        each column up by name, which costs more than the rest when there are many."""
        r = dict(zip(row.keys() if keys is None else keys, row, strict=True))
        local_end = r["local_end"]
        exdates = r["exdates"]
        event = CalendarEvent(
            uid=r["uid"],
            title=r["title"],
            start=datetime.fromisoformat(r["local_start"]),
            tz=r["tz"],
            end=datetime.fromisoformat(local_end) if local_end else None,
            all_day=bool(r["all_day"]),
            rrule=r["rrule"],
            exdates=tuple(map(datetime.fromisoformat, json.loads(exdates))) if exdates else (),
            description=r["body"] or "",
            location=r["location"] or "",
            url=r["url"] or "",
            sequence=r["sequence"],
            created=datetime.fromtimestamp(r["created_at"], UTC),
            modified=datetime.fromtimestamp(r["updated_at"], UTC),
        )
        return cls(
            item_id=r["item_id"],
            village=r["village"],
            number=r["number"],
            state=r["state"],
            author=r["author"],
            event=event,
            source=r["source"],
            published_room=r["published_room"],
            published_event=r["published_event"],
            rsvps=r.get("rsvps", 0),
            starts_at=r["starts_at"],
            last_at=r["last_at"],
        )

    def series(self) -> Series:
        return self.event.series(self.item_id)


def _times(event: CalendarEvent) -> tuple[float, float | None, float | None]:
    """(starts_at, ends_at, last_at) as UTC epoch seconds."""
    series = event.series()
    start = series.real(event.start)
    end = series.real(event.end) if event.end is not None else None
    last = series.last_end()
    return start.timestamp(), end.timestamp() if end else None, last.timestamp() if last else None


class EventStore:
    """Queries over the calendar tables; one statement (or transaction) each."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- events

    async def save(
        self, item_id: int, village: str, event: CalendarEvent, *, source: str | None = None
    ) -> bool:
        """Insert the event of an item; False if it already has one (idempotent)."""
        starts_at, ends_at, last_at = _times(event)
        now = time.time()
        count = await self.db.execute_rowcount(
            "INSERT INTO calendar_events (item_id, village, uid, tz, local_start, local_end, "
            "all_day, rrule, exdates, starts_at, ends_at, last_at, location, url, source, "
            "fingerprint, sequence, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                item_id,
                village,
                event.uid,
                event.tz,
                event.start.isoformat(),
                event.end.isoformat() if event.end else None,
                int(event.all_day),
                event.rrule,
                _exdates(event),
                starts_at,
                ends_at,
                last_at,
                event.location or None,
                event.url or None,
                source,
                event.fingerprint(),
                event.sequence,
                now,
                now,
            ),
        )
        return count == 1

    async def replace(self, item_id: int, event: CalendarEvent) -> None:
        """Overwrite an event's times and details (an import found it changed)."""
        starts_at, ends_at, last_at = _times(event)
        await self.db.execute(
            "UPDATE calendar_events SET tz = ?, local_start = ?, local_end = ?, all_day = ?, "
            "rrule = ?, exdates = ?, starts_at = ?, ends_at = ?, last_at = ?, location = ?, "
            "url = ?, fingerprint = ?, sequence = sequence + 1, updated_at = ? "
            "WHERE item_id = ?",
            (
                event.tz,
                event.start.isoformat(),
                event.end.isoformat() if event.end else None,
                int(event.all_day),
                event.rrule,
                _exdates(event),
                starts_at,
                ends_at,
                last_at,
                event.location or None,
                event.url or None,
                event.fingerprint(),
                time.time(),
                item_id,
            ),
        )

    async def get(self, item_id: int) -> StoredEvent | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS}, {_RSVPS} FROM calendar_events e "
            "JOIN items i ON i.id = e.item_id WHERE e.item_id = ?",
            (item_id,),
        )
        return StoredEvent.from_row(row) if row else None

    async def window(
        self,
        village: str,
        after: datetime,
        before: datetime | None,
        states: tuple[str, ...] = (PUBLISHED,),
    ) -> list[StoredEvent]:
        """Events in ``states`` (published) that may have an occurrence in ``[after, before)``
        (``before`` None: any time after ``after``), by number; without RSVP counts
        (:meth:`rsvp_counts` reads them for the rows shown)."""
        marks = ",".join("?" * len(states))
        bound = "" if before is None else "AND e.starts_at < ? "
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM calendar_events e JOIN items i ON i.id = e.item_id "
            f"WHERE e.village = ? AND i.state IN ({marks}) {bound}"
            "AND (e.last_at IS NULL OR e.last_at >= ?) ORDER BY i.number",
            (
                village,
                *states,
                *(() if before is None else (before.timestamp(),)),
                after.timestamp(),
            ),
        )
        return _events(rows)

    async def version(self, village: str) -> int:
        """Raised by every change of the village's events and their items (triggers)."""
        return int(
            await self.db.fetchval(
                "SELECT version FROM calendar_versions WHERE village = ?", (village,)
            )
            or 0
        )

    async def feed(self, village: str, since: datetime) -> list[StoredEvent]:
        """Published events still running after ``since``, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM calendar_events e JOIN items i ON i.id = e.item_id "
            "WHERE e.village = ? AND i.state = ? AND (e.last_at IS NULL OR e.last_at >= ?) "
            "ORDER BY e.starts_at, e.item_id",
            (village, PUBLISHED, since.timestamp()),
        )
        return _events(rows)

    async def by_uid(self, village: str) -> dict[str, tuple[int, str, str]]:
        """uid -> (item id, fingerprint, item state) of every event of a village."""
        rows = await self.db.fetchall(
            "SELECT e.uid, e.item_id, e.fingerprint, i.state FROM calendar_events e "
            "JOIN items i ON i.id = e.item_id WHERE e.village = ?",
            (village,),
        )
        return {r["uid"]: (r["item_id"], r["fingerprint"] or "", r["state"]) for r in rows}

    # ----------------------------------------------------------------- RSVPs

    async def add_rsvp(self, item_id: int, user_id: str, reaction_event: str) -> bool:
        count = await self.db.execute_rowcount(
            "INSERT INTO calendar_rsvps (item_id, user_id, reaction_event, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (item_id, user_id, reaction_event, time.time()),
        )
        return count == 1

    async def remove_rsvp(self, reaction_event: str, user_id: str) -> bool:
        """A 👍 taken back (its reaction redacted by the person who gave it)."""
        count = await self.db.execute_rowcount(
            "DELETE FROM calendar_rsvps WHERE reaction_event = ? AND user_id = ?",
            (reaction_event, user_id),
        )
        return count > 0

    async def rsvp_counts(self, item_ids: Iterable[int]) -> dict[int, int]:
        """item id -> how many take part, for these events only (those with none left out)."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        rows = await self.db.fetchall(
            f"SELECT item_id, count(*) AS n FROM calendar_rsvps WHERE item_id IN "
            f"({','.join('?' * len(ids))}) GROUP BY item_id",
            ids,
        )
        return {int(r["item_id"]): int(r["n"]) for r in rows}

    async def participants(self, item_ids: Iterable[int]) -> list[str]:
        """Who takes part (gave 👍) in any of these events, in the order they said so."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return []
        rows = await self.db.fetchall(
            f"SELECT user_id, min(created_at) AS since FROM calendar_rsvps WHERE item_id IN "
            f"({','.join('?' * len(ids))}) GROUP BY user_id ORDER BY since, user_id",
            ids,
        )
        return [str(r["user_id"]) for r in rows]

    async def rsvps_of(self, user_id: str) -> list[Row]:
        return await self.db.fetchall(
            "SELECT i.village, i.number, i.title, r.created_at FROM calendar_rsvps r "
            "JOIN items i ON i.id = r.item_id WHERE r.user_id = ? ORDER BY r.created_at",
            (user_id,),
        )

    async def forget(self, user_id: str) -> None:
        await self.db.execute("DELETE FROM calendar_rsvps WHERE user_id = ?", (user_id,))

    async def purge(self, item_ids: Sequence[int]) -> None:
        """Delete every calendar row of these items (their ``items`` rows go next)."""
        for chunk in chunks(item_ids):
            for table in ("calendar_reminders", "calendar_rsvps", "calendar_events"):
                await self.db.execute(
                    f"DELETE FROM {table} WHERE item_id IN ({marks(chunk)})", chunk
                )

    # ------------------------------------------------------- digests, reminders

    async def claim_digest(self, village: str, day: str, state: str = "sending") -> bool:
        """Claim a village's digest of a day; False if it was claimed before."""
        count = await self.db.execute_rowcount(
            "INSERT INTO calendar_digests (village, day, state, claimed_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (village, day, state, time.time()),
        )
        return count == 1

    async def any_digest(self, village: str) -> bool:
        """Whether any digest of the village was ever claimed (the bot ran before)."""
        return bool(
            await self.db.fetchval(
                "SELECT 1 FROM calendar_digests WHERE village = ? LIMIT 1", (village,)
            )
        )

    async def digest_state(self, village: str, day: str) -> Row | None:
        return await self.db.fetchone(
            "SELECT * FROM calendar_digests WHERE village = ? AND day = ?", (village, day)
        )

    async def finish_digest(
        self, village: str, day: str, state: str, event_id: str | None = None
    ) -> None:
        await self.db.execute(
            "UPDATE calendar_digests SET state = ?, sent_at = ?, event_id = ? "
            "WHERE village = ? AND day = ?",
            (state, time.time(), event_id, village, day),
        )

    async def claim_reminder(self, item_id: int, occurrence: datetime, state: str) -> bool:
        count = await self.db.execute_rowcount(
            "INSERT INTO calendar_reminders (item_id, occurrence, state, claimed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (item_id, occurrence.timestamp(), state, time.time()),
        )
        return count == 1

    async def unsent_reminders(self, after: datetime) -> list[Row]:
        """Reminders claimed for occurrences after ``after`` whose send did not finish."""
        return await self.db.fetchall(
            "SELECT * FROM calendar_reminders WHERE state = 'sending' AND occurrence > ?",
            (after.timestamp(),),
        )

    async def finish_reminder(self, item_id: int, occurrence: datetime) -> None:
        await self.db.execute(
            "UPDATE calendar_reminders SET state = 'sent', sent_at = ? "
            "WHERE item_id = ? AND occurrence = ?",
            (time.time(), item_id, occurrence.timestamp()),
        )

    async def prune(self, before: datetime) -> None:
        """Forget old digest and reminder claims (they only guard against repeats)."""
        horizon = before - timedelta(days=1)
        async with self.db.transaction():
            await self.db.execute(
                "DELETE FROM calendar_reminders WHERE occurrence < ?", (horizon.timestamp(),)
            )
            await self.db.execute(
                "DELETE FROM calendar_digests WHERE claimed_at < ?", (horizon.timestamp(),)
            )


def _events(rows: list[Row]) -> list[StoredEvent]:
    keys = rows[0].keys() if rows else []
    return [StoredEvent.from_row(row, keys) for row in rows]


def _exdates(event: CalendarEvent) -> str | None:
    return json.dumps([d.isoformat() for d in event.exdates]) if event.exdates else None


def as_dict(row: Row) -> dict[str, Any]:
    return dict(zip(row.keys(), tuple(row), strict=True))
