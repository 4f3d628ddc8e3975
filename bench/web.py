"""``python -m bench.web``: the public page and Atom feed of a big village, over HTTP.

The village holds 1,000 recurring events (``bench/seed.py``, the B7 mix),
10,000 open offers and 50 announcements of the last 30 days. A bot is prepared
on that database without a homeserver (its plugins started, their sends never
needed), its HTTP server listens on loopback, and one client asks for each
case in turn, round after round (so load on the machine falls on every case
alike): wall time from sending the request to the last byte, p50/p95/p99
(goal of issue 17: p99 under 50 ms).

- ``floor``: the same server answering a static body of the page's size, in
  the same run: what HTTP and the client cost on this machine right now.
- ``page_cold``, ``embed_cold``, ``feed_cold``: rendered for every request, as
  the first request after any write to the database does (a new offer, a
  handled command); the calendar's parsed events and expanded days stay kept,
  as they do until the calendar itself changes.
- ``page_changed``: also the calendar's kept events dropped, as the first
  request after a change of the calendar (a new, changed or cancelled event)
  renders it: every event read, parsed and expanded.
- ``page``, ``embed``, ``feed``: the rendered page reused while the data is
  unchanged (at most a minute); ``page_304`` a conditional request.

Printed as a table and as JSON (also ``bench/web.json``).

    .venv/bin/python -m bench.web [--runs 300] [--offers 10000] [--events 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from dorfbot.bot import Bot
from dorfbot.config import parse_config

from .seed import THINGS, seed_events
from .timing import Clock

VILLAGE = "grossdorf"
CATEGORIES = ["garten", "einkauf", "fahrdienst", "technik", "haushalt", "sonstiges"]
DISTRICTS = ["Nord", "Süd", "Ortsmitte"]
GOAL_P99_MS = 50.0
OUT = Path(__file__).parent / "web.json"


def _config(workdir: Path) -> Any:
    raw = {
        "homeserver": "http://127.0.0.1:9",
        "user_id": "@bot:bench",
        "password": "unused",
        "database": str(workdir / "web.db"),
        "http": {"listen": "127.0.0.1:0", "public_url": "https://dorf.bench"},
        "encryption": False,
        "villages": [
            {
                "id": VILLAGE,
                "name": "Großdorf",
                "rooms": {"moderation": "!mod:bench", "marketplace": "#markt:bench"},
                "categories": CATEGORIES,
                "districts": DISTRICTS,
                "web": {"public": True, "marketplace": True},
            }
        ],
    }
    return parse_config(raw, base_dir=workdir, env={})


async def _seed(bot: Bot, *, events: int, offers: int, announcements: int) -> dict[str, Any]:
    db = bot.db
    seeded = await seed_events(db, VILLAGE, events)  # item ids and numbers 1..events
    rng = random.Random(17)
    now = time.time()
    rows = []
    for n in range(offers):
        created = now - rng.uniform(0, 26) * 86400
        rows.append(
            (
                events + n + 1,
                VILLAGE,
                events + n + 1,
                "marketplace",
                "offer",
                "published",
                f"@bewohner{rng.randrange(2000):04d}:bench",
                f"{rng.choice(THINGS)} Nr. {n}",
                "Bei Interesse melden.",
                rng.choice([*CATEGORIES, None]),
                rng.choice([*DISTRICTS, None]),
                created,
                created + 600,
                created + 30 * 86400,
            )
        )
    rows.sort(key=lambda r: r[12])  # numbers grow with time, as in a live database
    async with db.transaction():
        await db.executemany(
            "INSERT INTO items (id, village, number, plugin, kind, state, author, title, body, "
            "category, district, created_at, published_at, expires_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        await db.execute(
            "INSERT INTO village_counters (village, last_number) VALUES (?, ?)",
            (VILLAGE, events + offers),
        )
        for i in range(announcements):
            created = now - (i + 0.5) * 30 * 86400 / announcements
            fanout = await db.fetchval(
                "INSERT INTO announcements_fanouts (origin, kind, village, sender, text_plain, "
                "text_html, state, created_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?) "
                "RETURNING id",
                (
                    f"$bench{i}",
                    "alert" if i % 10 == 0 else "announce",
                    VILLAGE,
                    "@gemeinde:bench",
                    f"Mitteilung {i}: Die Straße ist gesperrt.",
                    f"<p><b>Mitteilung {i}</b>: Die <a href='https://example.org'>Straße</a> "
                    "ist gesperrt.</p><ul><li>von 8 Uhr</li><li>bis 18 Uhr</li></ul>",
                    "done",
                    created,
                    created + 5,
                ),
            )
            await db.execute(
                "INSERT INTO announcements_deliveries (fanout_id, position, room_id, village, "
                "state, event_id) VALUES (?, 0, '!ann:bench', ?, 'sent', ?)",
                (fanout, VILLAGE, f"$ann{i}"),
            )
    return {**seeded, "offers": offers, "announcements": announcements}


async def run(*, runs: int, events: int, offers: int, announcements: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dorfbot-bench-web-") as tmp:
        bot = Bot(_config(Path(tmp)))
        await bot.prepare()
        try:
            seeded = await _seed(bot, events=events, offers=offers, announcements=announcements)
            bot.matrix.ready.set()
            for plugin in bot.plugins.values():
                await plugin.start()  # jobs are added, but the scheduler never runs
            bot.pages.add_routes()
            floor_body = b""

            async def floor(request: web.Request) -> web.Response:
                return web.Response(body=floor_body, content_type="text/html", charset="utf-8")

            bot.web.add_get("/bench-floor", floor)
            await bot.web.start()
            origin = f"http://127.0.0.1:{bot.web.port}"
            base = f"{origin}/{VILLAGE}/"
            calendar = bot.plugins["calendar"]

            def fresh(variant: str) -> Callable[[], None]:
                def drop() -> None:  # as after any write to the database
                    bot.pages._cache.pop((VILLAGE, variant), None)

                return drop

            def changed() -> None:  # as after a change of the calendar
                fresh("page")()
                cache = getattr(calendar, "cache", None)  # absent before the cache existed
                if cache is not None:
                    cache.clear()

            cases: list[tuple[str, str, Callable[[], None] | None]] = [
                ("floor", origin + "/bench-floor", None),
                ("page_cold", base, fresh("page")),
                ("page_changed", base, changed),
                ("embed_cold", base + "?embed=1", fresh("embed")),
                ("feed_cold", base + "feed.atom", fresh("feed")),
                ("page", base, None),
                ("embed", base + "?embed=1", None),
                ("feed", base + "feed.atom", None),
                ("page_304", base, None),
            ]
            clocks = {name: Clock() for name, *_ in cases}
            sizes: dict[str, int] = {}
            async with aiohttp.ClientSession() as session:
                async with session.get(base) as resp:
                    floor_body = await resp.read()
                etag = ""
                for i in range(runs + 10):
                    for name, url, prepare in cases:
                        if prepare is not None:
                            prepare()
                        conditional = name == "page_304"
                        headers = {"If-None-Match": etag} if conditional else {}
                        started = time.perf_counter(), time.process_time()
                        async with session.get(url, headers=headers) as resp:
                            body = await resp.read()
                            assert resp.status == (304 if conditional else 200), (url, resp.status)
                        if i >= 10:  # warm-up: first queries, compiled templates
                            clocks[name].wall.append(time.perf_counter() - started[0])
                            clocks[name].cpu.append(time.process_time() - started[1])
                        if name == "page":  # the 304 case asks with what it was given
                            etag = resp.headers["ETag"]
                        sizes[name] = len(body)
            results = {name: {**clocks[name].summary(), "bytes": sizes[name]} for name in clocks}
            await bot.web.stop()
        finally:
            for plugin in bot.plugins.values():
                plugin.scheduler.cancel_all()
            await bot.db.close()
    return {
        "seeded": seeded,
        "runs": runs,
        "goal_p99_ms": GOAL_P99_MS,
        "load": os.getloadavg(),
        "results": results,
    }


def table(data: dict[str, Any]) -> str:
    results = data["results"]
    floor = results["floor"]
    lines = [
        f"{'request':<13} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'cpu p50':>7} "
        f"{'x floor p50':>11} {'bytes':>7}  goal"
    ]
    for name, r in results.items():
        met = "met" if r["p99"] < data["goal_p99_ms"] else "MISSED"
        goal = "" if name == "floor" else f"p99 < {data['goal_p99_ms']:.0f} ms: {met}"
        lines.append(
            f"{name:<13} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['p99']:>7.1f} "
            f"{r['cpu']['p50']:>7.1f} {r['p50'] / floor['p50']:>11.1f} "
            f"{r.get('bytes', 0):>7}  {goal}"
        )
    lines.append(f"load average at the end: {data['load'][0]:.2f} (2 cores)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--offers", type=int, default=10_000)
    parser.add_argument("--announcements", type=int, default=50)
    args = parser.parse_args(argv)
    data = asyncio.run(
        run(
            runs=args.runs,
            events=args.events,
            offers=args.offers,
            announcements=args.announcements,
        )
    )
    print(table(data))
    print(json.dumps(data, indent=2))
    OUT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
