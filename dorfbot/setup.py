"""``dorfbot setup``: a Matrix Space per village with its rooms and power levels.

Rooms are found again by their aliases (``#<village>-marktplatz:<server>``), so
running setup twice creates nothing twice; what is missing or wrong (a room,
the space links, power levels) is repaired. The result is the ``rooms``
section for each village's config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import nio

from dorfbot import ratelimit
from dorfbot.config import Config, VillageConfig
from dorfbot.i18n import CORE_LOCALES, Catalogs
from dorfbot.matrix import Matrix, MatrixError
from dorfbot.text import fold

log = logging.getLogger(__name__)

MODERATOR_LEVEL = 50
BOT_LEVEL = 100


@dataclass(frozen=True)
class RoomPlan:
    """One room setup creates: config kind, alias slug, catalog key of its name."""

    kind: str
    slug: str
    name_key: str
    encrypted: bool = False
    public: bool = True


PLANS = (
    RoomPlan("marketplace", "marktplatz", "setup.room.marketplace"),
    RoomPlan("calendar", "termine", "setup.room.calendar"),
    RoomPlan("announcements", "ankuendigungen", "setup.room.announcements"),
    RoomPlan("chat", "plausch", "setup.room.chat"),
    RoomPlan("moderation", "moderation", "setup.room.moderation", encrypted=True, public=False),
)


def _slug(name: str) -> str:
    # Accents kept: aliases must stay what earlier runs of setup created.
    folded = fold(name.strip(), keep_accents=True)
    return "".join(c if c.isalnum() else "-" for c in folded).strip("-")


class VillageSetup:
    """Creates or repairs the space and rooms of villages with the bot's account."""

    def __init__(self, config: Config, matrix: Matrix) -> None:
        self.config = config
        self.matrix = matrix
        self.server = config.user_id.split(":", 1)[1]
        self.catalogs = Catalogs()
        self.catalogs.add_dir(CORE_LOCALES)
        self.created: list[str] = []
        self._default_version: str | None = None

    async def _room_version(self) -> str:
        if self._default_version is None:
            resp = await self.matrix.client.send(
                "GET",
                "/_matrix/client/v3/capabilities",
                None,
                {"Authorization": f"Bearer {self.matrix.client.access_token}"},
            )
            data = await resp.json()
            self._default_version = str(
                data.get("capabilities", {}).get("m.room_versions", {}).get("default", "10")
            )
        return self._default_version

    async def _creator_listed(self) -> bool:
        # Since room version 12 creators are all-powerful and must not be listed.
        version = await self._room_version()
        return not (version.isdigit() and int(version) >= 12)

    async def _power_levels(self, village: VillageConfig, plan: RoomPlan | None) -> dict[str, Any]:
        users: dict[str, int] = {m: MODERATOR_LEVEL for m in village.moderators}
        users.update({a: MODERATOR_LEVEL for a in self.config.admins})
        if await self._creator_listed():
            users[self.config.user_id] = BOT_LEVEL
        content: dict[str, Any] = {
            "users": users,
            "notifications": {"room": MODERATOR_LEVEL},
            "events_default": 0,
        }
        if plan is None or plan.kind == "announcements":
            content["events_default"] = MODERATOR_LEVEL  # read-only for residents
        return content

    async def _find(self, alias: str) -> str | None:
        resp = await self.matrix.client.room_resolve_alias(alias)
        if isinstance(resp, nio.ErrorResponse):
            return None
        return str(resp.room_id)

    async def _ensure_room(
        self,
        village: VillageConfig,
        alias_local: str,
        name: str,
        topic: str,
        plan: RoomPlan | None,
        space_id: str | None,
    ) -> str:
        alias = f"#{alias_local}:{self.server}"
        room_id = await self._find(alias)
        levels = await self._power_levels(village, plan)
        if room_id is None:
            state: list[dict[str, Any]] = []
            if plan is not None and plan.encrypted:
                state.append(
                    {
                        "type": "m.room.encryption",
                        "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                    }
                )
            if space_id is not None:
                state.append(
                    {
                        "type": "m.space.parent",
                        "state_key": space_id,
                        "content": {"via": [self.server], "canonical": True},
                    }
                )
            public = plan is None or plan.public
            resp = await self.matrix.client.room_create(
                name=name,
                topic=topic,
                alias=alias_local,
                visibility=nio.RoomVisibility.public if public else nio.RoomVisibility.private,
                preset=nio.RoomPreset.public_chat if public else nio.RoomPreset.private_chat,
                space=plan is None,
                initial_state=state,
                power_level_override=levels,
                invite=[m for m in (*village.moderators,) if m != self.config.user_id]
                if plan is not None and not plan.public
                else [],
            )
            if isinstance(resp, nio.ErrorResponse):
                raise MatrixError(f"creating {alias}: {resp.message}")
            room_id = str(resp.room_id)
            self.created.append(room_id)
            log.info("created %s (%s)", alias, room_id)
        else:
            await self._join(room_id)
            await self._repair_levels(room_id, levels)
            if space_id is not None:
                await self._put_if_missing(
                    room_id, "m.space.parent", space_id, {"via": [self.server], "canonical": True}
                )
        if space_id is not None:
            await self._put_if_missing(space_id, "m.space.child", room_id, {"via": [self.server]})
        return room_id

    async def _join(self, room_id: str) -> None:
        resp = await self.matrix.client.join(room_id)
        if isinstance(resp, nio.ErrorResponse):
            raise MatrixError(f"joining {room_id}: {resp.message}")

    async def _put_if_missing(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        current = await self.matrix.client.room_get_state_event(room_id, event_type, state_key)
        if isinstance(current, nio.ErrorResponse) or not current.content:
            await self.matrix.client.room_put_state(room_id, event_type, content, state_key)

    async def _repair_levels(self, room_id: str, wanted: dict[str, Any]) -> None:
        current = await self.matrix.client.room_get_state_event(room_id, "m.room.power_levels")
        if isinstance(current, nio.ErrorResponse):
            return
        content = dict(current.content)
        users = dict(content.get("users", {}))
        changed = False
        for user, level in wanted["users"].items():
            if users.get(user, 0) < level:
                users[user] = level
                changed = True
        for key in ("events_default",):
            if content.get(key, 0) < wanted[key]:
                content[key] = wanted[key]
                changed = True
        notifications = dict(content.get("notifications", {}))
        if notifications.get("room", 50) > MODERATOR_LEVEL:
            notifications["room"] = MODERATOR_LEVEL
            changed = True
        if changed:
            content.update(users=users, notifications=notifications)
            await self.matrix.client.room_put_state(room_id, "m.room.power_levels", content)
            log.info("repaired power levels in %s", room_id)

    async def village(self, village: VillageConfig) -> dict[str, Any]:
        """Create or repair one village; returns its ``rooms`` config section."""
        t = self.catalogs.translator(village.language)
        space_id = await self._ensure_room(
            village,
            village.id,
            t.plain("setup.space_name", village=village.name),
            t.plain("setup.space_topic", village=village.name),
            None,
            None,
        )
        rooms: dict[str, Any] = {"chat": []}
        for plan in PLANS:
            room_id = await self._ensure_room(
                village,
                f"{village.id}-{plan.slug}",
                t.plain(plan.name_key, village=village.name),
                t.plain(plan.name_key + "_topic", village=village.name, prefix="!"),
                plan,
                space_id,
            )
            if plan.kind == "chat":
                rooms["chat"].append(room_id)
            else:
                rooms[plan.kind] = room_id
        for theme in village.thematic_rooms:
            room_id = await self._ensure_room(
                village,
                f"{village.id}-{_slug(theme)}",
                t.plain("setup.room.theme", village=village.name, theme=theme),
                t.plain("setup.room.theme_topic", village=village.name, theme=theme),
                PLANS[3],
                space_id,
            )
            rooms["chat"].append(room_id)
        rooms["space"] = space_id
        return rooms


def operator_matrix(config: Config) -> Matrix:
    """The bot's account for an operator's command (setup, online checks), unencrypted."""
    return Matrix(
        config.homeserver,
        config.user_id,
        config.data_dir,
        device_name=config.device_name,
        encryption=False,
    )


async def run_setup(
    config: Config, *, rate_limit_notes: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Set up every configured village; returns ``{village_id: rooms section}``.

    With ``rate_limit_notes``, the homeserver's rate limit for the bot is
    checked too (:mod:`dorfbot.ratelimit`) and what the operator should read is
    appended to it.
    """
    matrix = operator_matrix(config)
    try:
        await matrix.login(config.password, config.access_token)
        setup = VillageSetup(config, matrix)
        result = {v.id: await setup.village(v) for v in config.villages}
        if rate_limit_notes is not None:
            rate_limit_notes += await ratelimit.checked_report(matrix)
        return result
    finally:
        await matrix.close()


def config_snippet(result: dict[str, dict[str, Any]]) -> str:
    """The ``rooms`` sections to paste into the config, as YAML."""
    import yaml

    villages = [
        {"id": vid, "rooms": {k: v for k, v in rooms.items() if k != "space"}}
        for vid, rooms in result.items()
    ]
    return yaml.safe_dump({"villages": villages}, sort_keys=False, allow_unicode=True)
