"""Configuration: YAML loaded into typed objects and validated in one pass.

Every problem is collected with its key path (``villages[0].rooms.moderation:
missing``) so an operator can fix them all at once; nothing here raises a bare
traceback at a volunteer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

ROOM_KINDS = ("marketplace", "calendar", "announcements", "moderation")
MODERATION_MODES = ("pre", "post", "off")
LANGUAGES = ("de", "en")
WEB_KEYS = ("public", "marketplace", "indexable")
VILLAGE_ID = re.compile(r"^[a-z0-9-]+$")
MATRIX_USER = re.compile(r"^@[^:\s]+:\S+$")
MATRIX_ROOM = re.compile(r"^(![^\s]+|#[^:\s]+:\S+)$")  # room v12 IDs have no server part


class ConfigError(Exception):
    """Raised with every problem found, each naming its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class HttpConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    enabled: bool = True


@dataclass(frozen=True)
class RoomsConfig:
    marketplace: str | None = None
    calendar: str | None = None
    announcements: str | None = None
    moderation: str | None = None
    chat: tuple[str, ...] = ()

    def all(self) -> list[tuple[str, str]]:
        """(kind, room) pairs of every configured room, chat rooms as kind ``chat``."""
        pairs = [(kind, room) for kind in ROOM_KINDS if (room := getattr(self, kind))]
        pairs += [("chat", room) for room in self.chat]
        return pairs


@dataclass(frozen=True)
class ModerationConfig:
    posts: str = "pre"
    events: str = "pre"
    trusted_after: int = 3
    """Approved items after which a resident's posts skip the queue (0 = never)."""
    posts_per_day: int = 10
    """New posts and events per resident and 24 hours (0 = no limit)."""


@dataclass(frozen=True)
class WebConfig:
    """The village's public page ``/<id>/`` and Atom feed ``/<id>/feed.atom``."""

    public: bool = False
    """Serve the page and the feed at all (opt-in; otherwise both answer 404)."""
    marketplace: bool = False
    """Also list open offers and requests (never their authors)."""
    indexable: bool = False
    """Let search engines index the page; otherwise it carries ``noindex``."""


@dataclass(frozen=True)
class VillageConfig:
    id: str
    name: str
    timezone: str = "Europe/Berlin"
    language: str = "de"
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    moderators: tuple[str, ...] = ()
    organizers: tuple[str, ...] = ()
    helpers: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    welcome: str | None = None
    digest_time: str = "07:00"
    thematic_rooms: tuple[str, ...] = ()
    """Names of extra chat rooms ``dorfbot setup`` creates (Senioren, Eltern, ...)."""
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Config:
    homeserver: str
    user_id: str
    password: str | None
    access_token: str | None
    device_name: str
    command_prefix: str
    database: Path
    data_dir: Path
    http: HttpConfig
    admins: tuple[str, ...]
    villages: tuple[VillageConfig, ...]
    plugins: dict[str, dict[str, Any]]
    max_catchup_hours: float = 24.0
    commands_per_minute: int = 20
    send_window: int = 16
    encryption: bool = True
    trust: str = "all"
    source: Path | None = None

    def village(self, village_id: str) -> VillageConfig | None:
        return next((v for v in self.villages if v.id == village_id), None)


class _Reader:
    """Walks raw YAML and records problems with their key paths."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def text(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        default: str | None = None,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        where = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            if required:
                self.problem(where, "missing")
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.problem(where, f"must be text, not {type(value).__name__}")
            return default
        text = str(value)
        if pattern and not pattern.match(text):
            self.problem(where, f"invalid value {text!r}")
        if choices and text not in choices:
            self.problem(where, f"must be one of {', '.join(choices)}, not {text!r}")
        return text

    def text_list(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        pattern: re.Pattern[str] | None = None,
    ) -> tuple[str, ...]:
        where = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problem(where, "must be a list")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str | int) or isinstance(item, bool):
                self.problem(f"{where}[{i}]", "must be text")
                continue
            if pattern and not pattern.match(str(item)):
                self.problem(f"{where}[{i}]", f"invalid value {item!r}")
            out.append(str(item))
        return tuple(out)

    def number(
        self, data: dict[str, Any], key: str, path: str, default: float, *, minimum: float = 0
    ) -> float:
        where = f"{path}.{key}" if path else key
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(where, "must be a number")
            return default
        if value < minimum:
            self.problem(where, f"must be at least {minimum}")
        return value

    def flag(self, data: dict[str, Any], key: str, path: str, default: bool) -> bool:
        where = f"{path}.{key}" if path else key
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(where, "must be true or false")
            return default
        return value

    def mapping(self, data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        where = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping")
            return {}
        return value


def _parse_listen(reader: _Reader, text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        reader.problem("http.listen", f"must look like 127.0.0.1:8080, not {text!r}")
        return "127.0.0.1", 8080
    return host.strip("[]"), int(port)


def _read_village(
    reader: _Reader, raw: Any, index: int, require_rooms: bool = True
) -> VillageConfig | None:
    path = f"villages[{index}]"
    if not isinstance(raw, dict):
        reader.problem(path, "must be a mapping")
        return None
    vid = reader.text(raw, "id", path, required=True, pattern=VILLAGE_ID) or f"village{index}"
    name = reader.text(raw, "name", path, default=vid) or vid
    tzname = reader.text(raw, "timezone", path, default="Europe/Berlin") or "Europe/Berlin"
    try:
        ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        reader.problem(f"{path}.timezone", f"unknown time zone {tzname!r}")
        tzname = "Europe/Berlin"
    language = reader.text(raw, "language", path, default="de", choices=LANGUAGES) or "de"

    rooms_raw = reader.mapping(raw, "rooms", path)
    rpath = f"{path}.rooms"
    if "rooms" not in raw and require_rooms:
        reader.problem(rpath, "missing")
    room_values = {
        kind: reader.text(rooms_raw, kind, rpath, pattern=MATRIX_ROOM) for kind in ROOM_KINDS
    }
    if room_values["moderation"] is None and require_rooms:
        reader.problem(f"{rpath}.moderation", "missing")
    rooms = RoomsConfig(
        chat=reader.text_list(rooms_raw, "chat", rpath, pattern=MATRIX_ROOM), **room_values
    )

    mod_raw = reader.mapping(raw, "moderation", path)
    mpath = f"{path}.moderation"
    moderation = ModerationConfig(
        posts=reader.text(mod_raw, "posts", mpath, default="pre", choices=MODERATION_MODES)
        or "pre",
        events=reader.text(mod_raw, "events", mpath, default="pre", choices=MODERATION_MODES)
        or "pre",
        trusted_after=int(reader.number(mod_raw, "trusted_after", mpath, 3)),
        posts_per_day=int(reader.number(mod_raw, "posts_per_day", mpath, 10)),
    )
    digest = reader.text(raw, "digest_time", path, default="07:00") or "07:00"
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", digest):
        reader.problem(f"{path}.digest_time", f"must look like 07:00, not {digest!r}")
    web_raw = reader.mapping(raw, "web", path)
    wpath = f"{path}.web"
    for key in web_raw:
        if key not in WEB_KEYS:
            reader.problem(f"{wpath}.{key}", f"unknown key (known: {', '.join(WEB_KEYS)})")
    web = WebConfig(**{key: reader.flag(web_raw, key, wpath, False) for key in WEB_KEYS})
    return VillageConfig(
        id=vid,
        name=name,
        timezone=tzname,
        language=language,
        rooms=rooms,
        moderators=reader.text_list(raw, "moderators", path, pattern=MATRIX_USER),
        organizers=reader.text_list(raw, "organizers", path, pattern=MATRIX_USER),
        helpers=reader.text_list(raw, "helpers", path, pattern=MATRIX_USER),
        categories=tuple(c.lower() for c in reader.text_list(raw, "categories", path)),
        districts=reader.text_list(raw, "districts", path),
        moderation=moderation,
        welcome=reader.text(raw, "welcome", path),
        thematic_rooms=reader.text_list(raw, "thematic_rooms", path),
        digest_time=digest,
        web=web,
    )


def parse_config(
    raw: Any, *, base_dir: Path, env: dict[str, str] | None = None, require_rooms: bool = True
) -> Config:
    """Validate raw YAML data; relative paths resolve against ``base_dir``.

    ``require_rooms=False`` is for ``dorfbot setup``, which creates the rooms.
    """
    env = dict(os.environ) if env is None else env
    reader = _Reader()
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of keys"])

    homeserver = reader.text(raw, "homeserver", "", required=True) or ""
    if homeserver and not re.match(r"^https?://", homeserver):
        reader.problem("homeserver", "must start with http:// or https://")
    user_id = reader.text(raw, "user_id", "", required=True, pattern=MATRIX_USER) or ""
    password = env.get("DORFBOT_PASSWORD") or reader.text(raw, "password", "")
    token = env.get("DORFBOT_ACCESS_TOKEN") or reader.text(raw, "access_token", "")
    if not password and not token:
        reader.problem(
            "password", "missing (or access_token, or DORFBOT_PASSWORD in the environment)"
        )
    prefix = reader.text(raw, "command_prefix", "", default="!") or "!"
    if len(prefix) != 1 or prefix.isalnum() or prefix.isspace():
        reader.problem("command_prefix", "must be one punctuation character such as !")

    database = base_dir / (reader.text(raw, "database", "", default="data/dorfbot.db") or "")
    data_dir_raw = reader.text(raw, "data_dir", "")
    data_dir = base_dir / data_dir_raw if data_dir_raw else database.parent

    http_raw = reader.mapping(raw, "http", "")
    host, port = _parse_listen(
        reader, reader.text(http_raw, "listen", "http", default="127.0.0.1:8080") or ""
    )
    public_url = reader.text(http_raw, "public_url", "http", default=f"http://{host}:{port}")
    http = HttpConfig(
        listen_host=host,
        listen_port=port,
        public_url=(public_url or "").rstrip("/"),
        enabled=bool(http_raw.get("enabled", True)),
    )

    villages_raw = raw.get("villages")
    villages: list[VillageConfig] = []
    if not isinstance(villages_raw, list) or not villages_raw:
        reader.problem("villages", "missing (a list with at least one village)")
    else:
        for i, v in enumerate(villages_raw):
            village = _read_village(reader, v, i, require_rooms)
            if village:
                villages.append(village)
    seen: dict[str, int] = {}
    for i, village in enumerate(villages):
        if village.id in seen:
            reader.problem(f"villages[{i}].id", f"duplicate id {village.id!r}")
        seen[village.id] = i

    room_keys: dict[str, str] = {}
    for i, village in enumerate(villages):
        for kind, room in village.rooms.all():
            where = f"villages[{i}].rooms.{kind}"
            if room in room_keys:
                reader.problem(
                    where,
                    f"{room} is already {room_keys[room]}; a room serves one "
                    "village and one purpose",
                )
            room_keys.setdefault(room, where)

    plugins = reader.mapping(raw, "plugins", "")
    for name, section in plugins.items():
        if section is not None and not isinstance(section, dict):
            reader.problem(f"plugins.{name}", "must be a mapping")
    trust = reader.text(raw, "trust", "", default="all", choices=("all", "verified")) or "all"

    config = Config(
        homeserver=homeserver.rstrip("/"),
        user_id=user_id,
        password=password,
        access_token=token,
        device_name=reader.text(raw, "device_name", "", default="dorfbot") or "dorfbot",
        command_prefix=prefix,
        database=database,
        data_dir=data_dir,
        http=http,
        admins=reader.text_list(raw, "admins", "", pattern=MATRIX_USER),
        villages=tuple(villages),
        plugins={k: dict(v or {}) for k, v in plugins.items() if isinstance(v, dict | None)},
        max_catchup_hours=reader.number(raw, "max_catchup", "", 24.0, minimum=0.1),
        commands_per_minute=int(reader.number(raw, "commands_per_minute", "", 20, minimum=1)),
        send_window=int(reader.number(raw, "send_window", "", 16, minimum=1)),
        encryption=bool(raw.get("encryption", True)),
        trust=trust,
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


def load_config(path: str | Path, *, require_rooms: bool = True) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError([f"{path}{where}: not valid YAML"]) from None
    config = parse_config(raw, base_dir=path.resolve().parent, require_rooms=require_rooms)
    return replace(config, source=path.resolve())
