"""Pipelined sending on a real homeserver (issue 16): replies in flight, order, exactly once.

The bot handles commands one at a time but keeps up to ``send_window``
replies in flight; one person's answers still arrive in the order they asked,
and a SIGKILL with replies in flight loses and doubles nothing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.process import BotProcess
from dorfbot.testing.resident import Resident, reply_target
from dorfbot.testing.village import World, build_world


async def answered(observer: Resident, sent: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while [e for e in sent if not observer.replies_to(e)]:
        if time.monotonic() > deadline:
            missing = [e for e in sent if not observer.replies_to(e)]
            raise AssertionError(f"{len(missing)} of {len(sent)} commands unanswered")
        await asyncio.sleep(0.2)


async def no_late_double(observer: Resident, room: str, sent: list[str]) -> None:
    asked = set(sent)

    def doubled(event: dict[str, object]) -> bool:
        target = reply_target(event)
        return target in asked and len(observer.replies_to(str(target))) > 1

    await observer.ensure_no_event(room, doubled, duration=2.0)


def lost_and_doubled(observer: Resident, sent: list[str]) -> tuple[int, int]:
    per = [len(observer.replies_to(e)) for e in sent]
    return sum(1 for n in per if n == 0), sum(n - 1 for n in per if n > 1)


@pytest.fixture
async def burst_world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await build_world(
        homeserver, tmp_path, residents=6, config_options={"commands_per_minute": 100_000}
    )
    yield world
    await world.close()


async def test_a_burst_drains_with_replies_in_flight_in_each_persons_order(
    burst_world: World,
) -> None:
    world = burst_world
    bot = await world.start_bot()
    room = world.room("chat")
    people = world.village.residents
    asked: dict[str, list[str]] = {}

    async def ask(person: Resident) -> None:
        mine = asked.setdefault(person.user_id, [])
        for n in range(15):
            mine.append(await person.send(room, f"!ping {n}"))

    await asyncio.gather(*(ask(p) for p in people))
    sent = [e for mine in asked.values() for e in mine]
    observer = world.resident
    await answered(observer, sent, 90)
    await no_late_double(observer, room, sent)
    assert lost_and_doubled(observer, sent) == (0, 0)
    assert bot.matrix.window.peak_in_flight > 1, "replies were sent one after another"
    # each person's answers in the room's order are in the order they asked
    position = {
        target: i
        for i, e in enumerate(observer.events(room))
        if e.get("sender") == world.bot_user_id and (target := reply_target(e))
    }
    for person, mine in asked.items():
        order = [position[e] for e in mine]
        assert order == sorted(order), f"answers to {person} out of order"


@pytest.mark.slow
async def test_sigkill_with_rate_limited_replies_in_flight_answers_each_once(
    burst_world: World, tmp_path: Path
) -> None:
    world = burst_world
    hs = world.hs
    # The bot's own account at 3 messages/s (burst 3): the homeserver answers
    # M_LIMIT_EXCEEDED, replies pile up in flight, and the kill finds some there.
    quoted = urllib.parse.quote(world.bot_user_id, safe="")
    hs.admin_api(
        "POST",
        f"/_synapse/admin/v1/users/{quoted}/override_ratelimit",
        {"messages_per_second": 3, "burst_count": 3},
    )
    room = world.room("chat")
    observer = world.resident
    bot = BotProcess(world, tmp_path)
    bot.start()
    try:
        for _ in range(40):  # until the new process answers (it ignores older messages)
            try:
                await observer.command(room, "!ping", timeout=2)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the bot process never answered")
        people = world.village.residents
        sent = list(
            await asyncio.gather(
                *(people[i % len(people)].send(room, f"!ping {i}") for i in range(48))
            )
        )
        deadline = time.monotonic() + 60
        while bot.in_flight() < 3:
            assert time.monotonic() < deadline, "no replies ever in flight"
            await asyncio.sleep(0.05)
        bot.kill()
        left = bot.in_flight()
        assert left > 0
        bot.start()
        await answered(observer, sent, 120)
        await no_late_double(observer, room, sent)
        lost, doubled = lost_and_doubled(observer, sent)
        log = bot.log.read_text(errors="replace")
        print(f"\nSIGKILL with {left} replies in flight: lost {lost}, duplicated {doubled}")
        assert (lost, doubled) == (0, 0)
        assert "resending" in log and "messages left in flight" in log
        assert "M_LIMIT_EXCEEDED): sends in flight 16 -> 8" in log  # the window shrank
    finally:
        bot.stop()
        hs.exempt_from_rate_limits(world.bot_user_id)


def _check_config_online(world: World, workdir: Path, admin_token: str | None) -> str:
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(world.raw_config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DORFBOT_")}
    if admin_token:
        env["DORFBOT_ADMIN_TOKEN"] = admin_token
    done = subprocess.run(
        [sys.executable, "-m", "dorfbot", "check-config", "--online", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_check_config_online_finds_the_rate_limit_and_lifts_it_with_an_admin_token(
    world_unstarted: World, tmp_path: Path
) -> None:
    world = world_unstarted
    hs = world.hs
    path = f"/_synapse/admin/v1/users/{urllib.parse.quote(world.bot_user_id, safe='')}"
    # near Synapse's default (0.2/s, burst 10) for the bot (the suite's homeserver is relaxed)
    hs.admin_api(
        "POST", f"{path}/override_ratelimit", {"messages_per_second": 1, "burst_count": 10}
    )
    found = _check_config_online(world, tmp_path, None)
    assert "M_LIMIT_EXCEEDED" in found and "override_ratelimit" in found, found
    assert "DORFBOT_ADMIN_TOKEN" in found

    admin = await Resident.create(hs, admin=True)
    try:
        lifted = _check_config_online(world, tmp_path, admin.access_token)
    finally:
        await admin.close()
    assert "lifted now" in lifted, lifted
    assert hs.admin_api("GET", f"{path}/override_ratelimit") == {
        "messages_per_second": 0,
        "burst_count": 0,
    }
    again = _check_config_online(world, tmp_path, None)
    assert "no limit in the way" in again, again
