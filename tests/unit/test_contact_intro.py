"""A contact room's introduction waits until both people have joined (SPEC 5).

Only joined members are pushed for a room's messages; the real-homeserver
proof is in tests/integration/test_marketplace.py. Here: the order of joins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nio
import pytest

from dorfbot.testing.offline import OfflineBot

AUTHOR, ASKER = "@anna:test", "@bernd:test"


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[OfflineBot]:
    bot = await OfflineBot.create(tmp_path, villages=1)
    yield bot
    await bot.close()


async def test_introduction_once_both_have_joined(offline: OfflineBot) -> None:
    bot = offline.bot
    await bot.moderation.items.create(
        village="v0",
        plugin="marketplace",
        kind="offer",
        state="published",
        author=AUTHOR,
        title="Rasenmäher",
    )
    assert await offline.command("!marketplace0:test", ASKER, "!kontakt 1") == "ok"
    (answer,) = offline.sent
    room_id = str(answer.content["formatted_body"]).split("https://matrix.to/#/")[1].split('"')[0]
    room = nio.MatrixRoom(room_id, bot.matrix.user_id)
    bot.matrix.client.rooms[room_id] = room
    room.add_member(AUTHOR, None, None, invited=True)
    room.add_member(ASKER, None, None)
    plugin = bot.plugin("marketplace")
    assert plugin is not None

    await plugin.on_private_room_join(room_id, ASKER)  # the author is only invited
    assert len(offline.sent) == 1

    room.invited_users.pop(AUTHOR)
    await plugin.on_private_room_join(room_id, AUTHOR)
    await plugin.on_private_room_join(room_id, AUTHOR)  # a rejoin: no second introduction
    intros = offline.sent[1:]
    assert len(intros) == 1
    content = intros[0].content
    assert intros[0].room_id == room_id and content["msgtype"] == "m.text"
    assert set(content["m.mentions"]["user_ids"]) == {AUTHOR, ASKER}
    assert AUTHOR in content["body"] and ASKER in content["body"]
    # both are pills in the text already, so none is put in front
    assert content["body"].startswith("👋")
