"""Suite-wide fixtures: one real Synapse per test session, a fresh village per test.

Plugin authors use the same fixtures: ``world`` gives a started bot in a village
with a moderator, an organizer, a helper and residents on the real homeserver.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dorfbot.storage import Database
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.postgres import Postgres
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the whole test session (per xdist worker), stopped at the end.

    Its data lives outside pytest's temporary tree: run as root, the server runs
    as a system user that must traverse the parents of its data directory, and
    every pytest session start resets ``/tmp/pytest-of-root`` to mode 0700.
    """
    workdir = Path(tempfile.mkdtemp(prefix="dorfbot-postgres-"))
    try:
        with Postgres(workdir) as pg:
            yield pg
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's database lives: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "dorfbot.db"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.create_database(f"t_{uuid.uuid4().hex}")


@pytest.fixture
async def database(database_target: str | Path) -> AsyncIterator[Database]:
    """An open, empty database on each backend in turn."""
    db = Database(database_target)
    await db.open()
    yield db
    await db.close()
