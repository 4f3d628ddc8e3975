"""The core against a real homeserver: replies, help, roles, restarts, invites."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of, reply_target
from dorfbot.testing.village import World, build_world


def is_reply_to(event_id: str):  # type: ignore[no-untyped-def]
    return lambda e: reply_target(e) == event_id


async def test_ping_is_answered_once_as_a_reply_notice(world: World) -> None:
    room = world.room("marketplace")
    reply = await world.resident.command(room, "!ping")
    content = reply["content"]
    assert reply["sender"] == world.bot_user_id
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "pong"
    assert content["format"] == "org.matrix.custom.html" and content["formatted_body"] == "pong"
    sent = reply_target(reply)
    await asyncio.sleep(1.5)
    assert len(world.resident.replies_to(sent)) == 1


async def test_help_in_german_lists_only_allowed_commands(world: World) -> None:
    reply = await world.resident.command(world.room("chat"), "!hilfe")
    body = body_of(reply) or ""
    assert "Was ich für Sie tun kann" in body
    assert "!ping" in body
    assert "!freigeben" not in body  # moderators only, and only in the moderation room
    mod = await world.moderator.command(world.room("moderation"), "!hilfe")
    assert "!freigeben" in (body_of(mod) or "")
    detail = await world.resident.command(world.room("chat"), "!hilfe ping")
    assert "prüft, ob ich da bin" in (body_of(detail) or "")


async def test_help_in_english(homeserver: Homeserver, tmp_path: Path) -> None:
    world = await build_world(homeserver, tmp_path, language="en", residents=1)
    try:
        await world.start_bot()
        reply = await world.resident.command(world.room("chat"), "!help")
        assert "What I can do for you" in (body_of(reply) or "")
        german_name = await world.resident.command(world.room("chat"), "!hilfe")
        assert "What I can do for you" in (body_of(german_name) or "")
    finally:
        await world.close()


async def test_unknown_command_suggests(world: World) -> None:
    reply = await world.resident.command(world.room("chat"), "!hilf")
    assert "!hilfe" in (body_of(reply) or "")


async def test_command_below_role_is_refused(world: World) -> None:
    reply = await world.resident.command(world.room("marketplace"), "!warteschlange")
    assert "Das dürfen nur Moderatorinnen und Moderatoren" in (body_of(reply) or "")
    # the moderator (power level 50 in the moderation room) may
    ok = await world.moderator.command(world.room("moderation"), "!warteschlange")
    assert "Warteschlange ist leer" in (body_of(ok) or "")


async def test_restart_answers_downtime_commands_exactly_once(world: World) -> None:
    room = world.room("chat")
    before = await world.resident.command(room, "!ping")
    await world.stop_bot()
    during = await world.resident.send(room, "!ping")
    await world.start_bot()
    await world.resident.wait_for(room, is_reply_to(during), timeout=20)
    after = await world.resident.command(room, "!ping")
    await asyncio.sleep(1.5)
    assert len(world.resident.replies_to(reply_target(before) or "")) == 1
    assert len(world.resident.replies_to(during)) == 1
    assert len(world.resident.replies_to(reply_target(after) or "")) == 1


async def test_first_start_does_not_answer_old_messages(world_unstarted: World) -> None:
    world = world_unstarted
    room = world.room("chat")
    old = await world.resident.send(room, "!ping")
    await asyncio.sleep(1.1)
    await world.start_bot()
    new = await world.resident.command(room, "!ping")
    assert reply_target(new) != old
    await world.resident.ensure_no_event(room, is_reply_to(old), duration=1.5)


async def test_burst_while_down_is_back_paginated(world: World) -> None:
    """More than one sync's worth (100) of commands in one room while stopped."""
    room = world.room("chat")
    await world.stop_bot()
    people = [world.resident, world.village.residents[1]]
    sent = await asyncio.gather(*(people[i % 2].send(room, f"!ping {i}") for i in range(130)))
    await world.start_bot()
    for event_id in sent:
        await world.resident.wait_for(room, is_reply_to(event_id), timeout=60)
    await asyncio.sleep(1.5)
    counts = [len(world.resident.replies_to(e)) for e in sent]
    assert counts.count(1) == len(sent), counts


async def test_invites(world: World, homeserver: Homeserver) -> None:
    bot = world.bot
    assert bot is not None
    stranger = await Resident.create(homeserver)
    try:
        room = await stranger.create_room(name="Fremder Raum", invite=[world.bot_user_id])
        await asyncio.sleep(2)
        assert room not in bot.matrix.client.rooms
        members = await stranger.get_json(f"/_matrix/client/v3/rooms/{room}/members")
        states = {e["state_key"]: e["content"]["membership"] for e in members["chunk"]}
        assert states[world.bot_user_id] == "leave"
        # an admin's invite is accepted
        admin_room = await world.admin.create_room(name="Admin", invite=[world.bot_user_id])
        for _ in range(50):
            if admin_room in bot.matrix.client.rooms:
                break
            await asyncio.sleep(0.2)
        assert admin_room in bot.matrix.client.rooms
    finally:
        await stranger.close()
