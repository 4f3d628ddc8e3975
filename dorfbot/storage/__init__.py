"""One async database layer: SQLite (embedded default) or PostgreSQL, and migrations.

``Database(config.database)`` opens the backend the setting names: a file
path gives SQLite through aiosqlite, a ``postgresql://`` URL gives PostgreSQL
through asyncpg. Only this package knows which one runs: callers write one SQL
spelling (``?`` or ``$1`` parameters, ``RETURNING``, ``ON CONFLICT … DO
NOTHING``) and migrations branch on :attr:`Database.dialect` where the two must
differ.

Migrations are small async functions registered per scope (``core`` or a
plugin name), numbered from 1. Each runs in its own transaction together with
the version bump, so a failing migration leaves the database as it was; a
database whose version is newer than the code is refused.
"""

from dorfbot.storage.base import (
    Database,
    Migration,
    Row,
    StorageError,
    is_postgres_url,
    sql_script,
)
from dorfbot.storage.sql import Dialect

__all__ = [
    "Database",
    "Dialect",
    "Migration",
    "Row",
    "StorageError",
    "is_postgres_url",
    "sql_script",
]
