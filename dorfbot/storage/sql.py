"""The one SQL spelling callers write, rewritten for the backend that runs.

Callers write positional parameters either as ``?`` or as ``$1, $2 …``
(PostgreSQL's spelling, which may repeat and reorder a parameter). SQLite binds
``?NNN`` by number, so ``$n`` becomes ``?n``; PostgreSQL knows only ``$n``, so
each ``?`` becomes the next ``$n``. Quoted strings, quoted identifiers and
comments are left alone. A statement mixes the two spellings at its peril: it
is refused.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

# A literal or comment (kept as it is), or a parameter (rewritten).
_TOKEN = re.compile(
    r"""
      (?P<keep>'(?:[^']|'')*'          # 'string' with '' escapes
        | "(?:[^"]|"")*"               # "identifier"
        | --[^\n]*                     # -- comment
        | /\*.*?\*/)                   # /* comment */
    | (?P<numbered>\$(?P<number>\d+))
    | (?P<question>\?(?P<qnumber>\d*))
    """,
    re.VERBOSE | re.DOTALL,
)


@functools.lru_cache(maxsize=2048)
def translate(sql: str, dialect: Dialect) -> str:
    """``sql`` with its parameters spelled the way ``dialect`` binds them."""
    styles: set[str] = set()
    count = 0

    def rewrite(match: re.Match[str]) -> str:
        nonlocal count
        if match["keep"] is not None:
            return match[0]
        if match["numbered"] is not None:
            styles.add("$")
            return f"?{match['number']}" if dialect == "sqlite" else match[0]
        styles.add("?n" if match["qnumber"] else "?")
        if dialect == "sqlite":
            return match[0]
        if match["qnumber"]:
            return f"${match['qnumber']}"
        count += 1
        return f"${count}"

    result = _TOKEN.sub(rewrite, sql)
    if "?" in styles and len(styles) > 1:
        raise ValueError(f"SQL mixes '?' with numbered parameters: {sql!r}")
    return result


def rows_changed(status: str) -> int:
    """The row count of a PostgreSQL command status (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
