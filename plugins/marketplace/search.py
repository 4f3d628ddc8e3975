"""Full-text search over open posts: an FTS5 table kept beside the core's items.

The table ``marketplace_fts`` holds one row per published post with a folded
copy of title, text and category. Its rowid is the post's place in the order of
publication (``marketplace_fts_keys`` maps it to ``items.id``), so a search
reads FTS5's matches newest-published first and SQLite stops at the page limit
instead of collecting and sorting every match (``Garten`` matches a fifth of
all posts). Folding (lower case, umlauts
spelled out, other accents dropped) is applied to documents and queries alike,
so ``rasenmaeher``, ``Rasenmäher`` and ``RASENMÄHER`` find each other.

With SQLite's ``trigram`` tokenizer (SQLite >= 3.34) every word matches inside
longer words too (``mäher`` finds ``Rasenmäher``), which suits German compound
nouns; words shorter than three letters are matched with ``LIKE`` instead.
Older SQLite builds get ``unicode61`` with prefix matching.

User input never reaches FTS5's query syntax: every word is quoted as a
phrase, so ``OR``, ``NEAR(``, ``*``, ``^``, ``-`` or stray quotes are just text.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from dorfbot import items as states
from dorfbot.items import Item, chunks, marks
from dorfbot.storage import Database
from dorfbot.text import fold

TABLE = "marketplace_fts"
MAX_TERMS = 8
_WORD = re.compile(r"\w+")


def terms(query: str) -> list[str]:
    """The folded words of a query (at most :data:`MAX_TERMS`)."""
    return _WORD.findall(fold(query))[:MAX_TERMS]


def document(item: Item) -> str:
    """What is indexed for an item."""
    return fold(" ".join(p for p in (item.title, item.body, item.category or "") if p))


async def create_table(db: Database) -> None:
    """Migration: the FTS table, trigram where SQLite has it."""
    try:
        await db.execute(f"CREATE VIRTUAL TABLE {TABLE} USING fts5(doc, tokenize='trigram')")
    except sqlite3.OperationalError:
        await db.execute(f"CREATE VIRTUAL TABLE {TABLE} USING fts5(doc, tokenize='unicode61')")


async def uses_trigram(db: Database) -> bool:
    sql = await db.fetchval("SELECT sql FROM sqlite_master WHERE name = ?", (TABLE,))
    return "trigram" in str(sql or "")


def _phrase(term: str) -> str:
    # FTS5's query parser ends a string at NUL ("unterminated string")
    return '"' + term.replace("\x00", "").replace('"', '""') + '"'


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Query:
    """An FTS5 MATCH expression (or None) and LIKE patterns, all from quoted user words."""

    match: str | None
    likes: tuple[str, ...]

    @classmethod
    def build(cls, words: list[str], *, trigram: bool) -> Query:
        if not trigram:
            return cls(" AND ".join(_phrase(w) + "*" for w in words) or None, ())
        long = [w for w in words if len(w) >= 3]
        short = [w for w in words if len(w) < 3]
        return cls(" AND ".join(_phrase(w) for w in long) or None, tuple(_like(w) for w in short))


KEYS = "marketplace_fts_keys"


async def create_keys(db: Database) -> None:
    """Migration: rowids in publication order, and the published posts indexed by them."""
    await db.execute(
        f"CREATE TABLE {KEYS} (key INTEGER PRIMARY KEY, item_id INTEGER NOT NULL UNIQUE)"
    )
    await rebuild(db)


async def rebuild(db: Database) -> None:
    """Index every published (or being published) post afresh, keyed in publication order."""
    rows = await db.fetchall(
        "SELECT * FROM items WHERE plugin = 'marketplace' AND state IN (?, ?) "
        "ORDER BY published_at, id",
        (states.PUBLISHING, states.PUBLISHED),
    )
    docs = [(n, document(Item.from_row(r))) for n, r in enumerate(rows, start=1)]
    async with db.transaction():
        await db.execute(f"DELETE FROM {TABLE}")
        await db.execute(f"DELETE FROM {KEYS}")
        await db.executemany(
            f"INSERT INTO {KEYS} (key, item_id) VALUES (?, ?)",
            [(n, r["id"]) for n, r in enumerate(rows, start=1)],
        )
        await db.executemany(f"INSERT INTO {TABLE} (rowid, doc) VALUES (?, ?)", docs)


async def index(db: Database, item: Item) -> None:
    """Make a post findable when it is published (the newest key); once only."""
    if item.state not in (states.PUBLISHING, states.PUBLISHED):
        return  # pending posts are indexed when a moderator approves them
    # An approved post is indexed while its message is being posted ('publishing');
    # searches list only 'published' ones, so it is found from the moment it is live.
    async with db.transaction():
        if await db.fetchval(f"SELECT 1 FROM {KEYS} WHERE item_id = ?", (item.id,)):
            return
        key = await db.fetchval(
            f"INSERT INTO {KEYS} (item_id) VALUES (?) RETURNING key", (item.id,)
        )
        await db.execute(f"INSERT INTO {TABLE} (rowid, doc) VALUES (?, ?)", (key, document(item)))


async def unindex(db: Database, item_ids: Sequence[int]) -> None:
    for chunk in chunks(item_ids):
        async with db.transaction():
            await db.execute(
                f"DELETE FROM {TABLE} WHERE rowid IN "
                f"(SELECT key FROM {KEYS} WHERE item_id IN ({marks(chunk)}))",
                chunk,
            )
            await db.execute(f"DELETE FROM {KEYS} WHERE item_id IN ({marks(chunk)})", chunk)


async def search(
    db: Database,
    village: str,
    words: list[str],
    *,
    kinds: tuple[str, ...],
    trigram: bool,
    limit: int,
    offset: int = 0,
) -> list[Item]:
    """Published posts of a village matching every word, newest first."""
    query = Query.build(words, trigram=trigram)
    where: list[str] = []
    params: list[object] = []
    if query.match:
        where.append(f"{TABLE} MATCH ?")
        params.append(query.match)
    for pattern in query.likes:
        where.append(f"{TABLE}.doc LIKE ? ESCAPE '\\'")
        params.append(pattern)
    if not where:
        return []
    where += ["i.village = ?", "i.state = ?", f"i.kind IN ({','.join('?' * len(kinds))})"]
    params += [village, states.PUBLISHED, *kinds]
    # newest published first: the FTS rowid order, which FTS5 reads without sorting
    rows = await db.fetchall(
        f"SELECT i.* FROM {TABLE} JOIN {KEYS} AS k ON k.key = {TABLE}.rowid "
        f"JOIN items AS i ON i.id = k.item_id "
        f"WHERE {' AND '.join(where)} ORDER BY {TABLE}.rowid DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [Item.from_row(r) for r in rows]
