"""``!vergessen`` and ``!meinedaten`` on a real homeserver (issue 18, items 1-3).

The erasure's transaction and rollback rules are proven offline in
``tests/unit/test_privacy_offline.py``; here the redactions are seen by other clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from dorfbot.testing.resident import Resident, body_of
from dorfbot.testing.village import World, bot_message

TITLES = ("Rasenmäher", "Leiter", "Umzugskartons", "Dorffest")


async def ask(person: Resident, room: str, command: str) -> str:
    return body_of(await person.command(room, command)) or ""


def carries(event: dict[str, Any], needles: tuple[str, ...]) -> bool:
    content = event.get("content", {})
    new = content.get("m.new_content") or {}
    text = " ".join(
        str(part)
        for part in (
            content.get("body"),
            content.get("formatted_body"),
            new.get("body"),
            new.get("formatted_body"),
        )
        if part
    )
    return any(needle in text for needle in needles)


def published(world: World, title: str) -> Callable[[dict[str, Any]], bool]:
    """The published post or event (not an answer, which replies to a command)."""
    new = bot_message(world, title)
    return lambda e: new(e) and "m.relates_to" not in e["content"]


async def fetch(person: Resident, room: str, event_id: str) -> dict[str, Any]:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    return dict(await person.get_json(path))


async def export_of(world: World, person: Resident) -> dict[str, Any]:
    before = {
        e["event_id"]
        for room in person.joined_rooms
        for e in person.events(room)
        if "event_id" in e
    }
    reply = await person.command(world.room("chat"), "!meinedaten")
    assert "Direktnachricht" in (body_of(reply) or "")
    for _ in range(150):
        for room_id in person.joined_rooms:
            for event in person.events(room_id):
                content = event.get("content", {})
                if (
                    event.get("sender") == world.bot_user_id
                    and content.get("msgtype") == "m.file"
                    and event["event_id"] not in before
                ):
                    return dict(json.loads(await person.download_file(content)))
        await asyncio.sleep(0.2)
    raise AssertionError("no export file arrived")


async def test_forgetme_redacts_every_message_with_the_persons_content(world: World) -> None:
    anna, bernd = world.village.residents
    mod = world.moderator
    market, cal, modroom = (
        world.room("marketplace"),
        world.room("calendar"),
        world.room("moderation"),
    )
    bot = world.bot
    assert bot is not None
    marketplace: Any = bot.plugin("marketplace")

    # Nr. 1 published then done, Nr. 2 published then expired (both edited),
    # Nr. 3 still in the queue, Nr. 4 a published event Bernd takes part in.
    assert "Nr. 1" in await ask(anna, market, "!biete Rasenmäher, Tel. 0170 123")
    assert "Nr. 2" in await ask(anna, market, "!biete Leiter")
    assert "Nr. 3" in await ask(anna, market, "!suche Umzugskartons")
    assert "Nr. 4" in await ask(anna, cal, "!termin morgen 18 Uhr Dorffest")
    for number in (1, 2, 4):
        assert "freigegeben" in await ask(mod, modroom, f"!freigeben {number}")
    offer = await bernd.wait_for(market, published(world, "Leiter"))
    event = await bernd.wait_for(cal, published(world, "Dorffest"))
    assert "erledigt" in await ask(anna, market, "!erledigt 1")
    await bot.db.execute(
        "UPDATE items SET expires_at = ? WHERE village = ? AND number = 2",
        (time.time() - 1, world.village.id),
    )
    await marketplace.check_expiry()
    await bernd.wait_for(
        market,
        lambda e: (
            (e.get("content", {}).get("m.relates_to") or {}).get("event_id") == offer["event_id"]
        ),
    )
    await bernd.react(cal, event["event_id"], "👍")
    calendar: Any = bot.plugin("calendar")
    item_id = await bot.db.fetchval(
        "SELECT id FROM items WHERE village = ? AND number = 4", (world.village.id,)
    )
    for _ in range(100):
        if bernd.user_id in await calendar.events.participants([item_id]):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the RSVP was not recorded")

    # The export names no moderator; the moderator's holds nothing of Anna's.
    mine = json.dumps(await export_of(world, anna), ensure_ascii=False)
    assert "Rasenmäher" in mine and mod.user_id not in mine and "die Moderation" in mine
    theirs = json.dumps(await export_of(world, mod), ensure_ascii=False)
    assert anna.user_id not in theirs
    assert not any(title in theirs for title in TITLES) and "0170" not in theirs

    assert "vergessen ja" in await ask(anna, market, "!vergessen")
    done = await ask(anna, market, "!vergessen ja")
    assert done.startswith("Erledigt"), done

    # Every message of the bot that carried her posts or her name, as others see it.
    needles = (*TITLES, anna.user_id)
    seen = [
        (observer, room, e)
        for observer, rooms in ((bernd, (market, cal, world.room("chat"))), (mod, (modroom,)))
        for room in rooms
        for e in observer.events(room)
        if e.get("sender") == world.bot_user_id
        and e.get("type") == "m.room.message"
        and carries(e, needles)
    ]
    edits = [e for _, _, e in seen if "m.new_content" in e.get("content", {})]
    queue = [e for observer, _, e in seen if observer is mod]
    assert len(edits) >= 3 and len(queue) >= 4, (len(edits), len(queue))
    for observer, room, e in seen:
        now = await fetch(observer, room, e["event_id"])
        assert now["content"] == {}, (body_of(e), now["content"])
        assert "redacted_because" in now.get("unsigned", {}), now

    # Nothing of hers is left in the database or the lists.
    assert (
        await bot.db.fetchval("SELECT count(*) FROM items WHERE author = ?", (anna.user_id,)) == 0
    )
    for table in ("calendar_events", "calendar_rsvps", "sent_messages", "privacy_redactions"):
        assert await bot.db.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    listing = await ask(bernd, cal, "!termine")
    assert "Dorffest" not in listing
    assert "Umzugskartons" not in await ask(mod, modroom, "!warteschlange")
    assert "Leiter" not in await ask(bernd, market, "!angebote")
