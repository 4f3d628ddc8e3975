"""Abuse on a real homeserver: floods, daily post limits, hostile display names."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import ResidentError, body_of, reply_target
from dorfbot.testing.village import build_world

# Escaped text such as ``&lt;a href=&quot;javascript:`` is harmless; real tags are not.
UNSAFE = re.compile(r"<(img|script)|<a\s[^>]*href=[\"']?\s*javascript:", re.IGNORECASE)


async def test_flood_does_not_delay_others_and_daily_limit(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    world = await build_world(
        homeserver,
        tmp_path,
        residents=2,
        village_options={"moderation": {"posts": "pre", "events": "pre", "posts_per_day": 2}},
    )
    try:
        await world.start_bot()
        room = world.room("chat")
        flooder, other = world.village.residents
        flood = [await flooder.send(room, f"!ping {i}") for i in range(100)]
        started = time.monotonic()
        reply = await other.command(room, "!ping", timeout=10)
        delay = time.monotonic() - started
        print(f"\nflood of 100: another resident answered after {delay:.2f} s")
        assert body_of(reply) == "pong" and delay < 5
        await asyncio.sleep(2)
        answered = [e for e in flood if flooder.replies_to(e)]
        texts = [body_of(flooder.replies_to(e)[0]) or "" for e in answered]
        assert texts.count("pong") == 20  # commands_per_minute default
        assert sum("langsamer" in t for t in texts) == 1  # told once, then quiet

        market = world.room("marketplace")
        for n in range(2):
            ok = await other.command(market, f"!biete Ding {n} #garten")
            assert "Freigabe" in (body_of(ok) or "")
        third = await other.command(market, "!biete Ding 3 #garten")
        assert "Tageslimit" in (body_of(third) or "")
    finally:
        await world.close()


async def test_hostile_display_name_and_title_never_reach_html(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    world = await build_world(homeserver, tmp_path, residents=1)
    try:
        await world.start_bot()
        resident = world.resident
        await resident.client.set_displayname("<img src=x onerror=alert(1)>")
        market = world.room("marketplace")
        posted = await resident.command(
            market, '!biete <a href="javascript:alert(1)">Rad</a> #garten\n<script>x</script>'
        )
        number = re.search(r"\d+", body_of(posted) or "")
        assert number
        moderation = world.room("moderation")
        await world.moderator.command(moderation, f"!freigeben {number.group(0)}")
        await resident.wait_for(
            market,
            lambda e: e.get("sender") == world.bot_user_id and not reply_target(e),
            timeout=20,
        )
        await resident.command(market, "!angebote")
        await asyncio.sleep(1)
        checked = 0
        for person, room in ((resident, market), (world.moderator, moderation)):
            for event in person.events(room):
                if event.get("sender") == world.bot_user_id:
                    html = event.get("content", {}).get("formatted_body", "")
                    assert not UNSAFE.search(html), html
                    checked += 1
        assert checked >= 4
    finally:
        await world.close()


async def test_malformed_events_are_ignored_safely(homeserver: Homeserver, tmp_path: Path) -> None:
    world = await build_world(homeserver, tmp_path, residents=1)
    try:
        await world.start_bot()
        resident = world.resident
        room = world.room("chat")
        original = await resident.send(room, "hallo")
        weird = [
            {"msgtype": "m.text"},  # no body
            {"msgtype": "m.text", "body": 42},
            {"msgtype": "m.text", "body": ["!ping"]},
            {"msgtype": "org.example.unknown", "body": "!ping"},
            {"body": "!ping"},  # no msgtype
            {
                "msgtype": "m.text",
                "body": "!ping",
                "format": "org.matrix.custom.html",
                "formatted_body": {"evil": True},
            },
            {
                "msgtype": "m.text",
                "body": "* !ping",
                "m.new_content": {"msgtype": "m.text", "body": "!ping"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": original},
            },
            {"msgtype": "m.text", "body": "!ping", "m.relates_to": "not a dict"},
        ]
        sent: dict[int, str] = {}
        for index, content in enumerate(weird):
            try:  # Synapse itself refuses some of these; the rest reach the bot
                sent[index] = await resident.send_event(room, "m.room.message", content)
            except ResidentError:
                continue
        assert len(sent) >= 4
        for content in (
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": "$does-not-exist",
                    "key": "✅",
                }
            },
            {"m.relates_to": None},
        ):
            with contextlib.suppress(ResidentError):
                await resident.send_event(room, "m.reaction", content)
        await resident.redact(room, original)
        alive = await resident.command(room, "!ping", timeout=15)
        assert body_of(alive) == "pong"
        await asyncio.sleep(1)
        never = (0, 1, 2, 4, 6)  # no usable body or msgtype, or an edit: never a command
        for index, event_id in sent.items():
            if index in never:
                assert not resident.replies_to(event_id), weird[index]
        assert world.bot is not None and world.bot.metrics.errors._value.get() == 0
    finally:
        await world.close()
