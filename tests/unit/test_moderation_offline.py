"""Moderation rules that live in the bot, on the offline bot (issue 18, items 7-11, 13).

Blocks cover every command that reaches other people; trust comes only from a
moderator's approval; ``!sperren`` names its target in the first argument only;
``!entsperren`` lifts a block that outlived ``!vergessen``; odd numbers and
far dates are refused before anything is stored. The Matrix side (a refused
``!kontakt`` opens no room) is proven against Synapse in
``tests/integration/test_moderation.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dorfbot import items as states
from dorfbot.matrix import MatrixError
from dorfbot.moderation import pseudonym
from dorfbot.testing.offline import OfflineBot

MARKET = "!marketplace0:test"
MODROOM = "!moderation0:test"
TROLL = "@troll:test"
MARIA = "@maria:test"


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[OfflineBot]:
    bot = await OfflineBot.create(tmp_path)
    yield bot
    await bot.close()


async def say(offline: OfflineBot, room: str, sender: str, body: str, **kw: str) -> str:
    """Dispatch a command; returns everything the bot answered to it."""
    offline.sent.clear()
    outcome = await offline.command(room, sender, body, **kw)
    assert outcome != "error", (body, offline.replies())
    return "\n".join(offline.replies())


async def is_blocked(offline: OfflineBot, user: str) -> bool:
    blocked, _ = await offline.bot.moderation.blocked_until("v0", user)
    return blocked


async def block_row(offline: OfflineBot, user: str) -> tuple[float | None] | None:
    row = await offline.bot.db.fetchone(
        "SELECT until FROM blocks WHERE village = 'v0' AND user_id = ?", (user,)
    )
    return (row["until"],) if row else None


# ---------------------------------------------------------------- item 7


async def test_every_command_that_reaches_others_is_refused_to_blocked_people(
    offline: OfflineBot,
) -> None:
    reaching = {s.name for s in offline.bot.commands if s.reaches_others}
    # posting, events, announcements, alerts, contact rooms, links: all declared
    assert {"biete", "suche", "fuer", "kontakt", "termin", "absagen", "import"} <= reaching
    assert {"ankuendigung", "rundruf", "planen", "link", "infobox"} <= reaching
    assert not {"angebote", "termine", "hilfe", "meinedaten", "vergessen", "loeschen"} & reaching

    # the organizer of v0 may use every one of them; blocked, none
    org = "@org0:test"
    await say(offline, MODROOM, "@mod0:test", f"!sperren {org} Spam")
    assert await is_blocked(offline, org)
    for name in sorted(reaching):
        spec = offline.bot.commands.get(name)
        assert spec is not None
        offline.sent.clear()
        outcome = await offline.command(MARKET, org, f"!{name} 1 Etwas für alle")
        assert outcome == "refused", name
        assert len(offline.sent) == 1 and "gesperrt" in offline.replies()[0], name
    assert await offline.bot.db.fetchval("SELECT count(*) FROM items") == 0
    # reading still works
    assert "gesperrt" not in await say(offline, MARKET, org, "!angebote")
    # in another village the block does not apply
    assert "wartet" in await say(offline, "!marketplace1:test", org, "!biete Kuchen")


async def test_kontakt_opens_no_room_for_a_blocked_person(offline: OfflineBot) -> None:
    await say(offline, MARKET, "@anna:test", "!biete Fahrrad")
    await say(offline, MODROOM, "@mod0:test", "!freigeben 1")
    opened: list[list[str]] = []

    async def open_room(invite: list[str], name: str, **kwargs: object) -> str:
        opened.append(invite)
        return "!contact:test"

    offline.bot.matrix.open_private_room = open_room  # type: ignore[method-assign]
    await say(offline, MODROOM, "@mod0:test", f"!sperren {TROLL}")
    for _ in range(3):
        assert "gesperrt" in await say(offline, MARKET, TROLL, "!kontakt 1")
    assert opened == []
    await say(offline, MODROOM, "@mod0:test", f"!entsperren {TROLL}")
    assert "privaten Raum" in await say(offline, MARKET, TROLL, "!kontakt 1")
    assert opened == [["@anna:test", TROLL]]


# ---------------------------------------------------------------- item 8


async def test_trust_comes_only_from_a_moderators_approval(tmp_path: Path) -> None:
    offline = await OfflineBot.create(
        tmp_path,
        village_options={"moderation": {"posts": "pre", "events": "off", "trusted_after": 3}},
    )
    try:
        anna = "@anna:test"
        for day in (10, 11, 12):
            assert "Nr." in await say(offline, MARKET, anna, f"!termin {day}.10.2030 18:00 Treff")
        items = offline.bot.moderation.items
        assert await items.approved_count("v0", anna) == 0
        assert "wartet auf Freigabe" in await say(offline, MARKET, anna, "!biete Welpen")
        # three posts a moderator approved make her trusted
        for number in (4, 5, 6):
            if number > 4:
                await say(offline, MARKET, anna, f"!biete Eier {number}")
            assert "freigegeben" in await say(
                offline, MODROOM, "@mod0:test", f"!freigeben {number}"
            )
        assert await items.approved_count("v0", anna) == 3
        assert "steht jetzt im Marktplatz" in await say(offline, MARKET, anna, "!biete Honig")
    finally:
        await offline.close()


# ---------------------------------------------------------------- item 9


def pill(user: str, name: str) -> str:
    return f'<a href="https://matrix.to/#/{user}">{name}</a>'


async def test_sperren_names_its_target_in_the_first_argument_only(offline: OfflineBot) -> None:
    mod = "@mod0:test"
    # a display name typed out, a pill of someone else further on: nobody is blocked
    reply = await say(
        offline,
        MODROOM,
        mod,
        "!sperren Troll 7 Tage, hat Maria beleidigt",
        formatted_body=f"!sperren Troll 7 Tage, hat {pill(MARIA, 'Maria')} beleidigt",
    )
    assert "Matrix-ID" in reply
    assert not await is_blocked(offline, MARIA) and not await is_blocked(offline, TROLL)

    # the quote of a rich reply is never read
    quoted = (
        '<mx-reply><blockquote><a href="https://matrix.to/#/!r:test/$e">In reply to</a> '
        f"{pill(MARIA, 'Maria')}<br>Hallo</blockquote></mx-reply>"
    )
    reply = await say(
        offline, MODROOM, mod, "!sperren 7 Spam", formatted_body=quoted + "!sperren 7 Spam"
    )
    assert "Matrix-ID" in reply and not await is_blocked(offline, MARIA)

    # the pill in the first position is the target, and "7 Tage," is kept
    reply = await say(
        offline,
        MODROOM,
        mod,
        "!sperren Troll 7 Tage, hat Maria beleidigt",
        formatted_body=quoted
        + f"!sperren {pill(TROLL, 'Troll')} 7 Tage, hat {pill(MARIA, 'Maria')} beleidigt",
    )
    assert "bis" in reply, reply
    assert not await is_blocked(offline, MARIA)
    row = await block_row(offline, TROLL)
    assert row is not None and row[0] is not None  # for 7 days, not for good
    reason = await offline.bot.db.fetchval("SELECT reason FROM blocks WHERE user_id = ?", (TROLL,))
    assert reason == "hat Maria beleidigt"

    # a typed ID with "7 Tage," too
    await say(offline, MODROOM, mod, f"!sperren {MARIA} 7 Tage, Spam")
    row = await block_row(offline, MARIA)
    assert row is not None and row[0] is not None


@pytest.mark.parametrize(
    "target",
    ["@troll:test,", "@troll:", "@:test", "@troll", "@troll:-test", "@troll:test:99999999"],
)
async def test_sperren_refuses_what_is_not_a_matrix_id(offline: OfflineBot, target: str) -> None:
    reply = await say(offline, MODROOM, "@mod0:test", f"!sperren {target} Spam")
    assert "keine gültige Matrix-ID" in reply
    assert await offline.bot.db.fetchval("SELECT count(*) FROM blocks") == 0


async def test_moderators_cannot_block_moderators_or_admins(tmp_path: Path) -> None:
    offline = await OfflineBot.create(
        tmp_path, village_options={"moderators": ["@mod0:test", "@mod0b:test"]}
    )
    try:
        for target in ("@admin:test", "@mod0b:test"):
            reply = await say(offline, MODROOM, "@mod0:test", f"!sperren {target}")
            assert "nicht gesperrt werden" in reply, reply
        assert await offline.bot.db.fetchval("SELECT count(*) FROM blocks") == 0
        # an admin may block a moderator; a moderator blocks an organizer
        assert "nichts mehr" in await say(offline, MODROOM, "@admin:test", "!sperren @mod0b:test")
        assert "nichts mehr" in await say(offline, MODROOM, "@mod0:test", "!sperren @org0:test")
    finally:
        await offline.close()


# ---------------------------------------------------------------- item 10


async def test_entsperren_lifts_a_block_that_outlived_vergessen(offline: OfflineBot) -> None:
    await say(offline, MODROOM, "@mod0:test", f"!sperren {TROLL} Spam")
    await say(offline, MARKET, TROLL, "!vergessen")
    await say(offline, MARKET, TROLL, "!vergessen ja")
    assert await block_row(offline, TROLL) is None
    assert await block_row(offline, pseudonym(TROLL)) is not None
    assert await is_blocked(offline, TROLL)
    assert "wieder freigeschaltet" in await say(
        offline, MODROOM, "@mod0:test", f"!entsperren {TROLL}"
    )
    assert not await is_blocked(offline, TROLL)
    assert "wartet" in await say(offline, MARKET, TROLL, "!biete Neuanfang")


# ---------------------------------------------------------------- item 11

ODD_NUMBERS = ["²", "١٢", "１２", "Nr. ³", "#⁴"]


@pytest.mark.parametrize("odd", ODD_NUMBERS)
async def test_odd_digits_are_no_numbers_for_any_command(offline: OfflineBot, odd: str) -> None:
    for spec in offline.bot.commands:
        room = MODROOM if spec.scope.value == "moderation" else MARKET
        for sender in ("@admin:test", "@anna:test"):
            offline.sent.clear()
            outcome = await offline.command(room, sender, f"!{spec.name} {odd}")
            assert outcome != "error", (spec.name, odd, offline.replies())


async def test_far_dates_are_refused_before_anything_is_stored(offline: OfflineBot) -> None:
    for when in ("9999-12-31 23:30", "31.12.9999 23:30", "jährlich ab 9999-12-31 23:30"):
        reply = await say(offline, MARKET, "@anna:test", f"!termin {when} Weltende")
        assert "Nr." not in reply, reply
        reply = await say(offline, MARKET, "@org0:test", f"!planen {when} Weltende")
        assert "geplant" not in reply.lower() or "nicht" in reply, reply
    assert await offline.bot.db.fetchval("SELECT count(*) FROM items") == 0
    assert await offline.bot.db.fetchval("SELECT count(*) FROM announcements_schedule") == 0


# ---------------------------------------------------------------- item 13


async def test_only_an_admin_unschedules_a_broadcast_to_every_village(
    offline: OfflineBot,
) -> None:
    assert "Nr. 1" in await say(
        offline, MARKET, "@admin:test", "!planen rundruf alle 24.12.2030 16:00 Krippenspiel"
    )
    reply = await say(offline, MARKET, "@org0:test", "!planloeschen 1")
    assert "nur ein Administrator" in reply
    assert (
        await offline.bot.db.fetchval("SELECT state FROM announcements_schedule WHERE number = 1")
        == "active"
    )
    assert "Nr. 2" in await say(offline, MARKET, "@admin:test", "!planen 24.12.2030 16:00 Dorf")
    assert "gelöscht" in await say(offline, MARKET, "@org0:test", "!planloeschen 2")
    assert "gelöscht" in await say(offline, MARKET, "@admin:test", "!planloeschen 1")


async def test_an_organizer_withdrawing_someones_pending_event_tells_them(
    offline: OfflineBot,
) -> None:
    assert "wartet" in await say(offline, MARKET, "@anna:test", "!termin 10.10.2030 18:00 Treff")
    reply = await say(offline, MARKET, "@org0:test", "!absagen 1 Doppelt eingetragen")
    assert "zurückgezogen" in reply
    told = [r for r in offline.replies() if "Ihr Termin Nr. 1" in r]
    assert told and "Doppelt eingetragen" in told[0], offline.replies()
    assert "@org0:test" in told[0] and "zurückgezogen" in told[0]
    # withdrawing one's own pending event tells nobody else
    assert "wartet" in await say(offline, MARKET, "@anna:test", "!termin 11.10.2030 18:00 Treff")
    await say(offline, MARKET, "@anna:test", "!absagen 2")
    assert not [r for r in offline.replies() if "Ihr Termin" in r]


# ---------------------------------------------------------------- item 12


async def test_a_failed_publish_is_retried_and_the_author_told_only_then(
    offline: OfflineBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    anna = "@anna:test"
    assert "wartet" in await say(offline, MARKET, anna, "!biete Rasenmäher")
    matrix = offline.bot.matrix
    working = matrix.publish

    async def down(*args: object, **kwargs: object) -> str:
        raise MatrixError("homeserver gone")

    monkeypatch.setattr(matrix, "publish", down)
    reply = await say(offline, MODROOM, "@mod0:test", "!freigeben 1")
    assert "nicht veröffentlichen" in reply, reply
    assert "für alle sichtbar" not in reply  # nobody told Anna it is visible
    moderation = offline.bot.moderation
    item = await moderation.items.get("v0", 1)
    assert item is not None and item.state == states.PUBLISHING and item.published_event is None
    assert "Rasenmäher" not in await say(offline, MARKET, "@bert:test", "!angebote")
    assert "freigegeben, wird veröffentlicht" in await say(offline, MARKET, anna, "!meine")
    assert await moderation.resume_publishing() == 0  # still down: stays publishing

    # the homeserver is back: the retry (at start and every few minutes) posts it
    monkeypatch.setattr(matrix, "publish", working)
    offline.sent.clear()
    assert await moderation.resume_publishing() == 1
    item = await moderation.items.get("v0", 1)
    assert item is not None and item.state == states.PUBLISHED and item.published_event
    assert item.published_at is not None
    told = [r for r in offline.replies() if "für alle sichtbar" in r]
    assert len(told) == 1 and "Rasenmäher" in told[0], offline.replies()
    assert sum("Rasenmäher" in r for r in offline.replies()) == 2  # the post and the news
    assert await moderation.resume_publishing() == 0
    assert "Rasenmäher" in await say(offline, MARKET, "@bert:test", "!angebote")


async def test_approving_again_retries_a_publish_at_once(
    offline: OfflineBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "wartet" in await say(offline, MARKET, "@anna:test", "!biete Leiter")
    matrix = offline.bot.matrix
    working = matrix.publish

    async def down(*args: object, **kwargs: object) -> str:
        raise MatrixError("homeserver gone")

    monkeypatch.setattr(matrix, "publish", down)
    assert "nicht veröffentlichen" in await say(offline, MODROOM, "@mod0:test", "!freigeben 1")
    monkeypatch.setattr(matrix, "publish", working)
    assert "ist freigegeben." in await say(offline, MODROOM, "@mod0:test", "!freigeben 1")
    item = await offline.bot.moderation.items.get("v0", 1)
    assert item is not None and item.state == states.PUBLISHED
    moderation_plugin = offline.bot.plugin("moderation")
    assert moderation_plugin is not None
    assert {"moderation:publishing", "moderation:publishing-resume"} <= (
        moderation_plugin.scheduler._ids
    )


async def test_items_left_published_without_a_message_are_retried_after_the_upgrade(
    offline: OfflineBot,
) -> None:
    from dorfbot.items import MIGRATIONS

    items = offline.bot.moderation.items
    stuck, _ = await items.create(
        village="v0",
        plugin="marketplace",
        kind="offer",
        state="published",
        author="@anna:test",
        title="Schubkarre",
    )
    await items.update(stuck, decided_by="@mod0:test")
    imported, _ = await items.create(
        village="v0",
        plugin="calendar",
        kind="event",
        state="published",
        author="@org0:test",
        title="Abfuhr",
    )
    await MIGRATIONS[3](offline.bot.db)  # items migration 4, as an older database runs it
    assert (await items.get_by_id(stuck.id)).state == states.PUBLISHING  # type: ignore[union-attr]
    assert (await items.get_by_id(imported.id)).state == states.PUBLISHED  # type: ignore[union-attr]
    assert await offline.bot.moderation.resume_publishing() == 1
    assert "Schubkarre" in await say(offline, MARKET, "@bert:test", "!angebote")


async def test_a_block_in_force_wins_over_an_expired_one_of_the_other_name(
    offline: OfflineBot,
) -> None:
    """Blocked, forgotten (the block kept under a pseudonym), blocked again: whichever
    row the database returns first, the one still in force decides."""
    db = offline.bot.db
    now = time.time()
    for expired, in_force in ((TROLL, pseudonym(TROLL)), (pseudonym(TROLL), TROLL)):
        await db.execute("DELETE FROM blocks")
        await db.execute(
            "INSERT INTO blocks (village, user_id, until, reason, blocked_by, created_at) "
            "VALUES ('v0', ?, ?, 'alt', '@mod0:test', ?)",
            (expired, now - 60, now - 3600),
        )
        await db.execute(
            "INSERT INTO blocks (village, user_id, until, reason, blocked_by, created_at) "
            "VALUES ('v0', ?, ?, 'neu', '@mod0:test', ?)",
            (in_force, now + 3600, now),
        )
        assert await is_blocked(offline, TROLL), (expired, in_force)
        assert await block_row(offline, expired) is None  # the expired one is gone
