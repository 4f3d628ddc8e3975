"""The database interface the core and the plugins see, whatever backend runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from dorfbot.storage.sql import Dialect

log = logging.getLogger("dorfbot.storage")

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Row(Protocol):
    """A result row: by position (``row[0]``) or by column name (``row["title"]``)."""

    def __getitem__(self, key: Any, /) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def keys(self) -> Any:
        raise NotImplementedError


Migration = Callable[["Database"], Awaitable[None]]


class StorageError(Exception):
    """A database problem an operator must fix; the message says how."""


def is_postgres_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


class Database:
    """One database of an installation: SQLite (a file path) or PostgreSQL (a URL).

    ``Database(target)`` returns the backend the target names, as
    ``pathlib.Path`` returns the flavour of the running system; nothing outside
    this package needs to know which one it got. SQL is written once: ``?`` or
    ``$1`` parameters, ``RETURNING``, ``ON CONFLICT … DO NOTHING``; where a
    migration must differ, it branches on :attr:`dialect`.
    """

    dialect: ClassVar[Dialect]

    def __new__(cls, target: Path | str) -> Database:
        if cls is Database:
            if is_postgres_url(target):
                from dorfbot.storage.postgres import PostgresDatabase

                return super().__new__(PostgresDatabase)
            from dorfbot.storage.sqlite import SQLiteDatabase

            return super().__new__(SQLiteDatabase)
        return super().__new__(cls)

    @property
    def name(self) -> str:
        """How messages name this database (a path, or a URL without its password)."""
        raise NotImplementedError

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def claim(self) -> None:
        """Make this process the only bot on the database, until :meth:`close`.

        A bot calls it once after :meth:`open`; tools that only read or copy
        (``dorfbot backup``) do not. A backend that cannot be shared refuses a
        second claimant with a :class:`StorageError` naming the holder.
        """

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """``async with db.transaction():`` — all statements inside commit together.

        Nesting joins the outer transaction. "Inside" follows the async context,
        so helpers called from the body take part. Transactions of one process
        run one at a time, as on SQLite, so a read-then-write inside one sees no
        other writer of this process between the two.
        """
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        """Whether the calling task is inside :meth:`transaction` (its writes may still
        be rolled back, so nothing read there should be kept as committed)."""
        raise NotImplementedError

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement. For a new row's id, use ``fetchval("INSERT … RETURNING id")``."""
        raise NotImplementedError

    async def execute_rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Several statements in one transaction (joining an open one).

        A backend may run them in one round trip (SQLite: one thread hop); the
        sync loop marks each event handled with its undelivered sends this way.
        """
        if not statements:
            return
        async with self.transaction():
            for sql, params in statements:
                await self.execute(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def change_count(self) -> int:
        """Rows this handle changed since it opened.

        It only grows, with every write, so an unchanged count means unchanged
        data: caches of derived views (the public pages) compare it.
        """
        raise NotImplementedError

    async def tables(self) -> list[str]:
        """The names of the installation's tables."""
        raise NotImplementedError

    async def backup_to(self, target: Path) -> None:
        """A consistent copy while the bot runs."""
        raise NotImplementedError

    async def migrate(self, scope: str, migrations: Sequence[Migration]) -> None:
        """Apply the missing numbered migrations of one scope, each in its own transaction.

        A failing migration leaves the database as it was; a database whose
        version is newer than the code is refused untouched.
        """
        await self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (scope TEXT PRIMARY KEY, version INTEGER)"
        )
        current = (
            await self.fetchval("SELECT version FROM schema_version WHERE scope = $1", (scope,))
            or 0
        )
        if current > len(migrations):
            raise StorageError(
                f"{self.name}: the database was written by a newer dorfbot ({scope} schema "
                f"version {current}, this version knows {len(migrations)}). Update dorfbot "
                "or restore a backup; the database was left untouched."
            )
        for number, migration in enumerate(migrations[current:], start=current + 1):
            log.info("migrating %s to schema version %d", scope, number)
            async with self.transaction():
                await migration(self)
                await self.execute(
                    "INSERT INTO schema_version (scope, version) VALUES ($1, $2) "
                    "ON CONFLICT(scope) DO UPDATE SET version = excluded.version",
                    (scope, number),
                )


def sql_script(*statements: str) -> Migration:
    """A migration made of plain SQL statements."""

    async def run(db: Database) -> None:
        for statement in statements:
            await db.execute(statement)

    return run
