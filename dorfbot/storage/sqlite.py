"""SQLite through aiosqlite: the embedded default, one file beside the bot."""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from dorfbot.storage.base import Database, Row, StorageError
from dorfbot.storage.sql import translate

T = TypeVar("T")


class SQLiteDatabase(Database):
    """A single aiosqlite connection; statements and transactions take turns (a lock)."""

    dialect = "sqlite"

    def __init__(self, target: Path | str) -> None:
        self.path: Path | str = Path(target) if str(target) != ":memory:" else ":memory:"
        self._conn: aiosqlite.Connection | None = None
        self._claim: int | None = None  # the descriptor holding the process lock
        self._lock = asyncio.Lock()
        self._tx_owner: contextvars.ContextVar[Database | None] = contextvars.ContextVar(
            f"dorfbot-tx-{id(self)}", default=None
        )

    @property
    def name(self) -> str:
        return str(self.path)

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
        if self._claim is not None:
            os.close(self._claim)  # the kernel drops the lock with the descriptor
            self._claim = None

    async def claim(self) -> None:
        # Two bots on one SQLite file would both answer every command. An
        # exclusive flock on a file beside the database keeps the second one
        # out; the kernel releases it when the holder exits, however it exits.
        if not isinstance(self.path, Path) or self._claim is not None:
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"{self.path}: another dorfbot process (pid {holder}) is running on this "
                "database. One SQLite database serves one process: stop the other one, "
                "or give this one its own `database:`."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._claim = fd

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        # "Inside" follows the async context (a ContextVar), and a BEGIN that
        # fails leaves no trace behind.
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

    @property
    def in_transaction(self) -> bool:
        return self._tx_owner.get() is self

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[aiosqlite.Connection]:
        # One connection: a statement from outside a transaction must never land
        # inside another task's open transaction, so it takes the lock too.
        if self._tx_owner.get() is self:
            yield self.conn
        else:
            async with self._lock:
                yield self.conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on aiosqlite's worker thread with the sqlite3 connection.

        One thread hop per call: aiosqlite's cursor API costs a hop for the
        statement, one per fetch and one to close the cursor, and each hop is a
        round trip through the event loop, which under load is what a command
        waits for. Callers hold the lock (``_statement``).
        """
        conn = self.conn
        result: T = await conn._execute(lambda: fn(conn._conn))  # type: ignore[no-untyped-call]
        return result

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        query = translate(sql, "sqlite")
        async with self._statement():
            await self._run(lambda conn: conn.execute(query, params).close())

    async def execute_rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        query = translate(sql, "sqlite")

        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(query, params)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        async with self._statement():
            return await self._run(run)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._statement() as conn:
            await conn.executemany(translate(sql, "sqlite"), rows)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        # all in one thread hop: BEGIN, the statements, COMMIT (or inside the open one)
        if not statements:
            return
        inside = self._tx_owner.get() is self
        queries = [(translate(sql, "sqlite"), params) for sql, params in statements]

        def run(conn: sqlite3.Connection) -> None:
            if not inside:
                conn.execute("BEGIN IMMEDIATE")
            try:
                for query, params in queries:
                    conn.execute(query, params).close()
            except BaseException:
                if not inside:
                    conn.execute("ROLLBACK")
                raise
            if not inside:
                conn.execute("COMMIT")

        async with self._statement():
            await self._run(run)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        query = translate(sql, "sqlite")

        def run(conn: sqlite3.Connection) -> Row | None:
            cursor = conn.execute(query, params)
            try:
                return cast("Row | None", cursor.fetchone())
            finally:
                cursor.close()

        async with self._statement():
            return await self._run(run)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        query = translate(sql, "sqlite")

        def run(conn: sqlite3.Connection) -> list[Row]:
            cursor = conn.execute(query, params)
            try:
                return cast("list[Row]", cursor.fetchall())
            finally:
                cursor.close()

        async with self._statement():
            return await self._run(run)

    async def change_count(self) -> int:
        # SQLite's total_changes(): rows this connection changed since it opened.
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
