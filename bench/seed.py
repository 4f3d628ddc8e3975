"""Bulk data for the benchmarks, written straight into dorfbot's database.

- :func:`seed_posts`: marketplace posts across villages, as the marketplace
  stores them (core ``items`` rows plus the plugin's FTS5 rows), in one
  transaction. Open posts expire in 4 to 30 days, so the bot's expiry check at
  start-up has nothing to remind or expire.
- :func:`seed_events`: recurring calendar events through the calendar plugin's
  own store.

The schema comes from the same migrations the bot runs, so a bot started on
the file later finds it current.
"""

from __future__ import annotations

import importlib
import json
import random
import time
from datetime import datetime, timedelta
from typing import Any

from dorfbot import items as states
from dorfbot.items import MIGRATIONS as ITEM_MIGRATIONS
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.storage import Database
from dorfbot.sync import MIGRATIONS as SYNC_MIGRATIONS

Marketplace = bundled_plugin("marketplace")
Calendar = bundled_plugin("calendar")
search = importlib.import_module(Marketplace.__module__ + ".search")
ical = importlib.import_module(Calendar.__module__ + ".ical")
cal_store = importlib.import_module(Calendar.__module__ + ".store")
cal_cache = importlib.import_module(Calendar.__module__ + ".cache")

THINGS = [
    "Rasenmäher",
    "Fahrrad",
    "Kinderwagen",
    "Brennholz",
    "Leiter",
    "Bohrmaschine",
    "Schrank",
    "Computer",
    "Drucker",
    "Gartenstühle",
    "Kinderbett",
    "Winterreifen",
    "Heckenschere",
    "Schubkarre",
    "Nähmaschine",
    "Bücherregal",
    "Laubbläser",
    "Anhänger",
    "Zelt",
    "Kühlschrank",
    "Waschmaschine",
    "Spielsachen",
    "Tomatenpflanzen",
    "Äpfel",
    "Kartoffeln",
    "Marmelade",
    "Eier",
    "Honig",
    "Gitarre",
    "Klavier",
    "Schlitten",
    "Skier",
    "Werkzeugkiste",
    "Hochbeet",
]
SERVICES = [
    "Nachhilfe Mathe",
    "Hilfe beim Einkauf",
    "Mitfahrt nach Soest",
    "Fahrt zum Arzt",
    "Hundesitting",
    "Rasen mähen",
    "Hecke schneiden",
    "Hilfe am Computer",
    "Handy einrichten",
    "Babysitten",
    "Umzugshilfe",
    "Fenster putzen",
    "Gartenarbeit",
    "Vorlesen",
    "Schnee räumen",
    "Blumen gießen",
    "Katze füttern",
    "Briefkasten leeren",
    "Reparatur Fahrrad",
    "Kuchen backen",
]
ADJECTIVES = [
    "gut erhalten",
    "fast neu",
    "gebraucht",
    "zu verschenken",
    "zum Ausleihen",
    "günstig",
    "für Kinder",
    "abzuholen",
    "dringend",
    "am Wochenende",
]
SENTENCES = [
    "Bitte melden, wer Interesse hat.",
    "Abholung in der Ortsmitte möglich.",
    "Gern auch gegen eine Tasse Kaffee.",
    "Ich bin abends gut erreichbar.",
    "Kann auch gebracht werden.",
    "Funktioniert einwandfrei.",
    "Für Senioren im Dorf kostenlos.",
    "Bei Regen verschieben wir.",
    "Ein paar Kratzer, sonst tadellos.",
    "Ideal für den Garten hinter dem Haus.",
]
OPEN_STATES = (states.PUBLISHED,) * 16 + (states.PENDING,)
CLOSED_STATES = (states.DONE, states.EXPIRED, states.REMOVED)


async def prepare(db: Database) -> None:
    """The bot's own migrations for the tables the seed writes."""
    await db.migrate("sync", SYNC_MIGRATIONS)
    await db.migrate("moderation", ITEM_MIGRATIONS)
    await db.migrate("marketplace", Marketplace.migrations)
    await db.migrate("calendar", Calendar.migrations)


def _title(rng: random.Random) -> str:
    if rng.random() < 0.55:
        return f"{rng.choice(THINGS)} {rng.choice(ADJECTIVES)}"
    return rng.choice(SERVICES)


async def seed_posts(
    db: Database,
    villages: list[str],
    total: int,
    *,
    categories: list[str],
    districts: list[str],
    seed: int = 9,
) -> dict[str, Any]:
    """``total`` marketplace posts spread evenly over ``villages``; returns counts."""
    rng = random.Random(seed)
    now = time.time()
    drafts: list[tuple[Any, ...]] = []
    for n in range(total):
        village = villages[n % len(villages)]
        kind = "offer" if rng.random() < 0.6 else "request"
        is_open = rng.random() < 0.8
        state = rng.choice(OPEN_STATES) if is_open else rng.choice(CLOSED_STATES)
        title = _title(rng)
        body = " ".join(rng.sample(SENTENCES, rng.randint(0, 2)))
        category = rng.choice([*categories, None])
        district = rng.choice([*districts, None])
        author = f"@bewohner{rng.randrange(2000):04d}:localhost"
        if is_open:
            created = now - rng.uniform(0, 26) * 86400
            published = created + 600 if state == states.PUBLISHED else None
            closed = None
        else:
            created = now - rng.uniform(30, 365) * 86400
            published = created + 600
            closed = created + rng.uniform(1, 30) * 86400
        drafts.append(
            (
                created,
                village,
                kind,
                state,
                author,
                title,
                body,
                category,
                district,
                published,
                closed,
                created + 30 * 86400,
            )
        )
    # IDs and per-village numbers grow with time, as they do in a live database.
    drafts.sort(key=lambda d: d[0])
    rows: list[tuple[Any, ...]] = []
    counters: dict[str, int] = dict.fromkeys(villages, 0)
    open_count = 0
    for n, draft in enumerate(drafts, start=1):
        created, village, kind, state, author, title, body, category, district = draft[:9]
        published, closed, expires = draft[9:]
        counters[village] += 1
        rows.append(
            (
                n,
                village,
                counters[village],
                "marketplace",
                kind,
                state,
                author,
                title,
                body,
                category,
                district,
                created,
                published,
                closed,
                expires,
            )
        )
        if state in (states.PUBLISHED, states.PENDING):
            open_count += 1
    async with db.transaction():
        await db.executemany(
            "INSERT INTO items (id, village, number, plugin, kind, state, author, title, body, "
            "category, district, created_at, published_at, closed_at, expires_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        await db.executemany(
            "INSERT INTO village_counters (village, last_number) VALUES (?, ?) "
            "ON CONFLICT(village) DO UPDATE SET last_number = excluded.last_number",
            list(counters.items()),
        )
    await search.rebuild(db)  # the published posts, keyed in publication order like the plugin
    return {"posts": total, "open": open_count, "villages": len(villages)}


RULES = [
    ("FREQ=WEEKLY;BYDAY={wd}", 40),  # jeden Montag
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY={wd}", 15),  # alle zwei Wochen
    ("FREQ=MONTHLY;BYDAY=1{wd}", 15),  # jeden 1. Montag
    ("FREQ=MONTHLY;BYDAY=-1{wd}", 5),  # letzter Freitag im Monat
    ("FREQ=MONTHLY;BYMONTHDAY={md}", 10),  # monatlich ab ...
    ("FREQ=DAILY", 5),  # täglich
    ("FREQ=YEARLY", 5),  # jährlich ab ...
    ("FREQ=WEEKLY;BYDAY={wd};UNTIL={until}", 5),  # ... bis <datum>
]
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
EVENT_NAMES = [
    "Chorprobe",
    "Seniorentreff",
    "Krabbelgruppe",
    "Skatabend",
    "Feuerwehrübung",
    "Gemeinderat",
    "Lauftreff",
    "Strickkreis",
    "Bibelkreis",
    "Jugendtreff",
    "Sprechstunde Ortsvorsteher",
    "Wochenmarkt",
    "Repair-Café",
    "Yoga",
    "Kegeln",
]


async def seed_events(
    db: Database, village: str, count: int, *, tz: str = "Europe/Berlin", seed: int = 11
) -> dict[str, Any]:
    """``count`` published recurring events in one village (starts in the past year)."""
    rng = random.Random(seed)
    store = cal_store.EventStore(db)
    now = datetime.now().replace(second=0, microsecond=0)
    weights = [w for _, w in RULES]
    kinds: dict[str, int] = {}
    last = int(await db.fetchval("SELECT max(id) FROM items") or 0)
    async with db.transaction():
        for i in range(count):
            pattern = rng.choices([r for r, _ in RULES], weights)[0]
            start = (now - timedelta(days=rng.uniform(1, 365))).replace(
                hour=rng.choice([9, 10, 14, 15, 18, 19, 20]), minute=rng.choice([0, 15, 30])
            )
            until = (now + timedelta(days=rng.uniform(10, 200))).strftime("%Y%m%dT235959Z")
            rule = pattern.format(wd=rng.choice(WEEKDAYS), md=start.day, until=until)
            kinds[pattern.split(";")[0]] = kinds.get(pattern.split(";")[0], 0) + 1
            title = f"{rng.choice(EVENT_NAMES)} {i + 1}"
            item_id = last + i + 1
            end = start + timedelta(hours=rng.choice([1, 2, 3]))
            data = {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "tz": tz,
                "rrule": rule,
                "location": "Gemeindehaus",
            }
            created = time.time()
            await db.execute(
                "INSERT INTO items (id, village, number, plugin, kind, state, author, title, "
                "body, created_at, published_at, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    item_id,
                    village,
                    i + 1,
                    "calendar",
                    "event",
                    states.PUBLISHED,
                    "@organisator:localhost",
                    title,
                    "Alle sind willkommen.",
                    created,
                    created,
                    json.dumps(data),
                ),
            )
            event = ical.CalendarEvent(
                uid=f"bench-{village}-{i + 1}@dorf.bench",
                title=title,
                start=start,
                tz=tz,
                end=end,
                rrule=rule,
                description="Alle sind willkommen.",
                location="Gemeindehaus",
            )
            await store.save(item_id, village, event)
    return {"events": count, "rules": kinds}
