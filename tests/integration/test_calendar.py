"""The calendar plugin against a real homeserver, over real HTTP.

Scenarios: an event through the moderation queue into the calendar room, RSVPs,
the list with recurring events expanded, the iCal feed parsed back with
icalendar, cancelling; the daily digest and reminders exactly once across a
restart; importing the same calendar twice (by URL and as an attached file).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import icalendar
import pytest
from aiohttp import web

from dorfbot.builtin import CorePlugin
from dorfbot.moderation import ModerationPlugin
from dorfbot.plugin import Plugin
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of
from dorfbot.testing.village import World, build_world

CalendarPlugin = bundled_plugin("calendar")
PLUGINS: list[type[Plugin]] = [CorePlugin, ModerationPlugin, CalendarPlugin]
BERLIN = ZoneInfo("Europe/Berlin")


async def make_world(hs: Homeserver, tmp_path: Path, **options: Any) -> World:
    config = {"commands_per_minute": 1000, **options.pop("config_options", {})}
    world = await build_world(
        hs, tmp_path, plugin_classes=PLUGINS, config_options=config, **options
    )
    await world.start_bot()
    return world


@pytest.fixture
async def calendar_world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await make_world(homeserver, tmp_path)
    yield world
    await world.close()


def from_bot(world: World, *needles: str) -> Callable[[dict[str, Any]], bool]:
    def check(event: dict[str, Any]) -> bool:
        body = body_of(event) or ""
        return event.get("sender") == world.bot_user_id and all(n in body for n in needles)

    return check


async def barrier(person: Resident, room: str) -> None:
    """The bot handles a room's events in order: a pong means all before it is done."""
    assert body_of(await person.command(room, "!ping")) == "pong"


def number_in(reply: dict[str, Any]) -> int:
    match = re.search(r"Nr\. (\d+)", body_of(reply) or "")
    assert match, body_of(reply)
    return int(match.group(1))


async def fetch_feed(world: World) -> tuple[int, str, Any]:
    assert world.bot is not None
    url = f"http://127.0.0.1:{world.bot.web.port}/ical/{world.village.id}.ics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text(), resp.headers.copy()


def feed_events(text: str) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(text)
    return {str(e["SUMMARY"]): e for e in calendar.walk("VEVENT")}


def mondays_1930(after: datetime, days: int) -> list[datetime]:
    """What `jeden Montag 19:30` must produce in [after, after + days)."""
    local = after.astimezone(BERLIN)
    found = []
    for offset in range(days + 2):
        day = local.date() + timedelta(days=offset)
        start = datetime.combine(day, time(19, 30), tzinfo=BERLIN)
        if day.weekday() == 0 and after <= start < after + timedelta(days=days):
            found.append(start)
    return found


async def test_event_queue_list_rsvp_feed_and_cancel(calendar_world: World) -> None:
    world = calendar_world
    cal, mod_room = world.room("calendar"), world.room("moderation")
    alice, bob = world.village.residents
    # A resident's recurring event waits for approval (moderation.events: pre).
    reply = await alice.command(
        cal, "!termin jeden Montag 19:30 Chorprobe wo:Gemeindehaus\nBitte Noten mitbringen."
    )
    body = body_of(reply) or ""
    assert "wartet" in body or "Freigabe" in body, body
    assert "jeden Montag" in body and "19:30" in body and "Gemeindehaus" in body
    number = number_in(reply)
    await world.moderator.wait_for(mod_room, from_bot(world, "Chorprobe", f"Nr. {number}"))
    listing = await alice.command(cal, "!termine")
    assert "Chorprobe" not in (body_of(listing) or "")

    # Approval publishes it into the calendar room as a formatted message.
    approved = await world.moderator.command(mod_room, f"!freigeben {number}")
    assert "freigegeben" in (body_of(approved) or "")
    published = await alice.wait_for(
        cal, lambda e: from_bot(world, "Chorprobe", "👍")(e) and "m.relates_to" not in e["content"]
    )
    assert "<b>Chorprobe</b>" in published["content"]["formatted_body"]
    # the bot puts the 👍 chip on it for residents to tap; its own does not count below
    await alice.wait_for(
        cal,
        lambda e: (
            e.get("type") == "m.reaction"
            and e.get("sender") == world.bot_user_id
            and e["content"].get("m.relates_to", {}).get("event_id") == published["event_id"]
            and e["content"]["m.relates_to"].get("key") == "👍"
        ),
    )
    assert "📍 Gemeindehaus" in (body_of(published) or "")

    # Two residents take part; the bot counts 👍 reactions on the published message.
    # A third thinks better of it: redacting the 👍 withdraws the RSVP.
    # (Carol goes first, so "👍 2" can only show once her redaction has been handled.)
    carol = world.village.helper
    second_thoughts = await carol.react(cal, published["event_id"], "👍")
    await carol.redact(cal, second_thoughts)
    await alice.react(cal, published["event_id"], "\U0001f44d\ufe0f")  # as Element X sends it
    await bob.react(
        cal, published["event_id"], "\U0001f44d\U0001f3fd"
    )  # a skin tone: one RSVP still

    # An organizer's event skips the queue; English input works in a German village.
    reply = await world.village.organizer.command(
        cal, "!event tomorrow 6pm Laternenumzug until:8pm"
    )
    assert "steht jetzt im Dorfkalender" in (body_of(reply) or "")
    assert "18:00 bis 20:00 Uhr" in (body_of(reply) or "")
    lantern = number_in(reply)

    now = datetime.now(UTC)
    expected = mondays_1930(now, 31)
    for _ in range(40):  # reactions arrive through the bot's sync
        listing = await alice.command(cal, "!termine monat")
        text = body_of(listing) or ""
        if "👍 2" in text:
            break
        await asyncio.sleep(0.25)
    assert text.count("Chorprobe") == len(expected), text
    assert "19:30 Uhr: Chorprobe" in text and f"(Nr. {number})" in text and "👍 2" in text
    assert "18:00 bis 20:00 Uhr: Laternenumzug" in text
    assert "jeden Montag" in text

    # The iCal feed over HTTP parses back to the same local times and rule.
    status, feed, headers = await fetch_feed(world)
    assert status == 200 and headers["Content-Type"].startswith("text/calendar")
    events = feed_events(feed)
    choir = events["Chorprobe"]
    assert choir.decoded("DTSTART") == expected[0]
    assert str(choir.decoded("DTSTART").tzinfo) == "Europe/Berlin"  # local time with TZID
    assert choir["RRULE"] == {"FREQ": ["WEEKLY"], "BYDAY": ["MO"]}
    assert str(choir["LOCATION"]) == "Gemeindehaus"
    tomorrow = (now.astimezone(BERLIN) + timedelta(days=1)).date()
    lantern_ev = events["Laternenumzug"]
    assert lantern_ev.decoded("DTSTART") == datetime.combine(tomorrow, time(18), tzinfo=BERLIN)
    assert lantern_ev.decoded("DTEND") == datetime.combine(tomorrow, time(20), tzinfo=BERLIN)
    async with aiohttp.ClientSession() as session:
        assert world.bot is not None
        base = f"http://127.0.0.1:{world.bot.web.port}/ical/"
        async with session.get(base + "nirgendwo.ics") as resp:
            assert resp.status == 404
        async with session.get(
            base + f"{world.village.id}.ics", headers={"If-None-Match": headers["ETag"]}
        ) as resp:
            assert resp.status == 304

    # The subscription URL.
    reply = await bob.command(cal, "!kalender")
    assert f"http://dorf.test/ical/{world.village.id}.ics" in (body_of(reply) or "")

    # Only the author or an organizer may cancel; the village is told.
    refused = await bob.command(cal, f"!absagen {number}")
    assert "kann nur" in (body_of(refused) or "")
    done = await alice.command(cal, f"!absagen {number} Die Chorleiterin ist krank")
    assert f"Termin Nr. {number} ist abgesagt" in (body_of(done) or "")
    notice = await bob.wait_for(cal, from_bot(world, "Abgesagt", "Chorprobe", "krank"))
    assert notice["content"]["msgtype"] == "m.text"
    await bob.wait_for(
        cal,
        lambda e: e.get("type") == "m.room.redaction" and e.get("redacts") == published["event_id"],
    )
    listing = await alice.command(cal, "!termine monat")
    assert "Chorprobe" not in (body_of(listing) or "")
    assert "Laternenumzug" in (body_of(listing) or "")
    _, feed, _ = await fetch_feed(world)
    assert "Chorprobe" not in feed_events(feed) and "Laternenumzug" in feed_events(feed)
    again = await alice.command(cal, f"!absagen {number}")
    assert "schon abgesagt" in (body_of(again) or "")
    assert lantern != number


async def test_digest_and_reminder_once_across_restart(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(
        homeserver,
        tmp_path,
        village_options={"digest_time": "06:30"},
        config_options={"plugins": {"calendar": {"remind_hours": 2}}},
    )
    try:
        assert world.bot is not None
        cal = world.room("calendar")
        watcher, neighbour = world.village.residents
        job = world.bot.aps.get_job(f"calendar:digest:{world.village.id}")
        assert job is not None and job.next_run_time is not None
        local_run = job.next_run_time.astimezone(BERLIN)
        assert (local_run.hour, local_run.minute) == (6, 30)

        today = datetime.now(BERLIN).date()
        day1, day2, day3 = (today + timedelta(days=n) for n in (1, 2, 3))
        for day, title in ((day1, "Seniorenkaffee"), (day2, "Skatabend"), (day3, "Bastelkreis")):
            reply = await world.village.organizer.command(
                cal, f"!termin {day:%d.%m.%Y} 10:00 {title}"
            )
            assert "steht jetzt im Dorfkalender" in (body_of(reply) or "")

        # The watcher takes part in the Seniorenkaffee; the neighbour does not.
        published = await watcher.wait_for(
            cal,
            lambda e: (
                from_bot(world, "Seniorenkaffee", "👍")(e) and "m.relates_to" not in e["content"]
            ),
        )
        await watcher.react(cal, published["event_id"], "👍")
        await barrier(watcher, cal)

        plugin: Any = world.bot.plugin("calendar")
        village = world.bot.config.villages[0]
        assert await plugin.run_digest(village, day1) is True
        digest = await watcher.wait_for(cal, from_bot(world, "Guten Morgen", "Seniorenkaffee"))
        assert digest["content"]["msgtype"] == "m.text"
        assert "10:00 Uhr: Seniorenkaffee" in (body_of(digest) or "")
        assert await plugin.run_digest(village, day1) is False
        # pushes: a mention for who takes part, a normal message for the neighbour
        assert (await watcher.notifications()).get(digest["event_id"]) is True
        assert (await neighbour.notifications()).get(digest["event_id"]) is False

        # Reminder two hours before: once.
        start1 = datetime.combine(day1, time(10), tzinfo=BERLIN)
        at = start1 - timedelta(hours=2) + timedelta(minutes=1)
        assert await plugin.run_reminders(at) == 1
        reminder = await watcher.wait_for(cal, from_bot(world, "Erinnerung", "Seniorenkaffee"))
        assert reminder["content"]["msgtype"] == "m.text"
        assert (await watcher.notifications()).get(reminder["event_id"]) is True
        assert (await neighbour.notifications()).get(reminder["event_id"]) is False
        assert await plugin.run_reminders(at + timedelta(minutes=1)) == 0

        # A crash right after claiming day 2's digest and reminder: claimed, not sent.
        assert await plugin.events.claim_digest(village.id, day2.isoformat())
        start2 = datetime.combine(day2, time(10), tzinfo=BERLIN)
        [(skat, _)] = await plugin.occurrences(village, start2, start2 + timedelta(minutes=1))
        assert await plugin.events.claim_reminder(skat.item_id, start2, "sending")

        await world.restart_bot()
        plugin = world.bot.plugin("calendar")
        village = world.bot.config.villages[0]
        assert await plugin.run_digest(village, day1) is False
        assert await plugin.run_reminders(at + timedelta(minutes=2)) == 0
        due2 = datetime.combine(day2, time(6, 30), tzinfo=BERLIN)
        await plugin.catch_up(due2 + timedelta(minutes=20))  # within the grace period
        await watcher.wait_for(cal, from_bot(world, "Guten Morgen", "Skatabend"))
        await plugin.catch_up(due2 + timedelta(minutes=40))
        assert await plugin.run_digest(village, day2) is False
        at2 = start2 - timedelta(hours=2) + timedelta(minutes=10)
        await plugin.catch_up(at2)
        await watcher.wait_for(cal, from_bot(world, "Erinnerung", "Skatabend"))
        assert await plugin.run_reminders(at2) == 0
        await plugin.catch_up(at2 + timedelta(minutes=1))
        # Day 3's digest missed by far more than the grace period: skipped, not sent.
        due3 = datetime.combine(day3, time(6, 30), tzinfo=BERLIN)
        await plugin.catch_up(due3 + timedelta(hours=5))
        row = await plugin.events.digest_state(village.id, day3.isoformat())
        assert row is not None and row["state"] == "skipped"
        assert await plugin.run_digest(village, day3) is False

        await barrier(watcher, cal)  # everything the bot sent before is synced
        digests = [e for e in watcher.messages(cal) if from_bot(world, "Guten Morgen")(e)]
        assert [
            ("Seniorenkaffee" in (body_of(e) or ""), "Skatabend" in (body_of(e) or ""))
            for e in digests
        ] == [(True, False), (False, True)]
        reminders = [e for e in watcher.messages(cal) if from_bot(world, "Erinnerung")(e)]
        assert len(reminders) == 2  # Seniorenkaffee, Skatabend
    finally:
        await world.close()


def waste_calendar(today: date) -> bytes:
    def d(n: int) -> str:
        return f"{today + timedelta(days=n):%Y%m%d}"

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Entsorger//Abfall//DE",
        "BEGIN:VEVENT",
        "UID:rest-1@entsorger.example",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART;VALUE=DATE:{d(2)}",
        "SUMMARY:Restmüll",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:gelb-1@entsorger.example",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART;VALUE=DATE:{d(4)}",
        "SUMMARY:Gelber Sack",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:bio@entsorger.example",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART;VALUE=DATE:{d(1)}",
        "RRULE:FREQ=WEEKLY;INTERVAL=2",
        "SUMMARY:Biotonne",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


async def test_import_twice_creates_no_duplicates(homeserver: Homeserver, tmp_path: Path) -> None:
    # the test's server is on loopback: the operator switch for intranet calendars
    world = await make_world(
        homeserver,
        tmp_path,
        config_options={"plugins": {"calendar": {"import_allow_private": True}}},
    )
    try:
        await _import_twice(world)
    finally:
        await world.close()


async def _import_twice(world: World) -> None:
    cal, chat = world.room("calendar"), world.room("chat")
    data = waste_calendar(datetime.now(BERLIN).date())

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=data, content_type="text/calendar")

    app = web.Application()
    app.router.add_get("/abfall.ics", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/abfall.ics"
    try:
        first = await world.village.organizer.command(cal, f"!import {url}")
        assert "3 neue Termine, 0 geändert, 0 schon vorhanden" in (body_of(first) or ""), first
        second = await world.village.organizer.command(cal, f"!import {url}")
        assert "0 neue Termine, 0 geändert, 3 schon vorhanden" in (body_of(second) or "")

        refused = await world.resident.command(cal, f"!import {url}")
        assert "Das dürfen nur" in (body_of(refused) or "")
        bad = await world.village.organizer.command(cal, "!import ftp://example.org/a.ics")
        assert "http://" in (body_of(bad) or "")
        missing = await world.village.organizer.command(cal, f"!import {url[:-10]}nichts.ics")
        # generic words: never the status (nor an address) of what was fetched
        text = body_of(missing) or ""
        assert "konnte ich nicht laden" in text and "404" not in text

        # The same file attached in a village room: still no duplicates.
        upload, _ = await world.village.organizer.client.upload(
            lambda *_: data,
            content_type="text/calendar",
            filename="abfall.ics",
            filesize=len(data),
        )
        sent = await world.village.organizer.send(
            chat,
            "abfall.ics",
            msgtype="m.file",
            extra_content={
                "url": upload.content_uri,
                "filename": "abfall.ics",
                "info": {"mimetype": "text/calendar", "size": len(data)},
            },
        )
        answer = await world.village.organizer.wait_for(
            chat,
            lambda e: (
                e.get("sender") == world.bot_user_id
                and (e["content"].get("m.relates_to") or {})
                .get("m.in_reply_to", {})
                .get("event_id")
                == sent
            ),
        )
        assert "0 neue Termine, 0 geändert, 3 schon vorhanden" in (body_of(answer) or ""), answer

        listing = await world.resident.command(cal, "!termine 10")
        text = body_of(listing) or ""
        assert text.count("Restmüll") == 1 and text.count("Gelber Sack") == 1
        assert "ganztägig: Biotonne" in text
        _, feed, _ = await fetch_feed(world)
        uids = [str(e["UID"]) for e in icalendar.Calendar.from_ical(feed).walk("VEVENT")]
        assert sorted(uids) == [
            "bio@entsorger.example",
            "gelb-1@entsorger.example",
            "rest-1@entsorger.example",
        ]
        biotonne = feed_events(feed)["Biotonne"]
        assert biotonne["RRULE"] == {"FREQ": ["WEEKLY"], "INTERVAL": [2]}
        assert biotonne.decoded("DTSTART") == datetime.now(BERLIN).date() + timedelta(days=1)

        # Cancelling an imported event removes it from the feed and list.
        numbers = re.findall(r"Restmüll \(Nr\. (\d+)\)", text)
        done = await world.village.organizer.command(cal, f"!absagen {numbers[0]}")
        assert "abgesagt" in (body_of(done) or "")
        _, feed, _ = await fetch_feed(world)
        assert "Restmüll" not in feed_events(feed)
        third = await world.village.organizer.command(cal, f"!import {url}")
        assert "0 neue Termine" in (body_of(third) or "")  # stays cancelled
    finally:
        await runner.cleanup()


async def test_unclear_dates_get_a_question_not_a_guess(calendar_world: World) -> None:
    world = calendar_world
    cal = world.room("calendar")
    resident: Resident = world.resident
    cases = {
        "!termin morgen 18 Laternenumzug": "18 Uhr",  # a bare number: asks
        "!termin 12/11 18:00 Basar": "Meinen Sie",  # day or month first?
        "!termin morgen Laternenumzug": "Uhrzeit",  # no time
        "!termin 1.1.2020 18:00 Neujahr": "schon vorbei",  # in the past
        "!termin morgen 18:00": "Wie heißt der Termin",  # no title
    }
    for command, expected in cases.items():
        reply = await resident.command(cal, command)
        assert expected in (body_of(reply) or ""), (command, body_of(reply))
    listing = await resident.command(cal, "!termine")
    assert "keine Termine" in (body_of(listing) or "")


def replying_to(world: World, event_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(event: dict[str, Any]) -> bool:
        relates = event.get("content", {}).get("m.relates_to") or {}
        return (
            event.get("sender") == world.bot_user_id
            and relates.get("m.in_reply_to", {}).get("event_id") == event_id
        )

    return check


async def test_import_refuses_internal_addresses_and_never_stalls_others(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    """A redirect to the homeserver's admin API on loopback is refused with generic words;
    a tarpit import runs in the background while !ping is answered at once."""

    hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)  # stands for the admin API: must never be reached
        return web.Response(body=waste_calendar(datetime.now(BERLIN).date()))

    inside = web.Application()
    inside.router.add_get("/_synapse/admin/v2/users", internal)
    inside_runner = web.AppRunner(inside)
    await inside_runner.setup()
    inside_site = web.TCPSite(inside_runner, "127.0.0.1", 0)
    await inside_site.start()
    inside_port = inside_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{inside_port}/_synapse/admin/v2/users")

    async def tarpit(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(200):
            await resp.write(b"B")
            await asyncio.sleep(0.05)
        return resp

    app = web.Application()
    app.router.add_get("/redirect.ics", redirect)
    app.router.add_get("/tarpit.ics", tarpit)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)  # "public": the only network allowed
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    world = await make_world(
        homeserver,
        tmp_path,
        config_options={
            "plugins": {
                "calendar": {"import_allow_networks": ["127.0.0.2/32"], "import_timeout": 5}
            }
        },
    )
    try:
        cal = world.room("calendar")
        organizer = world.village.organizer
        refused = await organizer.command(cal, f"!import http://127.0.0.2:{port}/redirect.ics")
        text = body_of(refused) or ""
        assert "konnte ich nicht laden" in text, text
        assert not re.search(r"\d{3}|127\.0\.0\.1|synapse", text), text
        assert hits == []
        direct = await organizer.command(
            cal, f"!import http://localhost:{inside_port}/_synapse/admin/v2/users"
        )
        assert "konnte ich nicht laden" in (body_of(direct) or "") and hits == []

        sent = await organizer.send(cal, f"!import http://127.0.0.2:{port}/tarpit.ics")
        await asyncio.sleep(0.5)
        started = asyncio.get_running_loop().time()
        pong = await world.resident.command(cal, "!ping")
        latency = asyncio.get_running_loop().time() - started
        assert "pong" in (body_of(pong) or "").lower()
        assert latency < 2.0, latency  # inline, this waited for the 5 s import timeout
        note = await organizer.wait_for(cal, replying_to(world, sent))
        assert "Ich lade den Kalender" in (body_of(note) or "")
        done = await organizer.wait_for(
            cal,
            lambda e: replying_to(world, sent)(e) and "zu lange" in (body_of(e) or ""),
            timeout=15,
        )
        assert done
    finally:
        await world.close()
        await runner.cleanup()
        await inside_runner.cleanup()
