"""Full-text search of the marketplace on a real SQLite FTS5 table (no homeserver)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dorfbot import items as states
from dorfbot.items import MIGRATIONS, Item, ItemStore
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.storage import Database

Marketplace = bundled_plugin("marketplace")
search = importlib.import_module(Marketplace.__module__ + ".search")

HOSTILE = [
    '"',
    '""',
    "'",
    "*",
    "^",
    "-",
    "+",
    "NEAR(a b)",
    "a OR b",
    "NOT",
    "AND",
    "title:x",
    "doc:rasen",
    "{doc}: x",
    "(",
    ")",
    'a"b',
    "rasen*",
    "\\",
    "%",
    "_",
    "%_%",
    "\x00",
    "'; DROP TABLE items; --",
    "rasen OR 1=1",
    'NEAR("x" "y", 2)',
]


async def _db(path: Path) -> Database:
    db = Database(path / "t.db")
    await db.open()
    await db.migrate("moderation", MIGRATIONS)
    await db.migrate("marketplace", Marketplace.migrations)
    return db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await _db(tmp_path)
    yield database
    await database.close()


async def add(
    db: Database,
    title: str,
    *,
    body: str = "",
    village: str = "v",
    kind: str = "offer",
    state: str = states.PUBLISHED,
    category: str | None = None,
) -> Item:
    item, _ = await ItemStore(db).create(
        village=village,
        plugin="marketplace",
        kind=kind,
        state=state,
        author="@a:x",
        title=title,
        body=body,
        category=category,
    )
    await search.index(db, item)
    return item


def test_fold() -> None:
    assert search.fold("Rasenmäher GRÖSSE Straße Café") == "rasenmaeher groesse strasse cafe"
    assert search.terms("  Kinder-Fahrrad,  Größe 28!") == ["kinder", "fahrrad", "groesse", "28"]


def test_query_quotes_every_word() -> None:
    query = search.Query.build(['a"b', "or", "near"], trigram=True)
    assert query.match == '"a""b" AND "near"'
    assert query.likes == ("%or%",)
    assert search.Query.build(["a_b", "x%"], trigram=True).likes == ("%x\\%%",)
    assert search.Query.build(["ab"], trigram=False).match == '"ab"*'


async def test_search_matches_parts_of_words_and_umlaut_spellings(db: Database) -> None:
    mower = await add(
        db, "Rasenmäher zum Ausleihen", body="Benzin, frisch gewartet", category="garten"
    )
    bike = await add(db, "Kinderfahrrad 20 Zoll", kind="request")
    await add(db, "Rasenmäher im Nachbardorf", village="other")
    await add(db, "Rasenmäher wartet noch", state=states.PENDING)

    async def find(q: str, kinds: tuple[str, ...] = ("offer", "request")) -> list[int]:
        trigram = await search.uses_trigram(db)
        found = await search.search(
            db, "v", search.terms(q), kinds=kinds, trigram=trigram, limit=10
        )
        return [i.id for i in found]

    assert await find("rasenmaeher") == [mower.id]
    assert await find("RASENMÄHER benzin") == [mower.id]
    assert await find("garten") == [mower.id]
    assert await find("fahrrad") == [bike.id]
    assert await find("fahrrad", ("offer",)) == []
    assert await find("20") == [bike.id]  # short words through LIKE
    if await search.uses_trigram(db):
        assert await find("mäher") == [mower.id]  # inside a compound word
    await search.unindex(db, [mower.id])
    assert await find("rasenmäher") == []


async def test_hostile_queries_are_just_text(db: Database) -> None:
    await add(db, "Rasenmäher")
    trigram = await search.uses_trigram(db)
    for query in HOSTILE:
        await search.search(
            db, "v", search.terms(query), kinds=("offer",), trigram=trigram, limit=5
        )
        # and the raw string as one "word" (bypassing terms()) is still quoted
        await search.search(db, "v", [query], kinds=("offer",), trigram=trigram, limit=5)
    assert await db.fetchval("SELECT count(*) FROM items") == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.text(max_size=40))
def test_any_query_is_safe(tmp_path_factory: pytest.TempPathFactory, query: str) -> None:
    import asyncio

    async def run() -> None:
        database = await _db(tmp_path_factory.mktemp("q"))
        try:
            trigram = await search.uses_trigram(database)
            await search.search(
                database, "v", search.terms(query), kinds=("offer",), trigram=trigram, limit=5
            )
            await search.search(database, "v", [query], kinds=("offer",), trigram=trigram, limit=5)
        finally:
            await database.close()

    asyncio.run(run())
