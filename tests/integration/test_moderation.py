"""The core's moderation queue against a real homeserver: scope, roles, tools, restarts.

Items come from the marketplace plugin (the first user of the queue); what is
asserted here is the queue's behaviour, seen by real residents and moderators.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dorfbot.builtin import CorePlugin
from dorfbot.moderation import ModerationPlugin
from dorfbot.plugin import Plugin
from dorfbot.plugin_loader import bundled_plugin
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of, reply_target
from dorfbot.testing.village import World, bot_message, build_world

Event = dict[str, Any]
PLUGINS: list[type[Plugin]] = [CorePlugin, ModerationPlugin, bundled_plugin("marketplace")]


async def make_world(homeserver: Homeserver, tmp_path: Path, **options: Any) -> World:
    world = await build_world(
        homeserver,
        tmp_path,
        plugin_classes=PLUGINS,
        config_options={"commands_per_minute": 1000},
        **options,
    )
    await world.start_bot()
    return world


@pytest.fixture
async def two_villages(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await make_world(homeserver, tmp_path, villages=2)
    yield world
    await world.close()


@pytest.fixture
async def trusting_village(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await make_world(
        homeserver, tmp_path, village_options={"moderation": {"trusted_after": 1}}
    )
    yield world
    await world.close()


async def ask(person: Resident, room: str, command: str) -> str:
    return body_of(await person.command(room, command)) or ""


async def queue_message(world: World, number: int, village: int = 0) -> Event:
    v = world.villages[village]
    return await v.moderator.wait_for(
        v.rooms["moderation"], bot_message(world, f"Nr. {number} ", "wartet auf Freigabe")
    )


async def join_moderation_room(world: World, person: Resident, village: int = 0) -> str:
    room = world.villages[village].rooms["moderation"]
    await world.admin.invite(room, person.user_id)
    await person.wait_joined(room)
    return room


async def barrier(person: Resident, room: str) -> None:
    """The bot handles a room's events in order: a pong means all before it is done."""
    assert await ask(person, room, "!ping") == "pong"


# -------------------------------------------------------------------- tests


async def test_only_moderators_of_the_village_decide_and_never_their_own(
    two_villages: World,
) -> None:
    world = two_villages
    a, b = world.villages
    anna, bernd = a.residents
    market, modroom = a.rooms["marketplace"], a.rooms["moderation"]
    is_post = bot_message(world, "Biete · Nr. 1")

    sent = await anna.send(market, "!biete Apfelbaum-Schnitt #garten")
    queued = await queue_message(world, 1)

    # a resident: the command is refused, a reaction (from inside the room) ignored
    assert "dürfen nur Moderatorinnen" in await ask(bernd, market, "!freigeben 1")
    await join_moderation_room(world, bernd)
    assert "dürfen nur Moderatorinnen" in await ask(bernd, modroom, "!freigeben 1")
    await bernd.react(modroom, queued["event_id"], "✅")
    await barrier(bernd, modroom)

    # the moderator of village B: refused in A's room; in B's room 1 is B's number
    await join_moderation_room(world, b.moderator)
    assert "dürfen nur Moderatorinnen" in await ask(b.moderator, modroom, "!freigeben 1")
    await b.moderator.react(modroom, queued["event_id"], "✅")
    await b.moderator.react(modroom, queued["event_id"], "❌")
    await barrier(b.moderator, modroom)
    assert "gibt es in diesem Dorf nicht" in await ask(
        b.moderator, b.rooms["moderation"], "!freigeben 1"
    )
    assert "leer" in await ask(b.moderator, b.rooms["moderation"], "!warteschlange")
    await anna.ensure_no_event(market, is_post, duration=1.0)
    assert "Nr. 1" in await ask(a.moderator, modroom, "!warteschlange")

    # nobody decides on their own item: bernd posts, then becomes a moderator
    await ask(bernd, market, "!suche Leiter #technik")
    queued2 = await queue_message(world, 2)
    await world.admin.set_power_level(modroom, bernd.user_id, 50)
    for _ in range(50):
        assert world.bot is not None
        if world.bot.matrix.power_level(modroom, bernd.user_id) == 50:
            break
        await asyncio.sleep(0.1)
    assert "Eigene Beiträge (Nr. 2)" in await ask(bernd, modroom, "!freigeben 2")
    await bernd.react(modroom, queued2["event_id"], "✅")
    own = await bernd.wait_for(
        modroom,
        lambda e: reply_target(e) == queued2["event_id"] and "Eigene" in (body_of(e) or ""),
    )
    assert own["sender"] == world.bot_user_id
    # ... but as a moderator now, bernd may decide on anna's item (his earlier ✅
    # stands and counted for nothing; the homeserver refuses a second one)
    await bernd.react(modroom, queued["event_id"], "👍")
    post = await anna.wait_for(market, is_post)
    assert "Apfelbaum-Schnitt" in (body_of(post) or "")
    told = await anna.wait_for(
        market, lambda e: reply_target(e) == sent and "freigegeben" in (body_of(e) or "")
    )
    assert told["sender"] == world.bot_user_id
    assert "wartet nicht" in await ask(a.moderator, modroom, "!freigeben 1")
    await anna.ensure_no_event(
        market, bot_message(world, "Suche · Nr. 2"), duration=0.5
    )  # bernd's own request still waits
    assert "Nr. 2" in await ask(a.moderator, modroom, "!warteschlange")


async def test_remove_block_log_stats_and_trusted_users(trusting_village: World) -> None:
    world = trusting_village
    anna, bernd = world.village.residents
    mod = world.moderator
    market, modroom = world.room("marketplace"), world.room("moderation")

    assert "wartet auf Freigabe" in await ask(anna, market, "!biete Eier vom Hof #einkauf")
    queue = await ask(mod, modroom, "!queue")
    assert "1 warten auf Freigabe" in queue and "Eier vom Hof" in queue
    assert "freigegeben" in await ask(mod, modroom, "!freigeben 1")
    await anna.wait_for(market, bot_message(world, "Biete · Nr. 1"))

    # one approved post makes anna trusted (trusted_after: 1): straight to the market
    assert "steht jetzt im Marktplatz" in await ask(anna, market, "!biete Gratis Welpen #sonstiges")
    post = await anna.wait_for(market, bot_message(world, "Biete · Nr. 2", "Welpen"))
    assert "leer" in await ask(mod, modroom, "!warteschlange")

    # removal redacts the published message and tells the author why
    assert "ist entfernt" in await ask(mod, modroom, "!entfernen 2 Tierhandel ist verboten")
    redaction = await anna.wait_for(
        market,
        lambda e: e.get("type") == "m.room.redaction" and e.get("redacts") == post["event_id"],
    )
    assert redaction["sender"] == world.bot_user_id
    told = await anna.wait_for(market, bot_message(world, "entfernt", "Tierhandel ist verboten"))
    assert anna.user_id in told["content"]["m.mentions"]["user_ids"]
    assert (await anna.notifications()).get(told["event_id"]) is True
    assert "Welpen" not in await ask(bernd, market, "!angebote")
    assert "nicht mehr aktiv" in await ask(mod, modroom, "!entfernen 2")

    # blocks: for some days, or for good; scoped to this village's posts
    assert "gesperrt" in await ask(mod, modroom, f"!sperren {anna.user_id} 2 Tage Spam")
    refused = await ask(anna, market, "!biete Noch mehr Eier")
    assert "bis" in refused and "gesperrt" in refused
    assert "Eier vom Hof" in await ask(anna, market, "!angebote")  # reading still works
    assert "nichts mehr" in await ask(mod, modroom, f"!sperren {bernd.user_id}")
    assert "Sie sind in diesem Dorf gesperrt" in await ask(bernd, market, "!suche Hilfe")
    assert "Sich selbst" in await ask(mod, modroom, f"!sperren {mod.user_id}")
    assert "Matrix-ID" in await ask(mod, modroom, "!sperren jemand")
    assert "wieder freigeschaltet" in await ask(mod, modroom, f"!entsperren {anna.user_id}")
    assert "nicht gesperrt" in await ask(mod, modroom, f"!entsperren {anna.user_id}")
    # anna is still trusted: one approved post (the removed one does not count)
    assert "Nr. 3" in await ask(anna, market, "!biete Noch mehr Eier #einkauf")
    await anna.wait_for(market, bot_message(world, "Biete · Nr. 3"))
    assert "gesperrt" in await ask(bernd, market, "!request Hilfe")
    # a blocked person cannot reach the author through !kontakt either: no room, no invite
    rooms_before = anna.joined_rooms | anna.invited_rooms
    for _ in range(3):
        assert "niemanden anschreiben" in await ask(bernd, market, "!kontakt 3")
    await barrier(anna, market)  # an invite would be sent before the reply, so seen by now
    assert anna.joined_rooms | anna.invited_rooms == rooms_before

    log = await ask(mod, modroom, "!protokoll")
    for part in (
        "freigegeben Nr. 1",
        "entfernt Nr. 2",
        "Tierhandel ist verboten",
        f"gesperrt {anna.user_id} – Spam",
        f"entsperrt {anna.user_id}",
        mod.user_id,
    ):
        assert part in log, (part, log)
    assert log.index("entsperrt") < log.index("freigegeben")  # newest first

    stats = await ask(mod, modroom, "!statistik")
    for part in (
        "Aktive Personen: 1",
        "Angebot veröffentlicht: 2",
        "Angebot entfernt: 1",
        "einkauf: 2",
        "sonstiges: 1",
        "Freigegeben: 1, abgelehnt: 0, wartend: 0",
        "Median): 1 Min.",
    ):
        assert part in stats, (part, stats)


async def test_queue_survives_a_restart(homeserver: Homeserver, tmp_path: Path) -> None:
    world = await make_world(homeserver, tmp_path, encrypted=("moderation",))
    try:
        anna, bernd = world.village.residents
        mod = world.moderator
        market, modroom = world.room("marketplace"), world.room("moderation")

        sent1 = await anna.send(market, "!biete Kirschen zum Selbstpflücken #garten")
        await anna.wait_for(market, lambda e: reply_target(e) == sent1)
        queued1 = await queue_message(world, 1)
        assert mod.was_encrypted(queued1["event_id"])

        await world.stop_bot()
        sent2 = await bernd.send(market, "!suche Hilfe beim Umzug #sonstiges")  # while down
        await world.start_bot()
        ack2 = await bernd.wait_for(market, lambda e: reply_target(e) == sent2, timeout=30)
        assert "Nr. 2" in (body_of(ack2) or "")
        queued2 = await queue_message(world, 2)

        queue = await ask(mod, modroom, "!warteschlange")
        assert "2 warten auf Freigabe" in queue and "Kirschen" in queue and "Umzug" in queue
        await mod.react(modroom, queued1["event_id"], "✅")
        await mod.react(modroom, queued2["event_id"], "❌")
        post = await anna.wait_for(market, bot_message(world, "Biete · Nr. 1", "Kirschen"))
        assert post["sender"] == world.bot_user_id
        await anna.wait_for(
            market, lambda e: reply_target(e) == sent1 and "freigegeben" in (body_of(e) or "")
        )
        await bernd.wait_for(
            market, lambda e: reply_target(e) == sent2 and "nicht freigegeben" in (body_of(e) or "")
        )

        # and once more after a restart: decisions are final, numbers continue
        await world.restart_bot()
        await mod.react(modroom, queued2["event_id"], "✅")
        await barrier(mod, modroom)
        await bernd.ensure_no_event(market, bot_message(world, "Suche · Nr. 2"), duration=0.5)
        assert "Nr. 3" in await ask(anna, market, "!biete Pflaumen")
        await asyncio.sleep(1)
        assert len(anna.replies_to(sent1, sender=world.bot_user_id)) == 2  # ack + approval
        assert len(bernd.replies_to(sent2, sender=world.bot_user_id)) == 2  # ack + rejection
    finally:
        await world.close()


async def test_an_approved_post_the_homeserver_refused_is_published_after_a_restart(
    world: World,
) -> None:
    anna, bernd = world.village.residents
    market, modroom = world.room("marketplace"), world.room("moderation")
    sent = await anna.send(market, "!biete Gartenbank")
    await anna.wait_for(market, lambda e: reply_target(e) == sent)
    # The bot loses the marketplace room: its post there is refused (M_FORBIDDEN).
    await world.admin.request_json(
        "POST",
        f"/_matrix/client/v3/rooms/{market}/kick",
        {"user_id": world.bot_user_id, "reason": "test"},
    )
    bot = world.bot
    assert bot is not None
    reply = await ask(world.moderator, modroom, "!freigeben 1")
    assert "nicht veröffentlichen" in reply, reply
    item = await bot.moderation.items.get(world.village.id, 1)
    assert item is not None and item.state == "publishing"
    # Back in the room and restarted: the bot posts it, then tells Anna (not before).
    await world.admin.invite(market, world.bot_user_id)
    member = f"/_matrix/client/v3/rooms/{market}/state/m.room.member/{world.bot_user_id}"
    for _ in range(150):
        if (await world.admin.get_json(member)).get("membership") == "join":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the bot did not rejoin the marketplace")
    await world.restart_bot()
    told = await anna.wait_for(
        market, lambda e: reply_target(e) == sent and "für alle sichtbar" in (body_of(e) or "")
    )
    post = await bernd.wait_for(market, bot_message(world, "Gartenbank"))
    assert post["origin_server_ts"] <= told["origin_server_ts"]
    assert not [e for e in anna.replies_to(sent) if "für alle sichtbar" in (body_of(e) or "")][1:]
