"""Faults on a real homeserver: SIGKILL in a burst, homeserver outage, rate limits.

Each test counts replies per command event: 0 lost, 0 duplicated. The figures
are printed (run with ``-s``) for the closing notes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.process import BotProcess
from dorfbot.testing.resident import Resident
from dorfbot.testing.village import World, build_world

pytestmark = pytest.mark.slow


async def wait_all_answered(observer: Resident, sent: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missing = [e for e in sent if not observer.replies_to(e)]
        if not missing:
            return
        await asyncio.sleep(0.5)
    missing = [e for e in sent if not observer.replies_to(e)]
    raise AssertionError(f"{len(missing)} of {len(sent)} commands unanswered")


def count(observer: Resident, sent: list[str]) -> tuple[int, int]:
    """(lost, duplicated) over the sent command events."""
    per = [len(observer.replies_to(e)) for e in sent]
    return sum(1 for n in per if n == 0), sum(n - 1 for n in per if n > 1)


@pytest.fixture
async def burst_world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await build_world(
        homeserver, tmp_path, residents=20, config_options={"commands_per_minute": 100_000}
    )
    yield world
    await world.close()


async def test_sigkill_in_a_burst_loses_and_repeats_nothing(
    burst_world: World, tmp_path: Path
) -> None:
    world = burst_world
    rooms = [world.room("chat"), world.room("marketplace")]
    observer = world.resident
    bot = BotProcess(world, tmp_path)
    bot.start()
    try:
        for _ in range(30):  # until the new process answers (it ignores older messages)
            try:
                await observer.command(rooms[0], "!ping", timeout=2)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the bot process never answered")
        people = world.village.residents
        sent: list[str] = []

        async def resident_sends(i: int, person: Resident) -> None:
            for n in range(25):
                sent.append(await person.send(rooms[n % 2], f"!ping {i}-{n}"))

        senders = asyncio.gather(*(resident_sends(i, p) for i, p in enumerate(people)))
        while len(sent) < 150:
            await asyncio.sleep(0.05)
        bot.kill()
        killed_at = len(sent)
        await senders
        assert len(sent) == 500
        bot.start()
        await wait_all_answered(observer, sent, timeout=180)
        await asyncio.sleep(3)
        lost, duplicated = count(observer, sent)
        print(
            f"\nSIGKILL burst: sent 500 (kill after {killed_at}), "
            f"answered {500 - lost}, lost {lost}, duplicated {duplicated}"
        )
        assert (lost, duplicated) == (0, 0)
    finally:
        bot.stop()


@pytest.fixture
def own_homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    with Homeserver(tmp_path_factory.mktemp("outage-hs")) as hs:
        yield hs


async def test_homeserver_outage_is_survived_without_busy_loop(
    own_homeserver: Homeserver, tmp_path: Path
) -> None:
    hs = own_homeserver
    world = await build_world(
        hs, tmp_path, residents=3, config_options={"commands_per_minute": 100_000}
    )
    try:
        await world.start_bot()
        room = world.room("chat")
        observer = world.resident
        people = world.village.residents
        sent = [await people[i % 3].send(room, f"!ping before {i}") for i in range(10)]
        await wait_all_answered(observer, sent, 30)

        cpu_before = time.process_time()
        hs.stop()
        during = [
            asyncio.create_task(people[i % 3].send(room, f"!ping during {i}")) for i in range(10)
        ]
        await asyncio.sleep(30)
        cpu_outage = time.process_time() - cpu_before
        hs.start()
        sent += [await task for task in during]
        sent += [await people[i % 3].send(room, f"!ping after {i}") for i in range(10)]
        await wait_all_answered(observer, sent, 120)
        await asyncio.sleep(3)
        lost, duplicated = count(observer, sent)
        print(
            f"\noutage 30 s: sent {len(sent)}, lost {lost}, duplicated {duplicated}, "
            f"CPU during outage {cpu_outage:.2f} s"
        )
        assert (lost, duplicated) == (0, 0)
        assert cpu_outage < 6, "the bot (or the residents) spun during the outage"
    finally:
        await world.close()
        if not hs.running:
            hs.start()


async def test_rate_limited_burst_is_answered_completely(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # Synapse's own limiter with a 10-message burst; the rate is raised from the
    # default 0.2/s to 4/s only to keep the test short: the bot hits 429 all the same.
    with Homeserver(tmp_path_factory.mktemp("ratelimit-hs"), message_rate=(4.0, 10)) as hs:
        world = await build_world(
            hs, tmp_path, residents=10, config_options={"commands_per_minute": 100_000}
        )
        try:
            await world.start_bot()
            room = world.room("chat")
            people = world.village.residents
            sent = list(
                await asyncio.gather(*(people[i % 10].send(room, f"!ping {i}") for i in range(200)))
            )
            started = time.monotonic()
            await wait_all_answered(world.resident, sent, 300)
            took = time.monotonic() - started
            await asyncio.sleep(2)
            lost, duplicated = count(world.resident, sent)
            print(
                f"\nrate limits: 200 commands answered in {took:.0f} s, "
                f"lost {lost}, duplicated {duplicated}"
            )
            assert (lost, duplicated) == (0, 0)
        finally:
            await world.close()
