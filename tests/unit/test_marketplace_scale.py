"""Listing and search stay index-driven with 100,000 posts (plans asserted, times printed)."""

from __future__ import annotations

import importlib
import random
import time
from pathlib import Path
from typing import Any

from dorfbot import items as states
from dorfbot.items import MIGRATIONS, ItemStore
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.storage import Database
from dorfbot.storage.sqlite import SQLiteDatabase

Marketplace = bundled_plugin("marketplace")
search = importlib.import_module(Marketplace.__module__ + ".search")
POSTS = 100_000
WORDS = [
    "Rasenmäher",
    "Fahrrad",
    "Kinderwagen",
    "Holz",
    "Nachhilfe",
    "Einkauf",
    "Leiter",
    "Computer",
    "Gartenhilfe",
    "Mitfahrt",
    "Bohrmaschine",
    "Schrank",
]


class RecordingDatabase(SQLiteDatabase):
    """Remembers the last SELECT, to ask SQLite for its plan."""

    last: tuple[str, tuple[Any, ...]] = ("", ())

    async def fetchall(self, sql: str, params: Any = ()) -> Any:
        if sql.lstrip().upper().startswith("SELECT"):
            self.last = (sql, tuple(params))
        return await super().fetchall(sql, params)


async def fill(db: Database) -> None:
    rng = random.Random(7)
    now = time.time()
    rows = []
    for n in range(1, POSTS + 1):
        village = "gross" if n % 10 else "klein"
        state = rng.choice([states.PUBLISHED] * 2 + [states.DONE, states.EXPIRED])
        published = now - rng.random() * 365 * 86400
        title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} Nr {n}"
        rows.append(
            (
                n,
                village,
                n,
                "marketplace",
                rng.choice(["offer", "request"]),
                state,
                f"@u{n % 5000}:x",
                title,
                "",
                rng.choice(["garten", "technik", None]),
                rng.choice(["Nord", "Süd", "Ortsmitte"]),
                published,
                published,
                published + 30 * 86400,
            )
        )
    async with db.transaction():
        await db.executemany(
            "INSERT INTO items (id, village, number, plugin, kind, state, author, title, body, "
            "category, district, created_at, published_at, expires_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    await search.rebuild(db)  # keyed in publication order, as the plugin keeps it
    await db.execute("ANALYZE")


async def plan(db: RecordingDatabase) -> str:
    sql, params = db.last
    rows = await db.fetchall("EXPLAIN QUERY PLAN " + sql, params)
    return " | ".join(str(r[3]) for r in rows)


async def test_listing_and_search_with_100k_posts(tmp_path: Path) -> None:
    db = RecordingDatabase(tmp_path / "big.db")
    await db.open()
    try:
        await db.migrate("moderation", MIGRATIONS)
        await db.migrate("marketplace", Marketplace.migrations)
        await fill(db)
        store = ItemStore(db)
        listings = {
            "offers": dict(kinds=("offer",)),
            "offers page 50": dict(kinds=("offer",), offset=490),
            "offers #garten": dict(kinds=("offer",), category="garten"),
            "requests ortsteil:Nord": dict(kinds=("request",), district="Nord"),
            "#garten ortsteil:Süd": dict(kinds=("offer",), category="garten", district="Süd"),
        }
        for label, filters in listings.items():
            started = time.perf_counter()
            found = await store.list("gross", states=(states.PUBLISHED,), limit=11, **filters)
            took = (time.perf_counter() - started) * 1000
            query_plan = await plan(db)
            print(f"{label}: {took:.1f} ms; {query_plan}")
            assert len(found) == 11
            assert "USING INDEX" in query_plan and "TEMP B-TREE" not in query_plan, query_plan
            dates = [i.published_at or 0 for i in found]
            assert dates == sorted(dates, reverse=True)

        started = time.perf_counter()
        mine = await store.list("gross", states=states.ALL_STATES, author="@u42:x", limit=11)
        print(f"mine: {(time.perf_counter() - started) * 1000:.1f} ms; {await plan(db)}")
        assert mine and "SCAN items" not in await plan(db)

        trigram = await search.uses_trigram(db)
        for query in ("rasenmäher", "mäher fahrrad", "nr 4711", "xyzzy"):
            started = time.perf_counter()
            hits = await search.search(
                db,
                "gross",
                search.terms(query),
                kinds=("offer", "request"),
                trigram=trigram,
                limit=11,
            )
            took = (time.perf_counter() - started) * 1000
            print(f"find {query!r}: {len(hits)} hits in {took:.1f} ms; {await plan(db)}")
            assert "SCAN items" not in await plan(db)
        assert not await search.search(
            db, "gross", ["xyzzy"], kinds=("offer",), trigram=trigram, limit=11
        )
    finally:
        await db.close()
