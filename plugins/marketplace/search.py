"""Full-text search over open posts: an FTS5 table kept beside the core's items.

The table ``marketplace_fts`` holds one row per open post (rowid = ``items.id``)
with a folded copy of title, text and category. Folding (lower case, umlauts
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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from dorfbot import items as states
from dorfbot.items import Item, chunks, marks
from dorfbot.storage import Database

TABLE = "marketplace_fts"
MAX_TERMS = 8
_SPELLED = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Lower case, umlauts spelled out, other diacritics removed."""
    text = unicodedata.normalize("NFC", text).casefold()
    for umlaut, spelled in _SPELLED.items():
        text = text.replace(umlaut, spelled)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


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
    return '"' + term.replace('"', '""') + '"'


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


async def index(db: Database, item: Item) -> None:
    """Add or refresh an item's row."""
    async with db.transaction():
        await db.execute(f"DELETE FROM {TABLE} WHERE rowid = ?", (item.id,))
        await db.execute(
            f"INSERT INTO {TABLE} (rowid, doc) VALUES (?, ?)", (item.id, document(item))
        )


async def unindex(db: Database, item_ids: Sequence[int]) -> None:
    for chunk in chunks(item_ids):
        await db.execute(f"DELETE FROM {TABLE} WHERE rowid IN ({marks(chunk)})", chunk)


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
    rows = await db.fetchall(
        f"SELECT i.* FROM {TABLE} JOIN items AS i ON i.id = {TABLE}.rowid "
        f"WHERE {' AND '.join(where)} ORDER BY i.published_at DESC, i.id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [Item.from_row(r) for r in rows]
