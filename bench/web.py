"""``python -m bench.web``: the public page and Atom feed of a big village, over HTTP.

The village holds 1,000 recurring events (``bench/seed.py``, the B7 mix),
10,000 open offers and 50 announcements of the last 30 days. A bot is prepared
on that database without a homeserver (its plugins started, their sends never
needed), its HTTP server listens on loopback, and one client asks for the
page, the embedded page and the feed one request after another: wall time
from sending the request to the last byte, p50/p95/p99 (goal of issue 17: p99
under 50 ms). ``*_cold`` renders every request, as the first request after any
write to the database does; the others reuse the rendered page while the data
is unchanged (at most a minute). A 304 costs what the request it answers costs.
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
from pathlib import Path
from typing import Any

import aiohttp

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
            fanout = await db.execute(
                "INSERT INTO announcements_fanouts (origin, kind, village, sender, text_plain, "
                "text_html, state, created_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
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
            await bot.web.start()
            base = f"http://127.0.0.1:{bot.web.port}/{VILLAGE}/"
            cases = {"page": base, "embed": base + "?embed=1", "feed": base + "feed.atom"}
            results: dict[str, Any] = {}
            async with aiohttp.ClientSession() as session:
                for name, url in [
                    *((f"{n}_cold", u) for n, u in cases.items()),
                    *cases.items(),
                ]:
                    clock = Clock()
                    size = 0
                    for i in range(runs + 10):
                        if name.endswith("_cold"):  # as after any write to the database
                            bot.pages._cache.clear()
                        started = time.perf_counter(), time.process_time()
                        async with session.get(url) as resp:
                            body = await resp.read()
                            assert resp.status == 200, (url, resp.status)
                        if i >= 10:  # warm-up: first queries, compiled templates
                            clock.wall.append(time.perf_counter() - started[0])
                            clock.cpu.append(time.process_time() - started[1])
                        size = len(body)
                    results[name] = {**clock.summary(), "bytes": size}
                async with session.get(cases["page"]) as resp:
                    etag = resp.headers["ETag"]
                clock = Clock()
                for _ in range(runs):
                    with clock():
                        async with session.get(
                            cases["page"], headers={"If-None-Match": etag}
                        ) as resp:
                            assert resp.status == 304
                results["page_304"] = clock.summary()
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
    lines = [f"{'request':<11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'bytes':>9}  goal"]
    for name, r in data["results"].items():
        met = "met" if r["p99"] < data["goal_p99_ms"] else "MISSED"
        lines.append(
            f"{name:<11} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} "
            f"{r.get('bytes', 0):>9}  p99 < {data['goal_p99_ms']:.0f} ms: {met}"
        )
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
