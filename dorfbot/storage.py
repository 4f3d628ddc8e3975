"""One async database access layer, with numbered migrations per scope.

SQLite through aiosqlite is the embedded default. Plugins receive a
:class:`Database` handle and write portable SQL with ``?`` placeholders; a
PostgreSQL backend would implement the same small interface (``execute``,
``fetchone``, ``fetchall``, ``transaction``) and translate placeholders, so no
plugin changes.

Migrations are small async functions registered per scope (``core`` or a
plugin name), numbered from 1. Each runs in its own transaction together with
the version bump, so a failing migration leaves the database as it was; a
database whose version is newer than the code is refused.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

Row = sqlite3.Row
Migration = Callable[["Database"], Awaitable[None]]


class StorageError(Exception):
    """A database problem an operator must fix; the message says how."""


class Database:
    """A single aiosqlite connection; transactions are serialised by a lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._tx_owner: contextvars.ContextVar[Database | None] = contextvars.ContextVar(
            f"dorfbot-tx-{id(self)}", default=None
        )

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn

    async def open(self) -> None:
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                _check_sqlite_header(self.path)
        try:
            self._conn = await aiosqlite.connect(str(self.path), isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA foreign_keys=ON")
            await self._conn.execute("PRAGMA busy_timeout=5000")
            await self._conn.execute("PRAGMA synchronous=NORMAL")
            await self._conn.execute("SELECT count(*) FROM sqlite_master")
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StorageError(
                f"{self.path}: not a usable dorfbot database ({exc}). The file was left "
                "untouched; restore it from a backup (`dorfbot backup`) or move it away "
                "to start with an empty one."
            ) from None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """``async with db.transaction():`` — all statements inside commit together.

        Nesting joins the outer transaction. "Inside" follows the async context
        (a ContextVar), so helpers called from the body take part, and a BEGIN
        that fails leaves no trace behind.
        """
        if self._tx_owner.get() is self:
            yield self
            return
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            token = self._tx_owner.set(self)
            try:
                yield self
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")
            finally:
                self._tx_owner.reset(token)

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[aiosqlite.Connection]:
        # One connection: a statement from outside a transaction must never land
        # inside another task's open transaction, so it takes the lock too.
        if self._tx_owner.get() is self:
            yield self.conn
        else:
            async with self._lock:
                yield self.conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the last inserted row id (or 0)."""
        async with self._statement() as conn:
            cursor = await conn.execute(sql, params)
            rowid = cursor.lastrowid or 0
            await cursor.close()
            return rowid

    async def execute_rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        async with self._statement() as conn:
            cursor = await conn.execute(sql, params)
            count = cursor.rowcount
            await cursor.close()
            return count

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._statement() as conn:
            await conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._statement() as conn, conn.execute(sql, params) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._statement() as conn, conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def change_count(self) -> int:
        """Rows this connection changed since it opened (SQLite's ``total_changes()``).

        It only grows, with every write, so an unchanged count means unchanged
        data: caches of derived views (the public pages) compare it.
        """
        return int(await self.fetchval("SELECT total_changes()") or 0)

    async def tables(self) -> list[str]:
        rows = await self.fetchall(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
        return [r[0] for r in rows]

    async def backup_to(self, target: Path) -> None:
        """Consistent online copy through SQLite's backup API."""
        target.parent.mkdir(parents=True, exist_ok=True)
        async with self._lock, aiosqlite.connect(str(target)) as dest:
            await self.conn.backup(dest)

    async def migrate(self, scope: str, migrations: Sequence[Migration]) -> None:
        """Apply the missing numbered migrations of one scope, each in its own transaction."""
        await self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (scope TEXT PRIMARY KEY, version INTEGER)"
        )
        current = (
            await self.fetchval("SELECT version FROM schema_version WHERE scope = ?", (scope,)) or 0
        )
        if current > len(migrations):
            raise StorageError(
                f"{self.path}: the database was written by a newer dorfbot ({scope} schema "
                f"version {current}, this version knows {len(migrations)}). Update dorfbot "
                "or restore a backup; the file was left untouched."
            )
        for number, migration in enumerate(migrations[current:], start=current + 1):
            log.info("migrating %s to schema version %d", scope, number)
            async with self.transaction():
                await migration(self)
                await self.execute(
                    "INSERT INTO schema_version (scope, version) VALUES (?, ?) "
                    "ON CONFLICT(scope) DO UPDATE SET version = excluded.version",
                    (scope, number),
                )


def _check_sqlite_header(path: Path) -> None:
    if path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        raise StorageError(
            f"{path}: not an SQLite database (corrupt or a different file). It was left "
            "untouched; restore it from a backup or move it away to start afresh."
        )


def sql_script(*statements: str) -> Migration:
    """A migration made of plain SQL statements."""

    async def run(db: Database) -> None:
        for statement in statements:
            await db.execute(statement)

    return run
