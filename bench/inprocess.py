"""B3 (storage) and B7 (calendar): dorfbot's own code in this process, no homeserver.

Both call what the command handlers call, through the same async database
layer (one aiosqlite connection), so the figures include the thread hop every
query of the running bot pays.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dorfbot import items as states
from dorfbot.config import VillageConfig
from dorfbot.i18n import CORE_LOCALES, Catalogs
from dorfbot.items import ItemStore
from dorfbot.plugin_loader import locales_dir
from dorfbot.storage import Database

from .seed import Calendar, cal_cache, cal_store, prepare, search, seed_events
from .timing import Clock

# What residents search for: whole words, parts of compounds, umlauts typed
# either way, two words, rare and missing words.
FIND_QUERIES = [
    "Rasenmäher",
    "rasenmaeher",
    "mäher",
    "Fahrrad",
    "Fahrrad Kinder",
    "Holz",
    "brennholz",
    "Nachhilfe",
    "Einkauf",
    "Hilfe Computer",
    "Leiter",
    "Kinderbett gut erhalten",
    "Garten",
    "Mitfahrt Soest",
    "Schnee",
    "Äpfel",
    "Reparatur",
    "Klavier",
    "Hochbeet",
    "xyzzy",
]
SHORT_QUERIES = ["TV", "PC", "Ei"]  # words under three letters: LIKE, not the trigram index


async def _plan(db: Database, sql: str, params: tuple[Any, ...]) -> str:
    rows = await db.fetchall("EXPLAIN QUERY PLAN " + sql, params)
    return " | ".join(str(r[3]) for r in rows)


async def b3_storage(
    db_path: Path,
    villages: list[str],
    *,
    categories: list[str],
    districts: list[str],
    listings: int = 1000,
    finds: int = 500,
    seed: int = 3,
) -> dict[str, Any]:
    """p50/p99 of filtered listings and of full-text search over the seeded posts."""
    rng = random.Random(seed)
    db = Database(db_path)
    await db.open()
    try:
        store = ItemStore(db)
        trigram = await search.uses_trigram(db)
        for v in villages[:3]:  # warm the page cache like a running bot's
            await store.list(v, kinds=("offer",), limit=11)
            await search.search(
                db, v, ["holz"], kinds=("offer", "request"), trigram=trigram, limit=11
            )

        filtered = Clock()
        by_filter = {"category": Clock(), "district": Clock(), "both": Clock()}
        unfiltered = Clock()
        for i in range(listings):
            village = rng.choice(villages)
            kind = rng.choice(("offer", "request"))
            which = ("category", "district", "both", "none")[i % 4]
            cat = rng.choice(categories) if which in ("category", "both") else None
            dist = rng.choice(districts) if which in ("district", "both") else None
            page = rng.choice((1, 1, 1, 2, 3))
            with (unfiltered if which == "none" else by_filter[which])():
                await store.list(
                    village,
                    kinds=(kind,),
                    states=(states.PUBLISHED,),
                    category=cat,
                    district=dist,
                    limit=11,
                    offset=(page - 1) * 10,
                )
        for clock in by_filter.values():
            filtered.wall += clock.wall
            filtered.cpu += clock.cpu

        finds_all = Clock()
        by_query: dict[str, Clock] = {}
        for i in range(finds):
            query = FIND_QUERIES[i % len(FIND_QUERIES)]
            village = rng.choice(villages)
            clock = by_query.setdefault(query, Clock())
            with clock():
                await search.search(
                    db,
                    village,
                    search.terms(query),
                    kinds=("offer", "request"),
                    trigram=trigram,
                    limit=11,
                )
            finds_all.wall.append(clock.wall[-1])
            finds_all.cpu.append(clock.cpu[-1])
        short = Clock()
        for i in range(60):
            village = rng.choice(villages)
            with short():
                await search.search(
                    db,
                    village,
                    search.terms(SHORT_QUERIES[i % 3]),
                    kinds=("offer", "request"),
                    trigram=trigram,
                    limit=11,
                )

        v0 = villages[0]
        listing_sql = (
            "SELECT * FROM items WHERE village = ? AND state IN (?) AND kind IN (?) "
            "AND category = ? AND district = ? ORDER BY published_at DESC, id DESC LIMIT ? OFFSET ?"
        )
        plans = {
            "listing category+district": await _plan(
                db, listing_sql, (v0, states.PUBLISHED, "offer", categories[0], districts[0], 11, 0)
            ),
            "find": await _plan(
                db,
                f"SELECT i.* FROM {search.TABLE} JOIN {search.KEYS} AS k "
                f"ON k.key = {search.TABLE}.rowid JOIN items AS i ON i.id = k.item_id "
                f"WHERE {search.TABLE} MATCH ? AND i.village = ? AND i.state = ? "
                f"AND i.kind IN (?, ?) ORDER BY {search.TABLE}.rowid DESC LIMIT 11",
                ('"holz"', v0, states.PUBLISHED, "offer", "request"),
            ),
        }
        hits = {
            q: await db.fetchval(
                f"SELECT count(*) FROM {search.TABLE} WHERE {search.TABLE} MATCH ?",
                (search.Query.build(search.terms(q), trigram=trigram).match,),
            )
            for q in ("Holz", "Rasenmäher", "Hilfe Computer")
        }
        return {
            "listing": filtered.summary(),
            "listing_by_filter": {k: v.summary() for k, v in by_filter.items()},
            "listing_unfiltered": unfiltered.summary(),
            "find": finds_all.summary(),
            "find_by_query": {k: v.summary() for k, v in by_query.items()},
            "find_short_words": short.summary(),
            "trigram": trigram,
            "plans": plans,
            "fts_matches_all_villages": hits,
        }
    finally:
        await db.close()


async def b7_calendar(workdir: Path, *, events: int = 1000, runs: int = 30) -> dict[str, Any]:
    """A month of 1,000 recurring events as ``!termine monat`` expands it, and the feed.

    ``month_expand``: the month's occurrences while the calendar is unchanged
    (its parsed events and expanded days kept, as between two changes);
    ``month_expand_changed``: the same right after a change of the calendar
    (every event read, parsed and expanded again); ``month_reply``: all of
    ``!termine monat`` but sending (occurrences, RSVP counts of the lines shown,
    the text), calendar unchanged.
    """
    db = Database(workdir / "calendar.db")
    await db.open()
    try:
        await prepare(db)
        village = VillageConfig(id="kalenderdorf", name="Kalenderdorf")
        seeded = await seed_events(db, village.id, events)
        plugin: Any = Calendar()
        plugin.db = db
        plugin.config = dict(Calendar.defaults)
        plugin.log = logging.getLogger("bench.calendar")
        plugin.events = cal_store.EventStore(db)
        plugin.cache = cal_cache.EventCache(plugin.events, plugin.log)
        catalogs = Catalogs()
        catalogs.add_dir(CORE_LOCALES)
        catalogs.add_dir(locales_dir(Calendar))
        t = catalogs.translator("de")
        limit = int(plugin.config["max_list"])

        expand, changed, reply, feed = Clock(), Clock(), Clock(), Clock()
        occurrences = feed_bytes = 0
        for i in range(runs + 2):
            now = datetime.now(UTC)
            with reply():
                with expand():
                    found = await plugin.occurrences(village, now, now + timedelta(days=31))
                shown = await plugin.with_rsvps(found[:limit])
                plugin._grouped(village, t, shown, now)
            occurrences = len(found)
            if i < 2:  # warm-up: first queries, parsed-rule caches
                del expand.wall[-1], expand.cpu[-1], reply.wall[-1], reply.cpu[-1]
        for _ in range(runs):
            plugin.cache.clear()  # as after a change of the calendar
            now = datetime.now(UTC)
            with changed():
                found = await plugin.occurrences(village, now, now + timedelta(days=31))
            assert len(found) == occurrences
        for _ in range(max(10, runs // 2)):
            with feed():
                text = await plugin.feed(village)
            feed_bytes = len(text.encode())
        return {
            "seeded": seeded,
            "month_occurrences": occurrences,
            "month_expand": expand.summary(),
            "month_expand_changed": changed.summary(),
            "month_reply": reply.summary(),
            "feed": feed.summary(),
            "feed_bytes": feed_bytes,
            "loads": plugin.cache.loads,
        }
    finally:
        await db.close()
