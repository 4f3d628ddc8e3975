"""Direct messages without a homeserver: the invite's ``is_direct``, prefix-free words."""

from __future__ import annotations

from typing import Any

import nio
import pytest

from dorfbot.commands import split_unprefixed
from dorfbot.sync import _invite_details

BOT = "@bot:x"


def _invite(content: dict[str, Any]) -> Any:
    """A real matrix-nio invite, parsed from a raw sync response like the one Synapse sends."""
    raw = {
        "next_batch": "s1",
        "rooms": {
            "invite": {
                "!r:x": {
                    "invite_state": {
                        "events": [
                            {
                                "type": "m.room.member",
                                "state_key": BOT,
                                "sender": "@anna:x",
                                "content": content,
                            }
                        ]
                    }
                }
            }
        },
    }
    response = nio.SyncResponse.from_dict(raw)
    assert isinstance(response, nio.SyncResponse)
    return response.rooms.invite["!r:x"]


def test_is_direct_is_read_from_the_invite_although_nio_drops_it_from_source() -> None:
    info = _invite({"membership": "invite", "is_direct": True})
    assert "content" not in info.invite_state[0].source  # what matrix-nio keeps
    assert _invite_details(info, BOT) == ("@anna:x", True)


@pytest.mark.parametrize(
    "content", [{"membership": "invite"}, {"membership": "invite", "is_direct": "true"}]
)
def test_an_invite_not_marked_direct_is_not_direct(content: dict[str, Any]) -> None:
    assert _invite_details(_invite(content), BOT) == ("@anna:x", False)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hilfe", ("hilfe", "")),
        ("hilfe?", ("hilfe", "")),
        ("  angebote #garten", ("angebote", "#garten")),
        ("Biete Fahrrad", ("biete", "Fahrrad")),
        ("LÖSCHEN 3", ("loeschen", "3")),
        ("", None),
        ("?!", None),
        ("Guten Tag, wie geht's?", ("guten", "Tag, wie geht's?")),
    ],
)
def test_the_first_word_of_a_dm(body: str, expected: tuple[str, str] | None) -> None:
    assert split_unprefixed(body) == expected


# ------------------------------------------------------------- what counts as a DM


class _Matrix:
    """Just what DirectRooms reads: the bot's ID, nio's rooms, the village rooms."""

    user_id = BOT
    village_rooms: set[str] = {"!village:x"}

    def __init__(self) -> None:
        self.client = type("Client", (), {"rooms": {}})()

    def room(self, room_id: str, *members: str, invited: tuple[str, ...] = ()) -> nio.MatrixRoom:
        room = nio.MatrixRoom(room_id, BOT)
        for user in (BOT, *members):
            room.add_member(user, None, None)
        for user in invited:
            room.add_member(user, None, None, invited=True)
        self.client.rooms[room_id] = room
        return room


def test_a_room_is_a_dm_only_while_recorded_invite_only_private_and_two_people() -> None:
    from dorfbot.direct import DirectRooms

    matrix = _Matrix()
    direct = DirectRooms(matrix, None)  # type: ignore[arg-type]
    anna = "@anna:x"
    good = matrix.room("!good:x", anna)
    matrix.room("!unrecorded:x", anna)  # looks like a DM, but nobody opened it as one
    public = matrix.room("!public:x", anna)
    public.join_rule = "public"
    readable = matrix.room("!readable:x", anna)
    readable.history_visibility = "world_readable"
    matrix.room("!third:x", anna, invited=("@eve:x",))
    matrix.room("!village:x", anna)
    direct._owner = {r: anna for r in matrix.client.rooms if r != "!unrecorded:x"}
    assert [r for r in matrix.client.rooms if direct.is_dm_of(r, anna)] == ["!good:x"]
    good.add_member("@eve:x", None, None)
    assert not direct.is_dm_of("!good:x", anna)
    assert direct.owner("!good:x") is None
