"""Suite-wide fixtures: one real Synapse per test session, a fresh village per test.

Plugin authors use the same fixtures: ``world`` gives a started bot in a village
with a moderator, an organizer, a helper and residents on the real homeserver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.village import World, build_world


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """A Synapse on loopback for the whole test session, stopped at the end."""
    with Homeserver(tmp_path_factory.mktemp("synapse")) as hs:
        yield hs


@pytest.fixture
async def world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    """A village (German) with its rooms and people, and the bot running."""
    world = await build_world(homeserver, tmp_path, config_options={"commands_per_minute": 1000})
    await world.start_bot()
    yield world
    await world.close()


@pytest.fixture
async def world_unstarted(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    """Like ``world`` but the bot is not started yet."""
    world = await build_world(homeserver, tmp_path, config_options={"commands_per_minute": 1000})
    yield world
    await world.close()
