"""The test harness itself: a real Synapse on loopback and real nio residents."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dorfbot.testing.homeserver import Homeserver, HomeserverError
from dorfbot.testing.resident import (
    EventPredicate,
    Resident,
    ResidentError,
    body_of,
    reply_target,
)


@pytest.fixture(scope="module")
def harness_hs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """One homeserver for this module (the suite-wide one lives in conftest)."""
    with Homeserver(tmp_path_factory.mktemp("harness-hs")) as hs:
        yield hs


@pytest.fixture
async def alice(harness_hs: Homeserver) -> AsyncIterator[Resident]:
    resident = await Resident.create(harness_hs)
    yield resident
    await resident.close()


@pytest.fixture
async def bob(harness_hs: Homeserver) -> AsyncIterator[Resident]:
    resident = await Resident.create(harness_hs)
    yield resident
    await resident.close()


def _body_is(text: str) -> EventPredicate:
    return lambda e: body_of(e) == text


def test_homeserver_answers(harness_hs: Homeserver) -> None:
    assert harness_hs.running
    assert harness_hs.url == f"http://127.0.0.1:{harness_hs.port}"
    with urllib.request.urlopen(harness_hs.url + "/_matrix/client/versions", timeout=5) as resp:
        versions = json.loads(resp.read())
    assert "versions" in versions
    config = (harness_hs.workdir / "homeserver.yaml").read_text()
    assert "127.0.0.1" in config and "::1" not in config


def test_register_duplicate_user_fails(harness_hs: Homeserver) -> None:
    assert harness_hs.register("carol-dup", "pw") == "@carol-dup:localhost"
    with pytest.raises(HomeserverError, match="M_USER_IN_USE"):
        harness_hs.register("carol-dup", "pw")


async def test_invite_auto_join_and_message(alice: Resident, bob: Resident) -> None:
    room_id = await alice.create_room(name="Dorfplatz", invite=[bob.user_id])
    await bob.wait_joined(room_id)
    assert room_id in bob.joined_rooms
    assert room_id not in bob.invited_rooms

    event_id = await alice.send(room_id, "Moin!")
    seen = await bob.wait_for(room_id, _body_is("Moin!"))
    assert seen["event_id"] == event_id
    assert seen["sender"] == alice.user_id
    assert seen["room_id"] == room_id


async def test_command_detects_reply(alice: Resident, bob: Resident) -> None:
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.wait_joined(room_id)

    async def answer() -> str:
        question = await bob.wait_for(room_id, _body_is("!ping"))
        return await bob.reply(room_id, question["event_id"], "pong")

    responder = asyncio.create_task(answer())
    reply = await alice.command(room_id, "!ping")
    assert body_of(reply) == "pong"
    assert reply["sender"] == bob.user_id
    assert reply["event_id"] == await responder

    question_id = reply_target(reply)
    assert question_id is not None
    assert len(alice.replies_to(question_id)) == 1
    assert alice.replies_to(question_id, sender=alice.user_id) == []


async def test_invite_without_auto_join(harness_hs: Homeserver, alice: Resident) -> None:
    carol = await Resident.create(harness_hs, auto_join=False)
    try:
        room_id = await alice.create_room(invite=[carol.user_id])
        assert await carol.wait_invited() == room_id
        assert room_id not in carol.joined_rooms
        await carol.join(room_id)
        assert room_id in carol.joined_rooms and room_id not in carol.invited_rooms
        await alice.wait_for(
            room_id,
            lambda e: (
                e["type"] == "m.room.member"
                and e["state_key"] == carol.user_id
                and e["content"]["membership"] == "join"
            ),
        )
        # Nobody answers alice here: ensure_no_event passes, and fails on a match.
        sent = await alice.send(room_id, "hallo")
        await carol.ensure_no_event(room_id, lambda e: reply_target(e) == sent, duration=0.5)
        with pytest.raises(AssertionError, match="hallo"):
            await carol.ensure_no_event(room_id, _body_is("hallo"), duration=2)
    finally:
        await carol.close()


async def test_command_times_out_without_reply(alice: Resident) -> None:
    room_id = await alice.create_room()
    with pytest.raises(TimeoutError, match="!nobody-answers"):
        await alice.command(room_id, "!nobody-answers", timeout=0.5)


async def test_reaction_power_level_and_notifications(alice: Resident, bob: Resident) -> None:
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.wait_joined(room_id)

    await alice.set_power_level(room_id, bob.user_id, 50)
    await bob.wait_for(
        room_id,
        lambda e: (
            e["type"] == "m.room.power_levels"
            and e["content"].get("users", {}).get(bob.user_id) == 50
        ),
    )

    event_id = await alice.send(
        room_id, "@room Markt heute!", extra_content={"m.mentions": {"room": True}}
    )
    reaction_id = await bob.react(room_id, event_id, "👍")
    reaction = await alice.wait_for(room_id, lambda e: e["event_id"] == reaction_id)
    assert reaction["content"]["m.relates_to"]["key"] == "👍"

    notifications = await bob.get_json("/_matrix/client/v3/notifications")
    pushed = [n for n in notifications["notifications"] if n["event"]["event_id"] == event_id]
    assert pushed, notifications
    assert any(
        isinstance(a, dict) and a.get("set_tweak") == "highlight" for a in pushed[0]["actions"]
    )


async def test_encrypted_room_round_trip(alice: Resident, bob: Resident) -> None:
    room_id = await alice.create_room(invite=[bob.user_id], encrypted=True)
    await bob.wait_joined(room_id)
    event_id = await alice.send(room_id, "geheim")
    seen = await bob.wait_for(room_id, _body_is("geheim"))
    assert seen["event_id"] == event_id
    assert bob.was_encrypted(event_id)

    raw = await bob.get_json(f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}")
    assert raw["type"] == "m.room.encrypted"


@pytest.mark.slow
async def test_gap_in_sync_is_back_filled(alice: Resident, bob: Resident) -> None:
    """More than 100 events between two syncs: the resident still records all."""
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.wait_joined(room_id)
    await bob.stop()
    sent = [await alice.send(room_id, f"burst {i}") for i in range(130)]
    await bob.start()
    await bob.wait_for(room_id, lambda e: e["event_id"] == sent[-1])
    recorded = [e["event_id"] for e in bob.events(room_id)]
    assert [e for e in recorded if e in set(sent)] == sent
    assert bob.gaps_filled >= 1


async def test_errors_are_raised(alice: Resident) -> None:
    with pytest.raises(ResidentError, match="join"):
        await alice.join("!doesnotexist:localhost")


@pytest.mark.slow
async def test_restart_keeps_port_and_users(tmp_path: Path) -> None:
    hs = Homeserver(tmp_path / "hs")
    try:
        await asyncio.to_thread(hs.start)
        port = hs.port
        alice = await Resident.create(hs, "alice", "pw-alice")
        bob = await Resident.create(hs, "bob", "pw-bob")
        room_id = await alice.create_room(invite=[bob.user_id])
        await bob.wait_joined(room_id)

        await asyncio.to_thread(hs.stop)
        assert not hs.running
        hs.stop()  # idempotent
        await asyncio.sleep(1.0)  # residents keep retrying their syncs meanwhile
        await asyncio.to_thread(hs.start)
        assert hs.running and hs.port == port

        # Existing sessions recover; the accounts still exist.
        await alice.send(room_id, "wieder da")
        await bob.wait_for(room_id, _body_is("wieder da"), timeout=30)
        again = await Resident.create(hs, "alice", "pw-alice", register=False)
        assert again.user_id == alice.user_id
        assert room_id in again.joined_rooms
        for r in (alice, bob, again):
            await r.close()
    finally:
        hs.stop()


@pytest.mark.slow
async def test_strict_rate_limits_throttle_only_non_exempt_users(tmp_path: Path) -> None:
    hs = Homeserver(tmp_path / "strict", strict_rate_limits=True)
    try:
        await asyncio.to_thread(hs.start)
        resident = await Resident.create(hs)  # exempt by default on a strict server
        throttled = await Resident.create(hs, exempt_from_rate_limits=False)
        room_id = await resident.create_room(invite=[throttled.user_id])
        await throttled.wait_joined(room_id)

        async def burst(who: Resident) -> list[int]:
            statuses = []
            for i in range(15):
                path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/burst-{i}"
                try:
                    await who.request_json("PUT", path, {"msgtype": "m.text", "body": str(i)})
                    statuses.append(200)
                except ResidentError as err:
                    assert "HTTP 429" in str(err)
                    statuses.append(429)
            return statuses

        assert await burst(resident) == [200] * 15
        assert 429 in await burst(throttled)
        for r in (resident, throttled):
            await r.close()
    finally:
        hs.stop()
