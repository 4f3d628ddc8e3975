"""Commands: the one decorator, the argument parser and the lookup table.

A plugin declares a command with :func:`command`; the decorator records names,
aliases, minimum role, room scope and examples into one :class:`CommandSpec`.
Help texts live in the plugin's catalogs under ``help.<name>`` (one line) and
``usage.<name>`` (details). Dispatch is a dictionary lookup.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from dorfbot.roles import Role
from dorfbot.text import closest, fold

if TYPE_CHECKING:
    from dorfbot.context import CommandContext

Handler = Callable[["CommandContext"], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Awaitable[None]])

MAX_ARGUMENT_LENGTH = 4000


class Scope(Enum):
    """Where a command may be used."""

    ANYWHERE = "anywhere"
    """Any village room or a direct message."""
    MODERATION = "moderation"
    """Only in the village's moderation room."""


@dataclass(frozen=True)
class CommandSpec:
    """Everything the core knows about one command, filled by :func:`command`."""

    name: str
    aliases: tuple[str, ...] = ()
    role: Role = Role.RESIDENT
    scope: Scope = Scope.ANYWHERE
    examples: tuple[str, ...] = ()
    needs_village: bool = True
    reaches_others: bool = False
    """The command puts something before other people (a post, a message, a room):
    the core refuses it to people blocked in the village."""
    handler: Handler | None = None
    plugin: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def help_key(self) -> str:
        return f"help.{self.name}"

    @property
    def usage_key(self) -> str:
        return f"usage.{self.name}"


COMMAND_ATTR = "__dorfbot_command__"


def command(
    name: str,
    *aliases: str,
    role: Role = Role.RESIDENT,
    scope: Scope = Scope.ANYWHERE,
    examples: Iterable[str] = (),
    needs_village: bool = True,
    reaches_others: bool = False,
) -> Callable[[F], F]:
    """Declare a plugin method as a command.

    ``name`` is the German name, ``aliases`` the English (and other) ones. The
    help line comes from the catalog key ``help.<name>``. ``reaches_others``
    marks commands that put something before other people (posts, events,
    announcements, contact rooms); the core refuses those to blocked people.
    """

    def decorate(func: F) -> F:
        spec = CommandSpec(
            name=normalize_name(name),
            aliases=tuple(normalize_name(a) for a in aliases),
            role=role,
            scope=scope,
            examples=tuple(examples),
            needs_village=needs_village,
            reaches_others=reaches_others,
        )
        setattr(func, COMMAND_ATTR, spec)
        return func

    return decorate


def normalize_name(name: str) -> str:
    """A command name as typed, folded: ``!Löschen`` finds ``loeschen``."""
    return fold(name.strip())


# --------------------------------------------------------------------------- arguments

OPTION_KEYS = {
    "ortsteil": "district",
    "district": "district",
    "wo": "where",
    "where": "where",
    "bis": "until",
    "until": "until",
    "dorf": "village",
    "village": "village",
}
_OPTION = re.compile(
    r"(?<!\S)(?:#(?P<tag>[^\s#\"„“]+)|(?P<key>" + "|".join(OPTION_KEYS) + r"):)",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "„": "“", "“": "”", "»": "«", "'": "'"}
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class Args:
    """A command's arguments: first line without options, options, description."""

    text: str = ""
    description: str = ""
    category: str | None = None
    district: str | None = None
    where: str | None = None
    until: str | None = None
    village: str | None = None
    raw: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return self.text.split()

    def take_word(self) -> tuple[str, Args]:
        """The first word of ``text`` and the arguments without it."""
        head, _, rest = self.text.partition(" ")
        return head, replace(self, text=rest.strip())

    def take_quoted(self) -> tuple[str | None, Args]:
        """A leading quoted value (``"Frau Meier, Tel. 1234"``) and the rest."""
        text = self.text
        if text and text[0] in _QUOTES:
            end = text.find(_QUOTES[text[0]], 1)
            if end > 0:
                return text[1:end].strip(), replace(self, text=text[end + 1 :].strip())
        return None, self


def _clean(text: str) -> str:
    # Control characters never belong in titles; tabs and NBSP become spaces.
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return text


def parse_args(raw: str) -> Args:
    """Split ``raw`` (everything after the command name) into :class:`Args`."""
    raw = _clean(raw[:MAX_ARGUMENT_LENGTH])
    first, _, description = raw.partition("\n")
    options: dict[str, str] = {}
    text_parts: list[str] = []
    pos = 0
    matches = list(_OPTION.finditer(first))
    for i, match in enumerate(matches):
        if match.start() < pos:
            continue  # inside a quoted value
        text_parts.append(first[pos : match.start()])
        next_start = next(
            (m.start() for m in matches[i + 1 :] if m.start() >= match.end()), len(first)
        )
        if match.group("tag") is not None:
            options.setdefault("category", match.group("tag").lower())
            pos = match.end()
            continue
        key = OPTION_KEYS[match.group("key").lower()]
        value_start = match.end()
        opening = first[value_start : value_start + 1]
        if opening in _QUOTES:
            close = first.find(_QUOTES[opening], value_start + 1)
            if close > 0:
                options.setdefault(key, first[value_start + 1 : close].strip())
                pos = close + 1
                continue
        options.setdefault(key, first[value_start:next_start].strip())
        pos = next_start
    text_parts.append(first[pos:])
    text = _SPACES.sub(" ", " ".join(text_parts)).strip()
    return Args(
        text=text,
        description=description.strip(),
        category=options.get("category"),
        district=options.get("district") or None,
        where=options.get("where") or None,
        until=options.get("until") or None,
        village=options.get("village") or None,
        raw=raw,
        options=options,
    )


# Only ASCII digits: ``str.isdigit`` and ``\d`` accept superscripts and other
# scripts' digits, which ``int`` then rejects or reads differently.
_ITEM_NUMBER = re.compile(
    r"\s*(?:(?:nr|no|nummer)\.?\s*)?#?([0-9]{1,9})(?=\s|$)(.*)", re.IGNORECASE | re.DOTALL
)
_COUNT = re.compile(r"[0-9]{1,9}")
# A user ID as the spec's grammar allows it, historical localparts included:
# printable ASCII without ":" before the server name, a host name or an IP
# literal after it, an optional port, 255 characters at most.
_USER_ID = re.compile(
    r"@[!-9;-~]+:(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


def parse_number(raw: str) -> tuple[int | None, str]:
    """The item number at the start of a command's arguments, and the rest.

    The one parser of numbers that name something (an item, a link, a
    scheduled announcement). Accepts ``12``, ``Nr. 12``, ``Nr.12``, ``nr12``,
    ``#12`` and ``no. 12`` in ASCII digits only; the rest (a reason, say) keeps
    its further lines.
    """
    match = _ITEM_NUMBER.match(raw)
    if match is None:
        return None, raw.strip()
    return int(match.group(1)), match.group(2).strip()


def parse_count(word: str, *, digits: int = 4) -> int | None:
    """A plain count or page number (``20``) of at most ``digits`` ASCII digits, else None."""
    if len(word) > digits or not _COUNT.fullmatch(word):
        return None
    return int(word)


def is_user_id(text: str) -> bool:
    """Whether ``text`` is exactly one Matrix user ID (``@name:server.org``)."""
    return len(text) <= 255 and _USER_ID.fullmatch(text) is not None


def split_command(body: str, prefix: str) -> tuple[str, str] | None:
    """``("biete", "Rasen #garten")`` for ``"!biete Rasen #garten"``; None if not a command."""
    stripped = body.lstrip()
    if not stripped.startswith(prefix) or len(stripped) < 2:
        return None
    head = stripped[len(prefix) :]
    match = re.match(r"([^\s]+)(.*)", head, re.DOTALL)
    if not match:
        return None
    name = normalize_name(match.group(1))
    if not re.fullmatch(r"[a-z0-9_-]{1,32}", name):
        return None
    rest = match.group(2)
    return name, rest[1:] if rest[:1] in (" ", "\t") else rest.lstrip(" \t")


def split_unprefixed(body: str) -> tuple[str, str] | None:
    """Like :func:`split_command` for a DM without the prefix: ``"Hilfe?"`` is ``hilfe``.

    Trailing punctuation of the first word is dropped; whether the word names a
    command is the caller's question.
    """
    match = re.match(r"\s*([^\s]+)(.*)", body, re.DOTALL)
    if not match:
        return None
    word = match.group(1).rstrip(".,;:!?")
    if not word:
        return None
    return split_command(word + match.group(2), "")


# ----------------------------------------------------------------------------- routing


class CommandTable:
    """Name and alias lookup over all registered command specs."""

    def __init__(self) -> None:
        self._by_name: dict[str, CommandSpec] = {}
        self._specs: list[CommandSpec] = []

    def add(self, spec: CommandSpec) -> None:
        for name in spec.names:
            if name in self._by_name:
                other = self._by_name[name]
                raise ValueError(
                    f"command name {name!r} of plugin {spec.plugin!r} is taken by {other.plugin!r}"
                )
        for name in spec.names:
            self._by_name[name] = spec
        self._specs.append(spec)

    def remove_plugin(self, plugin: str) -> None:
        self._specs = [s for s in self._specs if s.plugin != plugin]
        self._by_name = {n: s for n, s in self._by_name.items() if s.plugin != plugin}

    def get(self, name: str) -> CommandSpec | None:
        return self._by_name.get(normalize_name(name))

    def suggest(self, name: str, allowed: Callable[[CommandSpec], bool]) -> str | None:
        return closest(name, [n for n, s in self._by_name.items() if allowed(s)])

    def __iter__(self) -> Any:
        return iter(list(self._specs))


class RateLimiter:
    """A sliding window per key: at most ``limit`` hits per ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._warned: dict[str, float] = {}

    def hit(self, key: str, now: float | None = None) -> bool:
        """Record a hit; False when the key is over its limit."""
        now = time.monotonic() if now is None else now
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def should_warn(self, key: str, now: float | None = None) -> bool:
        """True once per window for a key that is over its limit."""
        now = time.monotonic() if now is None else now
        if now - self._warned.get(key, -1e9) < self.window:
            return False
        self._warned[key] = now
        return True
