"""The marketplace against a real homeserver: queue, publication, lists, contact, expiry."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
async def world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await build_world(
        homeserver, tmp_path, plugin_classes=PLUGINS, config_options={"commands_per_minute": 1000}
    )
    await world.start_bot()
    yield world
    await world.close()


# ------------------------------------------------------------------ helpers


def html_of(event: Event) -> str:
    return str(event.get("content", {}).get("formatted_body") or "")


def edit_of(world: World, event_id: str, *needles: str) -> Callable[[Event], bool]:
    def check(event: Event) -> bool:
        relates = event.get("content", {}).get("m.relates_to") or {}
        new = event.get("content", {}).get("m.new_content") or {}
        return (
            event.get("sender") == world.bot_user_id
            and relates.get("rel_type") == "m.replace"
            and relates.get("event_id") == event_id
            and all(n in str(new.get("body")) for n in needles)
        )

    return check


async def ask(person: Resident, room: str, command: str) -> str:
    """Send a command, return the body of the bot's reply."""
    return body_of(await person.command(room, command)) or ""


async def queue_message(world: World, number: int) -> Event:
    return await world.moderator.wait_for(
        world.room("moderation"), bot_message(world, f"Nr. {number} ", "wartet auf Freigabe")
    )


async def barrier(person: Resident, room: str) -> None:
    """Everything sent to ``room`` before has been handled by the bot (it works in order)."""
    assert await ask(person, room, "!ping") == "pong"


# -------------------------------------------------------------------- tests


async def test_offer_through_queue_into_market_and_off_the_list(world: World) -> None:
    anna, bernd = world.village.residents
    mod = world.moderator
    market, modroom = world.room("marketplace"), world.room("moderation")

    sent = await anna.send(
        market, "!biete Rasenmäher zum Ausleihen #garten ortsteil:Nord\nBenzin, frisch gewartet"
    )
    ack = await anna.wait_for(market, lambda e: reply_target(e) == sent)
    assert "Nr. 1" in (body_of(ack) or "") and "wartet auf Freigabe" in (body_of(ack) or "")

    queued = await queue_message(world, 1)
    body = body_of(queued) or ""
    for part in (
        "Rasenmäher zum Ausleihen",
        "Benzin",
        anna.user_id,
        "Kategorie: garten",
        "Ortsteil: Nord",
        "(Angebot)",
    ):
        assert part in body, part
    assert not [e for e in anna.events(market) if bot_message(world, "Biete")(e)]

    await mod.react(modroom, queued["event_id"], "\u2705\ufe0f")  # as Element X sends it
    post = await anna.wait_for(market, bot_message(world, "Biete", "Rasenmäher zum Ausleihen"))
    body = body_of(post) or ""
    for part in ("Nr. 1", "Benzin, frisch gewartet", "#garten", "Nord", anna.user_id, "!kontakt 1"):
        assert part in body, part
    assert post["content"]["msgtype"] == "m.text"
    assert "<b>Rasenmäher zum Ausleihen</b>" in html_of(post)
    told = await anna.wait_for(
        market,
        lambda e: reply_target(e) == sent and e is not ack and "freigegeben" in (body_of(e) or ""),
    )
    assert anna.user_id in told["content"]["m.mentions"]["user_ids"]
    # Pushes, as the homeserver decides them: the queue item to the moderator, the outcome
    # to the author (both highlights), the post as a normal message, the answer not at all.
    assert (await mod.notifications()).get(queued["event_id"]) is True
    pushed_to_anna = await anna.notifications()
    assert pushed_to_anna.get(told["event_id"]) is True
    assert ack["event_id"] not in pushed_to_anna
    assert (await bernd.notifications()).get(post["event_id"]) is False
    await mod.wait_for(modroom, edit_of(world, queued["event_id"], "Freigegeben", mod.user_id))

    # a request from a neighbour, approved by command (English alias, "Nr." spelled out)
    await ask(bernd, market, "!request Hilfe beim Einkaufen #einkauf ortsteil:süd")
    assert "Nr. 2" in await ask(mod, modroom, "!approve Nr. 2")
    await bernd.wait_for(market, bot_message(world, "Suche", "Hilfe beim Einkaufen"))

    offers = await ask(bernd, market, "!angebote #garten")
    assert "Nr. 1" in offers and "Rasenmäher" in offers and "Einkaufen" not in offers
    assert "keine Angebote" in await ask(bernd, market, "!angebote #technik")
    assert "Meinten Sie #garten" in await ask(bernd, market, "!angebote #gartn")
    assert "Meinten Sie ortsteil:Nord" in await ask(bernd, market, "!offers ortsteil:Nrd")
    assert "Rasenmäher" in await ask(bernd, market, "!angebote ortsteil:nord")
    assert "Rasenmäher" not in await ask(bernd, market, "!angebote ortsteil:Süd")
    requests = await ask(anna, market, "!gesuche")
    assert "Hilfe beim Einkaufen" in requests and "Süd" in requests
    assert "Rasenmäher" in await ask(bernd, market, "!finde mäher")
    assert "Einkaufen" in await ask(bernd, market, "!find einkaufen")
    assert "nichts gefunden" in await ask(bernd, market, "!finde Traktor")
    mine = await ask(anna, market, "!meine")
    assert "Nr. 1" in mine and "veröffentlicht" in mine and "Hilfe" not in mine

    assert "nicht Ihr Beitrag" in await ask(bernd, market, "!erledigt 1")
    assert "erledigt" in await ask(anna, market, "!erledigt 1")
    await anna.wait_for(market, edit_of(world, post["event_id"], "Erledigt"))
    assert "Rasenmäher" not in await ask(bernd, market, "!angebote")
    assert "nichts gefunden" in await ask(bernd, market, "!finde Rasenmäher")
    assert "erledigt" in await ask(anna, market, "!meine")
    assert "nicht mehr aktiv" in await ask(anna, market, "!erledigt 1")


async def test_rejection_reason_limits_and_validation(world: World) -> None:
    anna = world.resident
    mod = world.moderator
    market, modroom = world.room("marketplace"), world.room("moderation")

    sent = await anna.send(market, "!suche Zigaretten gegen Bares 0171-1234567 #einkauf")
    queued = await queue_message(world, 1)
    assert "Rejected" not in await ask(mod, modroom, "!ablehnen 1 Bitte ohne Telefonnummer")
    told = await anna.wait_for(
        market, lambda e: reply_target(e) == sent and "nicht freigegeben" in (body_of(e) or "")
    )
    assert "Bitte ohne Telefonnummer" in (body_of(told) or "")
    assert (await anna.notifications()).get(told["event_id"]) is True  # the reason pushes
    await mod.wait_for(
        modroom, edit_of(world, queued["event_id"], "Abgelehnt", "Bitte ohne Telefonnummer")
    )
    await mod.react(modroom, queued["event_id"], "\u2705\ufe0f")  # too late: nothing happens
    assert "abgelehnt" in await ask(anna, market, "!meine")
    assert "keine Gesuche" in await ask(anna, market, "!gesuche")

    long_title = "x" * 121
    assert "zu lang (121 Zeichen, höchstens 120)" in await ask(anna, market, f"!biete {long_title}")
    assert "zu lang (2001 Zeichen, höchstens 2000)" in await ask(
        anna, market, "!biete Kurz\n" + "y" * 2001
    )
    assert "Was möchten Sie anbieten?" in await ask(anna, market, "!biete #garten")
    unknown = await ask(anna, market, "!biete Holz #brennholz")
    assert "#garten" in unknown and "#technik" in unknown
    assert "Meinten Sie #fahrdienst" in await ask(anna, market, "!suche Mitfahrt #fahrdiens")
    assert "Meinten Sie ortsteil:Ortsmitte" in await ask(
        anna, market, "!biete Holz ortsteil:Ortmitte"
    )
    # the district option runs to the line's end: known district first, the rest is title
    ok = await ask(anna, market, "!biete Brennholz ortsteil:Nord trocken gelagert")
    assert "Nr. 2" in ok
    queued = await queue_message(world, 2)
    assert "Brennholz trocken gelagert" in (body_of(queued) or "")
    assert "Ortsteil: Nord" in (body_of(queued) or "")
    # numbers never repeat: 1 (rejected) and 2 are taken
    assert "Nr. 3" in await ask(anna, market, "!suche Leiter")
    # the author withdraws a pending post; the queue message says so
    assert "gelöscht" in await ask(anna, market, "!loeschen 3")
    queued3 = await queue_message(world, 3)
    await mod.wait_for(modroom, edit_of(world, queued3["event_id"], "Zurückgezogen"))
    assert "wartet nicht" in await ask(mod, modroom, "!freigeben 3")


async def test_html_in_user_content_arrives_escaped(world: World) -> None:
    anna, bernd = world.village.residents
    helper, mod = world.village.helper, world.moderator
    market, modroom = world.room("marketplace"), world.room("moderation")

    await ask(anna, market, f"!biete {HOSTILE} <b>fett</b> #garten\n<script>alert(1)</script>")
    await ask(helper, market, f'!fuer "{HOSTILE} Oma" biete <i>Kuchen</i> & Co')
    for number in (1, 2):
        await queue_message(world, number)
        assert "freigegeben" in await ask(mod, modroom, f"!freigeben {number}")
    await anna.wait_for(market, bot_message(world, "Kuchen"))
    await ask(bernd, market, "!angebote")
    await ask(bernd, market, "!finde onerror")
    await ask(anna, market, "!meine")
    contact = await bernd.command(market, "!kontakt 1")
    await ask(mod, modroom, "!warteschlange")
    await ask(mod, modroom, f"!sperren @x:y 1 {HOSTILE}")
    await ask(mod, modroom, "!protokoll")
    await ask(helper, market, "!erledigt 2")
    await ask(anna, market, "!ablehnen 1 <b>")  # refused: not a moderator

    rooms = set(world.village.rooms.values())
    room_id = next(r for r in bernd.joined_rooms if r not in rooms)
    await bernd.wait_for(room_id, bot_message(world, "meldet sich"))
    await anna.wait_for(
        market,
        edit_of(
            world,
            (await anna.wait_for(market, bot_message(world, "Kuchen")))["event_id"],
            "Erledigt",
        ),
    )
    assert "privaten Raum" in (body_of(contact) or "")

    checked = 0
    seen: dict[str, Event] = {}
    for person in (anna, bernd, helper, mod):
        for room in person.joined_rooms:
            for event in person.events(room):
                if event.get("sender") == world.bot_user_id:
                    seen[event["event_id"]] = event
    for event in seen.values():
        content = event.get("content", {})
        for part in (content, content.get("m.new_content") or {}):
            formatted = part.get("formatted_body")
            if formatted is None:
                continue
            checked += 1
            for raw in ("<img", "<script", "<b>fett", "<i>Kuchen", "onerror=alert(1)>"):
                assert raw not in formatted, (raw, formatted)
    escaped = [e for e in seen.values() if "&lt;img src=x onerror=alert(1)&gt;" in html_of(e)]
    # queue messages, published posts, lists, search, own list, contact intro, modlog
    assert len(escaped) >= 8, [body_of(e) for e in escaped]
    assert checked >= 20
    assert any("&lt;i&gt;Kuchen&lt;/i&gt; &amp; Co" in html_of(e) for e in seen.values())


async def test_contact_room_and_helper_proxy_posts(world: World) -> None:
    anna = world.resident
    helper, mod = world.village.helper, world.moderator
    market, modroom = world.room("marketplace"), world.room("moderation")

    assert "dürfen nur" in await ask(anna, market, '!fuer "Oma Erna" biete Kuchen')
    assert '!fuer "Frau Meier' in await ask(helper, market, "!fuer biete Kartoffeln")
    sent = await ask(helper, market, '!fuer "Frau Meier, Tel. 1234" biete Kartoffeln #garten')
    assert "Nr. 1" in sent
    queued = await queue_message(world, 1)
    assert "für Frau Meier, Tel. 1234" in (body_of(queued) or "")
    await mod.react(modroom, queued["event_id"], "\u2705\ufe0f")  # as Element X sends it
    post = await anna.wait_for(market, bot_message(world, "Biete · Nr. 1", "Kartoffeln"))
    assert f"eingestellt von {helper.user_id} für Frau Meier, Tel. 1234" in (body_of(post) or "")
    assert "für Frau Meier" in await ask(anna, market, "!angebote")
    # unquoted names work too
    assert "Nr. 2" in await ask(helper, market, "!for Herr Krause suche Hilfe im Garten")
    await queue_message(world, 2)

    reply = await anna.command(market, "!kontakt 1")
    assert "privaten Raum" in (body_of(reply) or "") and helper.user_id in (body_of(reply) or "")
    room_id = unquote(html_of(reply).split("https://matrix.to/#/")[1].split('"')[0])
    # Both are invited (the invite pushes); the introduction waits until both are in,
    # because a room's messages push only to members who have joined.
    await anna.wait_joined(room_id)
    await helper.wait_joined(room_id)
    intro = await anna.wait_for(room_id, bot_message(world, "meldet sich"))
    body = body_of(intro) or ""
    assert anna.user_id in body and helper.user_id in body and "Frau Meier" in body
    assert set(intro["content"]["m.mentions"]["user_ids"]) == {anna.user_id, helper.user_id}
    assert (await anna.notifications()).get(intro["event_id"]) is True
    pushed_to_helper = await helper.notifications()
    assert pushed_to_helper.get(intro["event_id"]) is True
    invites = await helper.get_json("/_matrix/client/v3/notifications", {"limit": "100"})
    assert any(
        n["room_id"] == room_id and n["event"]["type"] == "m.room.member"
        for n in invites["notifications"]
    )
    state = await anna.get_json(f"/_matrix/client/v3/rooms/{room_id}/state/m.room.name")
    assert state["name"] == "Nr. 1: Kartoffeln"
    members = await anna.get_json(f"/_matrix/client/v3/rooms/{room_id}/joined_members")
    assert set(members["joined"]) == {world.bot_user_id, anna.user_id, helper.user_id}
    await anna.send(room_id, "Hallo, ich hätte gern 5 kg!")
    await helper.wait_for(room_id, lambda e: body_of(e) == "Hallo, ich hätte gern 5 kg!")

    assert "schon einen privaten Raum" in await ask(anna, market, "!kontakt 1")
    assert "Ihr eigener Beitrag" in await ask(helper, market, "!kontakt 1")
    assert "kein aktuelles" in await ask(anna, market, "!kontakt 2")  # still pending
    assert "nicht Ihr Beitrag" in await ask(anna, market, "!erledigt 1")
    assert "erledigt" in await ask(helper, market, "!erledigt 1")
    assert "Kartoffeln" not in await ask(anna, market, "!angebote")


async def test_expiry_reminder_extension_paging_and_own_items(world: World) -> None:
    anna = world.resident
    org = world.village.organizer
    market = world.room("marketplace")
    bot = world.bot
    assert bot is not None
    plugin = bot.plugin("marketplace")
    assert plugin is not None

    # organizers skip the queue; 12 offers make two pages
    for n in range(1, 13):
        assert "steht jetzt im Marktplatz" in await ask(org, market, f"!biete Sache {n:02d}")
    first = await ask(anna, market, "!angebote")
    assert "Sache 12" in first and "Sache 03" in first and "Sache 02" not in first
    assert "Weitere: !angebote 2" in first
    second = await ask(anna, market, "!angebote 2")
    assert "Sache 02" in second and "Sache 01" in second and "Sache 03" not in second
    assert "Weitere" not in second
    assert "nichts mehr" in await ask(anna, market, "!angebote 3")

    # reminder three days before expiry, once
    sent = await anna.send(market, "!biete Gartenschlauch")
    await anna.wait_for(market, lambda e: reply_target(e) == sent)
    await world.moderator.command(world.room("moderation"), "!freigeben 13")
    post = await anna.wait_for(market, bot_message(world, "Gartenschlauch"))
    await bot.db.execute(
        "UPDATE items SET expires_at = ? WHERE village = ? AND number = 13",
        (time.time() + 86400, world.village.id),
    )
    await plugin.check_expiry()  # type: ignore[attr-defined]
    await plugin.check_expiry()  # type: ignore[attr-defined]
    reminder = await anna.wait_for(
        market, lambda e: reply_target(e) == sent and "läuft am" in (body_of(e) or "")
    )
    assert "!verlaengern 13" in (body_of(reminder) or "")
    assert (await anna.notifications()).get(reminder["event_id"]) is True
    await barrier(anna, market)
    assert len([e for e in anna.replies_to(sent) if "läuft am" in (body_of(e) or "")]) == 1

    extended = await ask(anna, market, "!verlaengern 13")
    assert "bleibt jetzt bis" in extended
    row = await bot.db.fetchone(
        "SELECT expires_at, reminded_at FROM items WHERE village = ? AND number = 13",
        (world.village.id,),
    )
    assert row["reminded_at"] is None and row["expires_at"] > time.time() + 29 * 86400

    # overdue: expired, edited, off the lists, cannot be extended
    await bot.db.execute(
        "UPDATE items SET expires_at = ? WHERE village = ? AND number = 13",
        (time.time() - 1, world.village.id),
    )
    await plugin.check_expiry()  # type: ignore[attr-defined]
    await anna.wait_for(market, edit_of(world, post["event_id"], "Abgelaufen", "Gartenschlauch"))
    expired = await anna.wait_for(
        market, lambda e: reply_target(e) == sent and "ist abgelaufen" in (body_of(e) or "")
    )
    assert (await anna.notifications()).get(expired["event_id"]) is True
    assert "Gartenschlauch" not in await ask(anna, market, "!angebote")
    assert "läuft nicht mehr" in await ask(anna, market, "!verlaengern 13")
    assert "abgelaufen" in await ask(anna, market, "!meine")

    # !meine and !loeschen cover every kind of item through the core (events too)
    event, _ = await bot.moderation.items.create(
        village=world.village.id,
        plugin="calendar",
        kind="event",
        state="published",
        author=anna.user_id,
        title="Dorffest",
    )
    assert event.number == 14
    mine = await ask(anna, market, "!mine")
    assert "Nr. 14" in mine and "(Termin) Dorffest" in mine and "Gartenschlauch" in mine
    assert "nicht Ihr Beitrag" in await ask(org, market, "!loeschen 14")
    assert "Nr. 14 (Termin) ist gelöscht" in await ask(anna, market, "!delete 14")
    assert "Dorffest" not in await ask(anna, market, "!meine")
    assert "gibt es in diesem Dorf nicht" in await ask(anna, market, "!loeschen 14")
