"""Storage faults: corrupt and newer databases refused untouched; migrations all or nothing."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from dorfbot.storage import Database, StorageError, sql_script


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_corrupt_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "dorfbot.db"
    path.write_bytes(b"this is not a database\x00" * 100)
    before = digest(path)
    db = Database(path)
    with pytest.raises(StorageError, match="not an SQLite database"):
        await db.open()
    assert digest(path) == before


async def test_damaged_sqlite_pages_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dorfbot.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # wreck the schema page, keep the header
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(StorageError, match="not a usable dorfbot database"):
        await Database(path).open()
    assert digest(path) == before


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dorfbot.db"
    db = Database(path)
    await db.open()
    await db.migrate("core", [sql_script("CREATE TABLE a (x)"), sql_script("CREATE TABLE b (x)")])
    await db.close()
    before = digest(path)
    db = Database(path)
    await db.open()
    with pytest.raises(StorageError, match="newer dorfbot"):
        await db.migrate("core", [sql_script("CREATE TABLE a (x)")])
    await db.close()
    assert digest(path) == before


async def test_failing_migration_rolls_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "dorfbot.db")
    await db.open()

    async def half_then_fail(db: Database) -> None:
        await db.execute("CREATE TABLE half (x)")
        await db.execute("INSERT INTO half VALUES (1)")
        raise RuntimeError("boom in the middle")

    good = sql_script("CREATE TABLE first (x)")
    with pytest.raises(RuntimeError, match="boom"):
        await db.migrate("plugin", [good, half_then_fail])
    assert "first" in await db.tables()
    assert "half" not in await db.tables()
    assert await db.fetchval("SELECT version FROM schema_version WHERE scope='plugin'") == 1
    # fixed code migrates on
    await db.migrate("plugin", [good, sql_script("CREATE TABLE half (x)")])
    assert await db.fetchval("SELECT version FROM schema_version WHERE scope='plugin'") == 2
    await db.close()


async def test_transactions_do_not_interleave(tmp_path: Path) -> None:
    import asyncio

    db = Database(tmp_path / "dorfbot.db")
    await db.open()
    await db.execute("CREATE TABLE c (n INTEGER)")
    await db.execute("INSERT INTO c VALUES (0)")

    async def bump() -> None:
        async with db.transaction():
            n = await db.fetchval("SELECT n FROM c")
            await asyncio.sleep(0)
            await db.execute("UPDATE c SET n = ?", (n + 1,))

    await asyncio.gather(*(bump() for _ in range(50)))
    assert await db.fetchval("SELECT n FROM c") == 50
    await db.close()


async def test_a_failed_begin_leaves_no_phantom_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "dorfbot.db")
    await db.open()
    await db.execute("CREATE TABLE t (x)")
    real_execute = db.conn.execute
    failures = iter([True])

    def execute(sql: str, *args: object):  # type: ignore[no-untyped-def]
        if sql == "BEGIN IMMEDIATE" and next(failures, False):
            raise sqlite3.OperationalError("database is locked")
        return real_execute(sql, *args)

    db.conn.execute = execute  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        async with db.transaction():
            pass
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("roll me back")
    assert await db.fetchval("SELECT count(*) FROM t") == 0
    await db.close()


async def test_one_bot_per_sqlite_database(tmp_path: Path) -> None:
    first, second = Database(tmp_path / "dorfbot.db"), Database(tmp_path / "dorfbot.db")
    await first.open()
    await first.claim()
    await second.open()  # reading (a backup) is fine
    with pytest.raises(StorageError, match=rf"another dorfbot process \(pid {os.getpid()}\)"):
        await second.claim()
    await first.close()  # the lock goes with its holder
    await second.claim()
    await second.close()
