"""Direct messages on a real homeserver: opening one, prefix-free commands, private delivery."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dorfbot.testing.resident import Resident, body_of, reply_target
from dorfbot.testing.village import World, bot_message


def _bot_joined(world: World):  # type: ignore[no-untyped-def]
    return lambda e: (
        e.get("type") == "m.room.member"
        and e.get("state_key") == world.bot_user_id
        and e.get("content", {}).get("membership") == "join"
    )


async def _export(world: World, person: Resident) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The room, event and decoded JSON of the first data export the bot sent ``person``."""
    for _ in range(200):
        for room_id in person.joined_rooms:
            for event in person.events(room_id):
                content = event.get("content", {})
                if event.get("sender") == world.bot_user_id and content.get("msgtype") == "m.file":
                    data = await person.download_file(content)
                    return room_id, event, json.loads(data)
        await asyncio.sleep(0.1)
    raise AssertionError("no export file arrived")


async def _members(person: Resident, room_id: str) -> dict[str, str]:
    members = await person.get_json(f"/_matrix/client/v3/rooms/{room_id}/members")
    return {e["state_key"]: e["content"]["membership"] for e in members["chunk"]}


async def test_a_resident_opens_a_dm_and_talks_without_prefix(world: World) -> None:
    person = world.resident
    dm = await person.create_room(
        name="dorfbot", invite=[world.bot_user_id], is_direct=True, encrypted=True
    )
    await person.wait_for(dm, _bot_joined(world))

    help_ = await person.command(dm, "Hilfe", timeout=30)
    assert "Was ich für Sie tun kann" in (body_of(help_) or "")
    assert person.was_encrypted(help_["event_id"])
    offers = await person.command(dm, "angebote")
    assert "keine Angebote" in (body_of(offers) or "")

    hint = await person.command(dm, "Guten Tag!")
    assert "hilfe" in (body_of(hint) or "")
    again = await person.send(dm, "Sind Sie da?")  # no second hint within the hour
    await person.ensure_no_event(dm, lambda e: reply_target(e) == again, 2)

    # in a village room the prefix stays required
    market = world.room("marketplace")
    plain = await person.send(market, "angebote")
    await person.ensure_no_event(market, lambda e: reply_target(e) == plain, 2)

    # the export goes into this DM, and the bot's m.direct names it
    sent = await person.command(dm, "meinedaten")
    assert "Hier ist die Datei" in (body_of(sent) or "")
    room_id, _, export = await _export(world, person)
    assert room_id == dm and export["user_id"] == person.user_id
    assert world.bot is not None
    direct = await world.bot.matrix.get_account_data("m.direct")
    assert direct == {person.user_id: [dm]}


async def test_a_contact_room_made_public_never_receives_the_export(world: World) -> None:
    """The review's attack: the asker opens the room to the public and leaves; then a restart."""
    author, asker = world.village.residents
    market, modroom = world.room("marketplace"), world.room("moderation")
    await author.command(market, "!biete Leiter zum Ausleihen #garten")
    await world.moderator.command(modroom, "!freigeben 1")
    await author.wait_for(market, bot_message(world, "Leiter zum Ausleihen"))
    await asker.command(market, "!kontakt 1")
    village_rooms = set(world.village.rooms.values())
    for _ in range(100):
        shared = (author.joined_rooms & asker.joined_rooms) - village_rooms
        if shared:
            break
        await asyncio.sleep(0.1)
    (contact,) = shared
    await asker.put_state(contact, "m.room.join_rules", {"join_rule": "public"})
    await asker.leave(contact)
    await world.restart_bot()

    reply = await author.command(world.room("chat"), "!meinedaten")
    assert "Direktnachricht" in (body_of(reply) or "")
    room_id, event, export = await _export(world, author)
    assert export["user_id"] == author.user_id
    assert room_id != contact
    assert author.was_encrypted(event["event_id"])
    assert await _members(author, room_id) == {world.bot_user_id: "join", author.user_id: "join"}
    files = [e for e in author.events(contact) if e.get("content", {}).get("msgtype") == "m.file"]
    assert not files
