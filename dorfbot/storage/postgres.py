"""PostgreSQL through asyncpg, for a district that outgrows one SQLite file.

asyncpg (as mautrix and maubot use) gives a connection pool, binary protocol
and prepared-statement caching. Statements outside a transaction take any
pooled connection; a transaction holds one connection for its body, and this
process's transactions take turns, as they do on SQLite, so code that reads
and then writes inside a transaction behaves the same on both backends.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from dorfbot.storage.base import Database, Row, StorageError
from dorfbot.storage.sql import rows_changed, translate

PASSWORD_ENV = "DORFBOT_DATABASE_PASSWORD"


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresDatabase(Database):
    """A pool of asyncpg connections to one PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, target: Path | str, *, pool_size: int = 5) -> None:
        self.url = str(target)
        self.pool_size = pool_size
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._changes = 0
        self._tx_conn: contextvars.ContextVar[Any] = contextvars.ContextVar(
            f"dorfbot-pg-tx-{id(self)}", default=None
        )

    @property
    def name(self) -> str:
        return redact_url(self.url)

    async def open(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise StorageError(
                "database: a postgresql:// URL needs the PostgreSQL driver; install it with "
                "`pip install 'dorfbot[postgresql]'`."
            ) from None
        password = None if urlsplit(self.url).password else os.environ.get(PASSWORD_ENV)
        try:
            self._pool = await asyncpg.create_pool(
                self.url, password=password, min_size=1, max_size=self.pool_size
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(
                f"{self.name}: cannot connect to PostgreSQL ({exc}). Check that the server "
                f"runs, the URL, and the password (in the URL or {PASSWORD_ENV})."
            ) from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise StorageError("database is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        if self._tx_conn.get() is not None:
            yield self
            return
        async with self._lock, self.pool.acquire() as conn, conn.transaction():
            token = self._tx_conn.set(conn)
            try:
                yield self
            finally:
                self._tx_conn.reset(token)

    @property
    def in_transaction(self) -> bool:
        return self._tx_conn.get() is not None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        conn = self._tx_conn.get()
        if conn is not None:
            yield conn
        else:
            async with self.pool.acquire() as pooled:
                yield pooled

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.execute_rowcount(sql, params)

    async def execute_rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._connection() as conn:
            count = rows_changed(await conn.execute(translate(sql, "postgresql"), *params))
        self._changes += count
        return count

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        async with self._connection() as conn:
            await conn.executemany(translate(sql, "postgresql"), rows)
        self._changes += len(rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(translate(sql, "postgresql"), *params)
        self._count_returning(sql, 0 if row is None else 1)
        return cast("Row | None", row)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._connection() as conn:
            rows = await conn.fetch(translate(sql, "postgresql"), *params)
        self._count_returning(sql, len(rows))
        return cast("list[Row]", list(rows))

    def _count_returning(self, sql: str, count: int) -> None:
        # An INSERT/UPDATE/DELETE … RETURNING read through fetch* is a write too.
        if not sql.lstrip()[:6].upper().startswith(("SELECT", "WITH")):
            self._changes += count

    async def change_count(self) -> int:
        return self._changes

    async def tables(self) -> list[str]:
        rows = await self.fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
        return [r[0] for r in rows]

    async def backup_to(self, target: Path) -> None:
        raise StorageError(
            f"{self.name}: `dorfbot backup` of a PostgreSQL database is not built yet; "
            "use pg_dump for now."
        )
