"""The calendar's kept events and expansions: the same answers as reading afresh, and
every change seen at once, whoever makes it.

On the offline bot (the real plugins and database, sends recorded): commands,
the moderation queue, an import, an erasure and plain SQL change the calendar;
after each, what the cache answers must equal a fresh read and expansion, and
the public page must show it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dorfbot import items as states
from dorfbot.context import ReactionEvent
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.testing.offline import OfflineBot

bundled_plugin("calendar")
from dorfbot_plugin_calendar.ical import CalendarEvent  # type: ignore[import-not-found]  # noqa: E402
from dorfbot_plugin_calendar.recurrence import expand_async  # type: ignore[import-not-found]  # noqa: E402

CAL, MODERATION, MARKET = "!calendar0:test", "!moderation0:test", "!marketplace0:test"
ADMIN, MOD, RESIDENT = "@admin:test", "@mod0:test", "@maria:test"
BOTH = (states.PUBLISHED, states.CANCELLED)


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[OfflineBot]:
    bot = await OfflineBot.create(tmp_path)
    yield bot
    await bot.close()


def plugin(offline: OfflineBot) -> Any:
    return offline.bot.plugins["calendar"]


async def run(offline: OfflineBot, sender: str, body: str, room: str = CAL) -> None:
    assert await offline.command(room, sender, body) == "ok", body


async def fresh(offline: OfflineBot, after: datetime, before: datetime, in_states: Any) -> Any:
    """What a read and expansion without any cache gives."""
    cal = plugin(offline)
    stored = await cal.events.window("v0", after, before, in_states)
    by_id = {s.item_id: s for s in stored}
    found = await expand_async([s.series() for s in stored], after, before)
    return [(by_id[o.series.key], o) for o in found]


def key(found: Any) -> list[tuple[Any, ...]]:
    return [(s.item_id, s.state, s.event.title, o.utc_start, o.utc_end) for s, o in found]


async def check(offline: OfflineBot, days: float = 14, in_states: Any = BOTH) -> list[str]:
    """The cache's answer equals a fresh one; the titles in it."""
    now = datetime.now(UTC)
    village = offline.bot.config.villages[0]
    cached = await plugin(offline).occurrences(village, now, now + timedelta(days=days), in_states)
    assert key(cached) == key(await fresh(offline, now, now + timedelta(days=days), in_states))
    return [s.event.title for s, _ in cached]


async def latest_number(offline: OfflineBot) -> int:
    return int(await offline.bot.db.fetchval("SELECT max(number) FROM items WHERE village = 'v0'"))


async def test_every_change_is_seen_whoever_makes_it(offline: OfflineBot) -> None:
    cal = plugin(offline)
    await run(offline, ADMIN, "!termin morgen 18 Uhr Laternenfest wo:Kirche")
    await run(offline, ADMIN, "!termin jeden Montag 19:30 Chorprobe")
    assert {"Laternenfest", "Chorprobe"} <= set(await check(offline))
    loads, expansions = cal.cache.loads, cal.cache.expansions
    assert "Chorprobe" in await check(offline)
    # nothing changed: nothing read or expanded again
    assert (cal.cache.loads, cal.cache.expansions) == (loads, expansions)

    # the queue: pending is not shown, approval is
    await run(offline, RESIDENT, "!termin übermorgen 15 Uhr Seniorenkaffee")
    coffee = await latest_number(offline)
    assert "Seniorenkaffee" not in await check(offline)
    await run(offline, MOD, f"!freigeben {coffee}", room=MODERATION)
    assert "Seniorenkaffee" in await check(offline)

    # cancelled: marked (with BOTH), not among the published
    await run(offline, ADMIN, f"!absagen {coffee} Regen")
    assert "Seniorenkaffee" in await check(offline)
    assert "Seniorenkaffee" not in await check(offline, in_states=(states.PUBLISHED,))

    # removed by a moderator
    fest = int(
        await offline.bot.db.fetchval("SELECT number FROM items WHERE title = 'Laternenfest'")
    )
    await run(offline, MOD, f"!entfernen {fest}", room=MODERATION)
    assert "Laternenfest" not in await check(offline)

    # written by someone else entirely (an operator's SQL, a future core feature)
    await offline.bot.db.execute("UPDATE items SET title = 'Chor' WHERE title = 'Chorprobe'")
    titles = await check(offline)
    assert "Chor" in titles and "Chorprobe" not in titles

    # an import adds one and changes it the second time
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//DE\r\nBEGIN:VEVENT\r\n"
        "UID:abfall-1@example.org\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;VALUE=DATE:{day}\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y%m%d")
    village = offline.bot.config.villages[0]
    for title in ("Biotonne", "Gelbe Tonne"):
        data = ics.format(day=day, title=title).encode()
        await cal.import_data(village, data, actor=ADMIN, source="test")
        assert title in await check(offline)
    assert "Biotonne" not in await check(offline)


async def test_rsvps_are_counted_for_what_is_shown_and_forgotten_with_the_person(
    offline: OfflineBot,
) -> None:
    cal = plugin(offline)
    await run(offline, ADMIN, "!termin morgen 18 Uhr Laternenfest")
    row = await offline.bot.db.fetchone(
        "SELECT id, published_event FROM items WHERE title = 'Laternenfest'"
    )
    assert row is not None and row["published_event"]
    page = await offline.bot.pages.render_page(offline.bot.config.villages[0])
    assert "nimmt teil" not in page and "nehmen teil" not in page
    loads = cal.cache.loads
    for n, person in enumerate((RESIDENT, "@otto:test")):
        await cal.on_reaction(ReactionEvent(CAL, f"$r{n}", person, row["published_event"], "👍", 0))
    page = await offline.bot.pages.render_page(offline.bot.config.villages[0])
    assert "2 Personen nehmen teil" in page
    assert cal.cache.loads == loads  # an RSVP is no change of the events
    await run(offline, RESIDENT, "!vergessen", room=MARKET)
    await run(offline, RESIDENT, "!vergessen ja", room=MARKET)
    await asyncio.sleep(0)
    page = await offline.bot.pages.render_page(offline.bot.config.villages[0])
    assert "2 Personen" not in page and "1 Person nimmt teil" in page


async def test_nothing_is_kept_from_inside_a_transaction(offline: OfflineBot) -> None:
    cal, db = plugin(offline), offline.bot.db
    village = offline.bot.config.villages[0]
    now = datetime.now(UTC)
    start = (now + timedelta(days=1)).astimezone(village.tz).replace(tzinfo=None)

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with db.transaction():
            await _event(offline, "Geisterfest", start)
            inside = await cal.occurrences(village, now, now + timedelta(days=2))
            assert [s.event.title for s, _ in inside] == ["Geisterfest"]
            raise Undo
    # The rollback took the version back; the next write raises it to what it was
    # inside. Had the cache kept what it saw there, it would take it for current now.
    await _event(offline, "Echtes Fest", start)
    after = await cal.occurrences(village, now, now + timedelta(days=2))
    assert [s.event.title for s, _ in after] == ["Echtes Fest"]


async def _event(
    offline: OfflineBot,
    title: str,
    start: datetime,
    *,
    length: timedelta | None = timedelta(hours=2),
    rrule: str | None = None,
    all_day: bool = False,
    exdates: tuple[datetime, ...] = (),
) -> None:
    cal = plugin(offline)
    item, _ = await offline.bot.moderation.items.create(
        village="v0",
        plugin="calendar",
        kind="event",
        state=states.PUBLISHED,
        author=ADMIN,
        title=title,
    )
    event = CalendarEvent(
        uid=f"{title}@test",
        title=title,
        start=start,
        tz="Europe/Berlin",
        end=start + length if length else None,
        all_day=all_day,
        rrule=rrule,
        exdates=exdates,
    )
    await cal.events.save(item.id, "v0", event)


async def test_cut_windows_equal_fresh_expansions(offline: OfflineBot) -> None:
    """Random windows (a minute to ten weeks, across DST changes, starting in the past)
    over a mix of one-off, multi-day, all-day, point-in-time and recurring events."""
    rng = random.Random(18)
    base = datetime(2026, 3, 20, 0, 0)  # the spring change is nine days later
    rules = [
        None,
        "FREQ=DAILY",
        "FREQ=WEEKLY;BYDAY=MO,TH",
        "FREQ=WEEKLY;INTERVAL=2",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "FREQ=YEARLY",
        "FREQ=DAILY;COUNT=5",
    ]
    for n in range(60):
        start = base + timedelta(days=rng.uniform(-30, 30), minutes=15 * rng.randrange(96))
        rule = rng.choice(rules)
        kind = rng.randrange(4)
        if kind == 0:  # all day, one or three days
            day = start.replace(hour=0, minute=0)
            await _event(
                offline,
                f"e{n}",
                day,
                length=timedelta(days=rng.choice([1, 3])),
                rrule=rule,
                all_day=True,
            )
        elif kind == 1:  # a point in time
            await _event(offline, f"e{n}", start, length=None, rrule=rule)
        else:  # an hour to two days; some recurring ones skip their second date
            skip = (start + timedelta(days=1),) if rule == "FREQ=DAILY" and kind == 3 else ()
            length = timedelta(hours=rng.choice([1, 3, 30, 49]))
            await _event(offline, f"e{n}", start, length=length, rrule=rule, exdates=skip)
    cal = plugin(offline)
    village = offline.bot.config.villages[0]
    berlin = village.tz
    for _ in range(120):
        after = (base + timedelta(hours=rng.uniform(-24 * 20, 24 * 30))).replace(tzinfo=berlin)
        before = after + timedelta(minutes=rng.choice([1, 90, 24 * 60, 7 * 1440, 31 * 1440]))
        if rng.random() < 0.1:
            before = after + timedelta(days=70)  # longer than the kept spans
        for in_states in (BOTH, (states.PUBLISHED,)):
            cached = await cal.occurrences(village, after, before, in_states)
            assert key(cached) == key(await fresh(offline, after, before, in_states)), (
                after,
                before,
            )


async def test_versions_rise_with_every_write_on_both_backends(database: Any) -> None:
    """The triggers of the calendar's migration, on SQLite and on PostgreSQL."""
    from dorfbot_plugin_calendar.store import EventStore, _versions  # type: ignore[import-not-found]

    db = database
    await db.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, village TEXT, number INTEGER, "
        "plugin TEXT, state TEXT, author TEXT, title TEXT, body TEXT, "
        "published_room TEXT, published_event TEXT, reminded_at REAL)"
    )
    await db.execute(
        "CREATE TABLE calendar_events (item_id INTEGER PRIMARY KEY, village TEXT, uid TEXT)"
    )
    async with db.transaction():
        await _versions(db)
    store = EventStore(db)
    seen = [await store.version("v0")]

    async def step(sql: str, params: tuple[Any, ...] = ()) -> None:
        await db.execute(sql, params)
        seen.append(await store.version("v0"))

    for n, plugin_name in ((1, "calendar"), (2, "marketplace")):
        await db.execute(
            "INSERT INTO items (id, village, number, plugin, state, title) "
            "VALUES (?, 'v0', ?, ?, 'published', 'x')",
            (n, n, plugin_name),
        )
    assert await store.version("v0") == 0  # an item alone is no event yet
    await step("INSERT INTO calendar_events (item_id, village, uid) VALUES (1, 'v0', 'a')")
    await step("UPDATE calendar_events SET uid = 'b' WHERE item_id = 1")
    await step("UPDATE items SET state = 'cancelled' WHERE id = 1")
    await step("UPDATE items SET title = 'y' WHERE id = 1")
    await step("UPDATE items SET reminded_at = 1 WHERE id = 1")  # not shown: no change
    await step("UPDATE items SET title = 'z' WHERE id = 2")  # not the calendar's
    await step("DELETE FROM calendar_events WHERE item_id = 1")
    await step("DELETE FROM items WHERE id = 1")
    assert seen == [0, 1, 2, 3, 4, 4, 4, 5, 6]
    assert await store.version("v1") == 0
    assert not db.in_transaction
    async with db.transaction():
        assert db.in_transaction
