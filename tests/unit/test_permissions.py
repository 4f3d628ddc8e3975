"""Every command × role × room kind, derived from the declared specs (SPEC 1, 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dorfbot.commands import Scope
from dorfbot.roles import Role
from dorfbot.testing.offline import ROOM_KINDS, OfflineBot

# who -> (user in village v0's terms, effective role in v0)
PEOPLE = {
    "resident": ("@someone:test", Role.RESIDENT),
    "helper": ("@helper0:test", Role.HELPER),
    "organizer": ("@org0:test", Role.ORGANIZER),
    "moderator": ("@mod0:test", Role.MODERATOR),
    "moderator of another village": ("@mod1:test", Role.RESIDENT),
    "admin": ("@admin:test", Role.ADMIN),
}


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[OfflineBot]:
    bot = await OfflineBot.create(tmp_path)
    yield bot
    await bot.close()


async def test_permission_table(offline: OfflineBot) -> None:
    specs = list(offline.bot.commands)
    assert len(specs) >= 15
    cells = 0
    for spec in specs:
        for who, (user, role) in PEOPLE.items():
            for kind in ROOM_KINDS:
                room = "!chat0:test" if kind == "chat" else f"!{kind}0:test"
                outcome = await offline.command(room, user, f"!{spec.name}")
                allowed = role >= spec.role and (
                    spec.scope is not Scope.MODERATION or kind == "moderation"
                )
                expected = "ok" if allowed else "refused"
                assert outcome == expected, (spec.name, who, kind, outcome)
                cells += 1
    print(f"permission cells checked: {cells}")
    assert cells == len(specs) * len(PEOPLE) * len(ROOM_KINDS)


async def test_nobody_decides_on_their_own_item(offline: OfflineBot) -> None:
    store = offline.bot.moderation.items
    item, _ = await store.create(
        village="v0",
        plugin="marketplace",
        kind="offer",
        state="pending",
        author="@mod0:test",
        title="Eigenes",
    )
    offline.sent.clear()
    await offline.command("!moderation0:test", "@mod0:test", f"!freigeben {item.number}")
    fresh = await store.get("v0", item.number)
    assert fresh is not None and fresh.state == "pending"
    assert any("selbst" in s.content.get("body", "") for s in offline.sent)
    await offline.command("!moderation0:test", "@admin:test", f"!freigeben {item.number}")
    fresh = await store.get("v0", item.number)
    assert fresh is not None and fresh.state == "published"


async def test_a_moderator_cannot_act_on_another_village(offline: OfflineBot) -> None:
    store = offline.bot.moderation.items
    item, _ = await store.create(
        village="v1",
        plugin="marketplace",
        kind="offer",
        state="pending",
        author="@someone:test",
        title="Drüben",
    )
    # mod0 in their own moderation room: numbers are looked up in v0 only
    await offline.command("!moderation0:test", "@mod0:test", f"!freigeben {item.number}")
    # mod0 in village 1's moderation room is nobody there
    outcome = await offline.command("!moderation1:test", "@mod0:test", f"!freigeben {item.number}")
    assert outcome == "refused"
    fresh = await store.get("v1", item.number)
    assert fresh is not None and fresh.state == "pending"


async def test_an_interrupted_approval_is_finished_when_repeated(offline: OfflineBot) -> None:
    store = offline.bot.moderation.items
    item, _ = await store.create(
        village="v0",
        plugin="marketplace",
        kind="offer",
        state="pending",
        author="@someone:test",
        title="Rad",
    )
    # the crash happened after the decision, before the marketplace message
    await store.transition(item, "publishing", decided_by="@mod0:test")
    await offline.command("!moderation0:test", "@mod0:test", f"!freigeben {item.number}")
    fresh = await store.get("v0", item.number)
    assert fresh is not None and fresh.published_event is not None
    assert any(s.room_id == "!marketplace0:test" for s in offline.sent)
    # once published, approving again (anyone) posts nothing more
    offline.sent.clear()
    await offline.command("!moderation0:test", "@admin:test", f"!freigeben {item.number}")
    assert not any(s.room_id == "!marketplace0:test" for s in offline.sent)
