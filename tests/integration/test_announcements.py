"""Announcements, push alerts and scheduled sends against a real homeserver.

Three scenarios: announcing and alerting in one village (with the push rules
the homeserver applies, the sanitiser and the power-level check); scheduled
announcements firing at their minute, not again after a restart, and once late
after a downtime; and a push alert into 30 rooms on a homeserver with Synapse's
default message rate limit, with the bot stopped in the middle of it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from dorfbot.builtin import CorePlugin
from dorfbot.moderation import ModerationPlugin
from dorfbot.plugin import Plugin
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of, reply_target
from dorfbot.testing.village import World, build_world

PLUGINS: list[type[Plugin]] = [CorePlugin, ModerationPlugin, bundled_plugin("announcements")]
BERLIN = ZoneInfo("Europe/Berlin")


def from_bot(world: World, *, text: str, alert: bool | None = None) -> Any:
    """A predicate: a (non-edit) m.text of the bot containing ``text``."""

    def check(event: dict[str, Any]) -> bool:
        content = event.get("content", {})
        if event.get("sender") != world.bot_user_id or content.get("msgtype") != "m.text":
            return False
        if (content.get("m.relates_to") or {}).get("rel_type") == "m.replace":
            return False
        if text not in (body_of(event) or ""):
            return False
        is_alert = content.get("m.mentions") == {"room": True} and content["body"].startswith(
            "@room"
        )
        return alert is None or is_alert == alert

    return check


def count(person: Resident, room: str, predicate: Any) -> int:
    return sum(1 for e in person.events(room) if predicate(e))


async def notifications(person: Resident) -> dict[str, list[Any]]:
    """Event ID -> push actions, from the homeserver's own notification list."""
    data = await person.get_json("/_matrix/client/v3/notifications", {"limit": "100"})
    return {n["event"]["event_id"]: n["actions"] for n in data["notifications"]}


def highlights(actions: list[Any]) -> bool:
    return any(
        isinstance(a, dict) and a.get("set_tweak") == "highlight" and a.get("value", True)
        for a in actions
    )


@pytest.fixture
async def world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await build_world(
        homeserver,
        tmp_path,
        residents=1,
        plugin_classes=PLUGINS,
        config_options={"commands_per_minute": 1000},
    )
    await world.start_bot()
    yield world
    await world.close()


@pytest.fixture
async def encrypted_world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    """Announcements room end-to-end encrypted, as Element makes private rooms."""
    world = await build_world(
        homeserver,
        tmp_path,
        residents=1,
        plugin_classes=PLUGINS,
        config_options={"commands_per_minute": 1000},
        encrypted=("announcements", "chat"),
    )
    await world.start_bot()
    yield world
    await world.close()


async def test_announcement_and_push_alert(world: World) -> None:
    organizer, resident, admin = world.village.organizer, world.resident, world.admin
    announcements, chat = world.room("announcements"), world.room("chat")
    tag = uuid.uuid4().hex[:6]

    # An announcement keeps the organizer's formatting, minus anything unsafe.
    done = await organizer.command(
        chat,
        f"!ankuendigung anheften Wasserrohrbruch {tag} Hauptstraße",
        formatted_body=(
            f'<p>!ankuendigung anheften <b onclick="steal()">Wasserrohrbruch</b> {tag} '
            'Hauptstraße<script>alert("x")</script>'
            '<img src="https://evil.example/x.png" onerror="alert(1)"></p>'
        ),
        timeout=20,
    )
    assert "angeheftet" in (body_of(done) or "")
    posted = await resident.wait_for(announcements, from_bot(world, text=tag, alert=False))
    content = posted["content"]
    assert content["msgtype"] == "m.text" and content["m.mentions"] == {}
    assert "@room" not in content["body"]
    assert f"Wasserrohrbruch {tag} Hauptstraße" in content["body"]
    html = content["formatted_body"]
    assert "<b>Wasserrohrbruch</b>" in html and "!ankuendigung" not in html
    for bad in ("script", "onclick", "onerror", "evil.example", "alert("):
        assert bad not in html, html
    pinned = await admin.get_json(
        f"/_matrix/client/v3/rooms/{announcements}/state/m.room.pinned_events"
    )
    assert posted["event_id"] in pinned["pinned"]

    # A push alert reaches every room of the village, as @room.
    summary = await organizer.command(announcements, f"!rundruf Bitte Wasser abkochen {tag}")
    assert "in 5 von 5 Räumen" in (body_of(summary) or ""), body_of(summary)
    for kind, room in world.village.rooms.items():
        event = await admin.wait_for(room, from_bot(world, text=f"abkochen {tag}", alert=True))
        assert event["content"]["msgtype"] == "m.text", kind

    # A resident may not, and the bot's refusal (a notice) does not notify.
    refused = await resident.command(chat, f"!rundruf Falscher Alarm {tag}")
    assert "Organisatorinnen" in (body_of(refused) or "")
    await resident.ensure_no_event(chat, from_bot(world, text="Falscher Alarm"), duration=1.5)

    alert_event = await resident.wait_for(chat, from_bot(world, text=f"abkochen {tag}"))
    pushed = await notifications(resident)
    assert highlights(pushed[alert_event["event_id"]])
    assert not highlights(pushed[posted["event_id"]])  # announcements notify normally
    assert refused["event_id"] not in pushed

    # Without the power for @room in a room the bot says so and sends a normal message.
    await admin.set_power_level(chat, world.bot_user_id, 0)
    bot = world.bot
    assert bot is not None
    for _ in range(100):
        if not bot.matrix.can_alert(chat):
            break
        await asyncio.sleep(0.1)
    warning = await organizer.command(announcements, f"!rundruf Zweiter Aufruf {tag}")
    assert "Berechtigungsstufe 50" in (body_of(warning) or "")
    assert "chat" in (body_of(warning) or "")  # the room's name
    plain = await resident.wait_for(chat, from_bot(world, text=f"Zweiter Aufruf {tag}"))
    assert plain["content"]["m.mentions"] == {} and "@room" not in plain["content"]["body"]
    final = await organizer.wait_for(
        announcements,
        lambda e: reply_target(e) == reply_target(warning) and "zugestellt" in (body_of(e) or ""),
        timeout=20,
    )
    assert "5 von 5" in (body_of(final) or "") and "Ohne Push" in (body_of(final) or "")


def _minute_ahead(margin: float) -> datetime:
    """The next full local minute at least ``margin`` seconds from now."""
    now = datetime.now(BERLIN)
    target = (now + timedelta(seconds=margin)).replace(second=0, microsecond=0)
    return target + timedelta(minutes=1)


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, moment.timestamp() - time.time()))


@pytest.mark.timeout(300)
async def test_scheduled_fires_once_also_across_restarts(encrypted_world: World) -> None:
    world = encrypted_world
    organizer = world.village.organizer
    announcements, chat = world.room("announcements"), world.room("chat")
    watcher = world.resident
    tag = uuid.uuid4().hex[:6]
    first = _minute_ahead(15)
    second = first + timedelta(minutes=1)

    def at(moment: datetime) -> str:
        return moment.strftime("%d.%m.%Y %H:%M")

    one = await organizer.command(chat, f"!planen {at(first)} Biotonne rausstellen A{tag}")
    assert "Nr. 1" in (body_of(one) or ""), body_of(one)
    assert first.strftime("%H:%M Uhr") in (body_of(one) or "")
    two = await organizer.command(chat, f"!planen {at(second)} Gelbe Säcke B{tag}")
    assert "Nr. 2" in (body_of(two) or "")
    three = await organizer.command(chat, f"!planen rundruf {at(second)} Abgesagt C{tag}")
    assert "Nr. 3" in (body_of(three) or "")
    gone = await organizer.command(chat, "!planloeschen 3")
    assert "gelöscht" in (body_of(gone) or "")
    listing = body_of(await organizer.command(chat, "!geplant")) or ""
    assert f"A{tag}" in listing and f"B{tag}" in listing and f"C{tag}" not in listing
    assert second.strftime("%d.%m.%Y um %H:%M Uhr") in listing

    # A fires at its minute ...
    a_sent = from_bot(world, text=f"A{tag}", alert=False)
    event = await watcher.wait_for(
        announcements, a_sent, timeout=first.timestamp() - time.time() + 30
    )
    sent_at = event["origin_server_ts"] / 1000
    assert first.timestamp() <= sent_at < first.timestamp() + 20
    assert "verspätet" not in (body_of(event) or "")

    # ... then the bot is down while B is due, and sends it once, late, on return.
    await world.stop_bot()
    await _sleep_until(second + timedelta(seconds=3))
    await world.start_bot()
    late = await watcher.wait_for(
        announcements, from_bot(world, text=f"B{tag}", alert=False), timeout=30
    )
    assert "verspätet" in (body_of(late) or "")
    # encrypted room: sent encrypted right after the restart, readable by the resident
    assert watcher.was_encrypted(late["event_id"]) and watcher.was_encrypted(event["event_id"])
    await asyncio.sleep(3)
    assert count(watcher, announcements, a_sent) == 1
    assert count(watcher, announcements, from_bot(world, text=f"B{tag}")) == 1
    for room in world.village.rooms.values():
        assert count(world.admin, room, from_bot(world, text=f"C{tag}")) == 0
    listing = body_of(await organizer.command(chat, "!geplant")) or ""
    assert "Es ist nichts geplant" in listing


# ------------------------------------------------------------- rate limits

ROOMS = 30


@pytest.fixture(scope="module")
def strict_homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """A Synapse with its default message rate limit (0.2/s, burst 10) for the bot."""
    with Homeserver(tmp_path_factory.mktemp("synapse-strict"), strict_rate_limits=True) as hs:
        yield hs


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_push_alert_into_30_rate_limited_rooms_survives_a_restart(
    strict_homeserver: Homeserver, tmp_path: Path
) -> None:
    world = await build_world(
        strict_homeserver,
        tmp_path,
        residents=1,
        plugin_classes=PLUGINS,
        config_options={"commands_per_minute": 1000},
    )
    try:
        admin, resident = world.admin, world.resident
        extra = ROOMS - len(world.village.rooms)
        chats = []
        for index in range(extra):
            room = await admin.create_room(
                name=f"Raum {index}",
                invite=[world.bot_user_id, resident.user_id],
                power_levels={"users": {world.bot_user_id: 50}},
            )
            chats.append(room)
        for room in chats:
            await resident.wait_joined(room)
        rooms = [*world.village.rooms.values(), *chats]
        assert len(rooms) == ROOMS
        world.raw_config["villages"][0]["rooms"]["chat"] += chats
        # Joins count against the same limit; let the bot join all rooms at full speed,
        # then throttle it for the alert itself.
        override = f"/_synapse/admin/v1/users/{quote(world.bot_user_id)}/override_ratelimit"
        await asyncio.to_thread(strict_homeserver.exempt_from_rate_limits, world.bot_user_id)
        bot = await world.start_bot()
        deadline = time.monotonic() + 60
        while not set(rooms) <= set(bot.matrix.client.rooms):
            assert time.monotonic() < deadline, set(rooms) - set(bot.matrix.client.rooms)
            await asyncio.sleep(0.2)
        await asyncio.to_thread(strict_homeserver.admin_api, "DELETE", override)

        tag = uuid.uuid4().hex[:6]
        alert = from_bot(world, text=f"Sturmwarnung {tag}", alert=True)
        announcements = world.room("announcements")
        started = await world.village.organizer.command(
            announcements, f"!rundruf Sturmwarnung {tag}: bitte Fenster schließen", timeout=30
        )
        assert "30 Räume" in (body_of(started) or "")

        async def delivered() -> int:
            return sum(count(admin, room, alert) for room in rooms)

        # Stop the bot in the middle of the fan-out (it is throttled to ~1 room / 5 s).
        deadline = time.monotonic() + 120
        while await delivered() < 14:
            assert time.monotonic() < deadline, await delivered()
            await asyncio.sleep(0.2)
        await world.stop_bot()
        await world.start_bot()

        for room in rooms:
            await admin.wait_for(room, alert, timeout=240)
        summary = await world.village.organizer.wait_for(
            announcements,
            lambda e: (
                reply_target(e) == reply_target(started) and "zugestellt" in (body_of(e) or "")
            ),
            timeout=60,
        )
        assert "in 30 von 30 Räumen" in (body_of(summary) or "")
        await asyncio.sleep(3)
        assert [count(admin, room, alert) for room in rooms] == [1] * ROOMS
        # the homeserver did throttle: 30 sends at 0.2/s after a burst of 10 take > 1 min
        stamps = sorted(
            e["origin_server_ts"] for room in rooms for e in admin.events(room) if alert(e)
        )
        assert (stamps[-1] - stamps[0]) / 1000 > 60
        # progress was reported by editing the start message
        edits = [
            e
            for e in admin.events(announcements)
            if (e["content"].get("m.relates_to") or {}).get("event_id") == started["event_id"]
        ]
        assert edits and "von 30" in (body_of(edits[-1]) or "")
    finally:
        await world.close()
