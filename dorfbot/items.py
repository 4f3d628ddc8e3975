"""Items: posts and events that go through moderation, numbered per village.

The core owns the ``items`` table so that numbers are shared by every kind of
item (``!freigeben 12`` is unambiguous) and the moderation queue works the same
for all of them. Plugins keep what only they need (an event's start time, the
full-text index) in their own tables keyed by ``items.id``.

State machine::

    pending ─► published ─► done | expired | removed | deleted | cancelled
       └─────► rejected | deleted
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dorfbot.matrix import Sent, txn_id
from dorfbot.storage import Database, Row, sql_script

PENDING = "pending"
#: Approved, its message not posted yet (the homeserver failed): the bot retries
#: at start and every few minutes, and tells the author once the message exists.
PUBLISHING = "publishing"
PUBLISHED = "published"
DONE = "done"
EXPIRED = "expired"
REMOVED = "removed"
REJECTED = "rejected"
DELETED = "deleted"
CANCELLED = "cancelled"

OPEN_STATES = (PENDING, PUBLISHING, PUBLISHED)
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PUBLISHING, PUBLISHED, REJECTED, DELETED}),
    PUBLISHING: frozenset({PUBLISHED, REMOVED, DELETED}),
    PUBLISHED: frozenset({DONE, EXPIRED, REMOVED, DELETED, CANCELLED}),
}

MIGRATIONS = [
    sql_script(
        "CREATE TABLE village_counters (village TEXT PRIMARY KEY, last_number INTEGER NOT NULL)",
        """CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            village TEXT NOT NULL,
            number INTEGER NOT NULL,
            plugin TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            author TEXT NOT NULL,
            on_behalf_of TEXT,
            title TEXT NOT NULL,
            body TEXT NOT NULL DEFAULT '',
            category TEXT,
            district TEXT,
            created_at REAL NOT NULL,
            published_at REAL,
            closed_at REAL,
            expires_at REAL,
            reminded_at REAL,
            decided_by TEXT,
            decided_at REAL,
            reason TEXT,
            source_room TEXT,
            source_event TEXT UNIQUE,
            queue_room TEXT,
            queue_event TEXT,
            published_room TEXT,
            published_event TEXT,
            data TEXT NOT NULL DEFAULT '{}',
            UNIQUE (village, number)
        )""",
        "CREATE INDEX items_listing ON items (village, kind, state, published_at DESC)",
        "CREATE INDEX items_category ON items (village, kind, state, category, published_at DESC)",
        "CREATE INDEX items_district ON items (village, kind, state, district, published_at DESC)",
        "CREATE INDEX items_author ON items (author)",
        "CREATE INDEX items_queue_event ON items (queue_event)",
        "CREATE INDEX items_published_event ON items (published_event)",
        "CREATE INDEX items_expiry ON items (state, expires_at)",
        """CREATE TABLE blocks (
            village TEXT NOT NULL, user_id TEXT NOT NULL, until REAL, reason TEXT,
            blocked_by TEXT NOT NULL, created_at REAL NOT NULL,
            PRIMARY KEY (village, user_id))""",
        """CREATE TABLE modlog (
            id INTEGER PRIMARY KEY, village TEXT NOT NULL, ts REAL NOT NULL,
            actor TEXT NOT NULL, action TEXT NOT NULL, number INTEGER,
            target_user TEXT, reason TEXT)""",
        "CREATE INDEX modlog_village_ts ON modlog (village, ts DESC)",
    ),
    # Listings order by ``published_at DESC, id DESC``. SQLite satisfies that from
    # an ascending index scanned backwards (the rowid breaks ties); the DESC
    # indexes of version 1 left a sort step per query.
    sql_script(
        "DROP INDEX items_listing",
        "DROP INDEX items_category",
        "DROP INDEX items_district",
        "CREATE INDEX items_listing ON items (village, kind, state, published_at)",
        "CREATE INDEX items_category ON items (village, kind, state, category, published_at)",
        "CREATE INDEX items_district ON items (village, kind, state, district, published_at)",
        "CREATE INDEX items_village_author ON items (village, author, created_at)",
        "CREATE INDEX items_village_state ON items (village, state)",
    ),
    # Every message the bot sent that carries an item's or a person's content
    # (queue messages, published posts, notices to authors, reminders, digests),
    # so ``!vergessen`` can redact them all. No foreign key: rows are deleted
    # with their item by the erasure and the retention purge.
    sql_script(
        """CREATE TABLE sent_messages (
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            item_id INTEGER,
            user_id TEXT,
            sent_at REAL NOT NULL
        )""",
        "CREATE INDEX sent_messages_item ON sent_messages (item_id)",
        "CREATE INDEX sent_messages_user ON sent_messages (user_id)",
    ),
    # Approved items whose post failed were left "published" without a message
    # (and nothing retried them): they become "publishing", which the bot retries.
    # Items published without a moderator (imports, organizers) are not touched.
    sql_script(
        "UPDATE items SET state = 'publishing', published_at = NULL "
        "WHERE state = 'published' AND published_event IS NULL "
        "AND decided_by IS NOT NULL AND decided_by != author",
    ),
]

#: States an item can only reach through publication (``published_at`` is set).
PUBLISHED_STATES = frozenset({PUBLISHED, DONE, EXPIRED, REMOVED, CANCELLED})
ALL_STATES = (PENDING, PUBLISHING, PUBLISHED, DONE, EXPIRED, REMOVED, REJECTED, DELETED, CANCELLED)

#: How many IDs one ``IN (...)`` list holds (SQLite's default limit is far above).
CHUNK = 500


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterable[Sequence[int]]:
    """``ids`` in slices short enough for one ``IN (...)`` list."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def marks(ids: Sequence[object]) -> str:
    """The ``?, ?, ...`` placeholders for an ``IN`` list of ``ids``."""
    return ",".join("?" * len(ids))


@dataclass
class Item:
    """One row of ``items`` as a typed object."""

    id: int
    village: str
    number: int
    plugin: str
    kind: str
    state: str
    author: str
    title: str
    body: str = ""
    on_behalf_of: str | None = None
    category: str | None = None
    district: str | None = None
    created_at: float = 0.0
    published_at: float | None = None
    closed_at: float | None = None
    expires_at: float | None = None
    reminded_at: float | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None
    source_room: str | None = None
    source_event: str | None = None
    queue_room: str | None = None
    queue_event: str | None = None
    published_room: str | None = None
    published_event: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Row) -> Item:
        values = dict(zip(row.keys(), tuple(row), strict=True))
        values["data"] = json.loads(values.get("data") or "{}")
        return cls(**values)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def key(self, *purpose: object) -> str:
        """A transaction key for a send about this item.

        Built from what identifies the item for good (village, number, creation
        time) rather than the row ID, which a restored backup could hand out again.
        """
        return txn_id("item", self.village, self.number, self.created_at, *purpose)


class ItemStore:
    """Queries and state changes of items; every write is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        village: str,
        plugin: str,
        kind: str,
        state: str,
        author: str,
        title: str,
        body: str = "",
        on_behalf_of: str | None = None,
        category: str | None = None,
        district: str | None = None,
        source_room: str | None = None,
        source_event: str | None = None,
        expires_at: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> tuple[Item, bool]:
        """Insert an item with the village's next number; (item, created).

        Idempotent by ``source_event``: a command handled twice after a crash
        finds its item instead of creating a second one.
        """
        async with self.db.transaction():
            if source_event:
                existing = await self.db.fetchone(
                    "SELECT * FROM items WHERE source_event = ?", (source_event,)
                )
                if existing is not None:
                    return Item.from_row(existing), False
            await self.db.execute(
                "INSERT INTO village_counters (village, last_number) VALUES (?, 1) "
                "ON CONFLICT(village) DO UPDATE SET last_number = last_number + 1",
                (village,),
            )
            number = await self.db.fetchval(
                "SELECT last_number FROM village_counters WHERE village = ?", (village,)
            )
            now = time.time()
            item_id = await self.db.fetchval(
                "INSERT INTO items (village, number, plugin, kind, state, author, on_behalf_of, "
                "title, body, category, district, created_at, published_at, expires_at, "
                "source_room, source_event, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "RETURNING id",
                (
                    village,
                    number,
                    plugin,
                    kind,
                    state,
                    author,
                    on_behalf_of,
                    title,
                    body,
                    category,
                    district,
                    now,
                    now if state == PUBLISHED else None,
                    expires_at,
                    source_room,
                    source_event,
                    json.dumps(data or {}),
                ),
            )
        item = await self.get_by_id(item_id)
        assert item is not None
        return item, True

    async def get_by_id(self, item_id: int) -> Item | None:
        row = await self.db.fetchone("SELECT * FROM items WHERE id = ?", (item_id,))
        return Item.from_row(row) if row else None

    async def get(self, village: str, number: int) -> Item | None:
        row = await self.db.fetchone(
            "SELECT * FROM items WHERE village = ? AND number = ?", (village, number)
        )
        return Item.from_row(row) if row else None

    async def by_event(self, column: str, event_id: str) -> Item | None:
        """The item whose queue or published message is ``event_id``."""
        if column not in ("queue_event", "published_event"):
            raise ValueError(column)
        row = await self.db.fetchone(f"SELECT * FROM items WHERE {column} = ?", (event_id,))
        return Item.from_row(row) if row else None

    async def update(self, item: Item, **changes: Any) -> Item:
        """Write changed columns (``data`` as JSON) and return the fresh item."""
        if "data" in changes:
            changes["data"] = json.dumps(changes["data"])
        columns = ", ".join(f"{name} = ?" for name in changes)
        await self.db.execute(
            f"UPDATE items SET {columns} WHERE id = ?", (*changes.values(), item.id)
        )
        fresh = await self.get_by_id(item.id)
        assert fresh is not None
        return fresh

    async def transition(self, item: Item, state: str, **changes: Any) -> Item | None:
        """Move to ``state`` if allowed from the item's current state; None if not.

        The check and the write are one statement, so two moderators approving at
        once cannot both succeed.
        """
        if state not in TRANSITIONS.get(item.state, frozenset()):
            return None
        now = time.time()
        if state == PUBLISHED:
            changes.setdefault("published_at", now)
        elif state not in (PENDING, PUBLISHING):
            changes.setdefault("closed_at", now)
        columns = ", ".join(f"{name} = ?" for name in changes)
        count = await self.db.execute_rowcount(
            f"UPDATE items SET state = ?{', ' if columns else ''}{columns} "
            "WHERE id = ? AND state = ?",
            (state, *changes.values(), item.id, item.state),
        )
        if count != 1:
            return None
        return await self.get_by_id(item.id)

    async def list(
        self,
        village: str,
        *,
        kinds: tuple[str, ...] | None = None,
        states: tuple[str, ...] = (PUBLISHED,),
        category: str | None = None,
        district: str | None = None,
        author: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Item]:
        """Items newest first, filtered (``kinds=None``: every kind); uses the listing indexes."""
        where = ["village = ?", f"state IN ({','.join('?' * len(states))})"]
        params: list[Any] = [village, *states]
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        if category:
            where.append("category = ?")
            params.append(category)
        if district:
            where.append("district = ?")
            params.append(district)
        if author:
            where.append("(author = ?)")
            params.append(author)
        # Published-only listings order by an indexed column; mixed ones (a
        # person's own items, the queue) are small and may sort.
        order = (
            "published_at"
            if set(states) <= PUBLISHED_STATES
            else "COALESCE(published_at, created_at)"
        )
        rows = await self.db.fetchall(
            f"SELECT * FROM items WHERE {' AND '.join(where)} "
            f"ORDER BY {order} DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [Item.from_row(r) for r in rows]

    async def exists_for_source(self, source_event: str) -> bool:
        """Whether a command event already created an item (a replay after a crash)."""
        return (
            await self.db.fetchval("SELECT 1 FROM items WHERE source_event = ?", (source_event,))
            is not None
        )

    async def count_since(self, village: str, author: str, since: float) -> int:
        """Items an author created in a village since ``since`` (for the daily limit)."""
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM items WHERE village = ? AND author = ? AND created_at >= ?",
                (village, author, since),
            )
            or 0
        )

    async def record_sent(
        self,
        room_id: str,
        event_id: str | Sent,
        *,
        items: Iterable[Item | int] = (),
        users: Iterable[str] = (),
    ) -> None:
        """Record that the bot's message ``event_id`` carries these items' content or
        names these people (a pill, a welcome, a contact request).

        Call it wherever such a message is sent: ``!vergessen`` redacts every
        recorded message of the person's items and about the person. Edits need
        no record of their own (they are found through the original). A message
        still in flight (a :class:`~dorfbot.matrix.Sent`) is recorded once it is
        delivered, so the command loop does not wait for it.
        """
        ids = dict.fromkeys(it if isinstance(it, int) else it.id for it in items)
        if isinstance(event_id, Sent):
            if not event_id.done:
                people = list(dict.fromkeys(users))

                async def record(delivered: str) -> None:
                    await self.record_sent(room_id, delivered, items=list(ids), users=people)

                event_id.then(record)
                return
            event_id = await event_id.event_id()
        now = time.time()
        rows: list[tuple[str, str, int | None, str | None, float]] = [
            (room_id, event_id, item_id, None, now) for item_id in ids
        ]
        rows.extend((room_id, event_id, None, user, now) for user in dict.fromkeys(users))
        if rows:
            await self.db.executemany(
                "INSERT INTO sent_messages (room_id, event_id, item_id, user_id, sent_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    async def sent_about(
        self, user_id: str, item_ids: Sequence[int]
    ) -> tuple[tuple[str, str], ...]:
        """(room, event) of every recorded message about ``user_id`` or one of ``item_ids``."""
        found: dict[tuple[str, str], None] = {}
        for row in await self.db.fetchall(
            "SELECT room_id, event_id FROM sent_messages WHERE user_id = ? ORDER BY rowid",
            (user_id,),
        ):
            found[(row["room_id"], row["event_id"])] = None
        for chunk in chunks(item_ids):
            for row in await self.db.fetchall(
                "SELECT room_id, event_id FROM sent_messages "
                f"WHERE item_id IN ({marks(chunk)}) ORDER BY rowid",
                chunk,
            ):
                found[(row["room_id"], row["event_id"])] = None
        return tuple(found)

    async def forget_sent(self, user_id: str | None, item_ids: Sequence[int]) -> None:
        """Drop the records of messages about ``user_id`` and ``item_ids`` (inside the caller's
        transaction, with the items themselves)."""
        if user_id is not None:
            await self.db.execute("DELETE FROM sent_messages WHERE user_id = ?", (user_id,))
        for chunk in chunks(item_ids):
            await self.db.execute(
                f"DELETE FROM sent_messages WHERE item_id IN ({marks(chunk)})", chunk
            )

    async def approved_count(self, village: str, author: str) -> int:
        """Items of an author a moderator approved (for ``trusted_after``).

        Only a moderator's decision counts (``decided_by`` is set by
        :meth:`~dorfbot.moderation.Moderation.decide` alone): items published
        without review (``moderation: off``, an organizer's, an import) and
        items removed later do not make anyone trusted.
        """
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM items WHERE village = ? AND author = ? AND published_at "
                "IS NOT NULL AND decided_by IS NOT NULL AND decided_by != author AND state != ?",
                (village, author, REMOVED),
            )
            or 0
        )
