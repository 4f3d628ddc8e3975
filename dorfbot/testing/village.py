"""A village on a real homeserver, for tests of the core and of plugins.

:func:`build_world` registers a bot account, an admin, per village a moderator,
an organizer, a helper and residents, creates the village's rooms with the
power levels the bot needs, writes a validated :class:`~dorfbot.config.Config`
and starts :class:`~dorfbot.bot.Bot` in-process. Plugin authors use it through
the pytest fixtures in ``tests/conftest.py`` or directly::

    world = await build_world(hs, tmp_path)
    reply = await world.resident.command(world.room("marketplace"), "!ping")
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dorfbot.bot import Bot
from dorfbot.config import Config, parse_config
from dorfbot.plugin import Plugin
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of

ROOM_KINDS = ("marketplace", "calendar", "announcements", "moderation", "chat")


def is_edit(event: dict[str, Any]) -> bool:
    """Whether a raw event replaces an earlier one (``m.replace``)."""
    relates = event.get("content", {}).get("m.relates_to") or {}
    return isinstance(relates, dict) and relates.get("rel_type") == "m.replace"


def bot_message(world: World, *needles: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: a new (not edited) message of the bot whose body contains every needle."""

    def check(event: dict[str, Any]) -> bool:
        body = body_of(event) or ""
        return (
            event.get("sender") == world.bot_user_id
            and event.get("type") == "m.room.message"
            and not is_edit(event)
            and all(n in body for n in needles)
        )

    return check


BOT_PASSWORD = "dorfbot-test-password"


@dataclass
class TestVillage:
    """One village of a test world: its config id, rooms and people."""

    id: str
    rooms: dict[str, str]
    moderator: Resident
    organizer: Resident
    helper: Resident
    residents: list[Resident]

    def room(self, kind: str) -> str:
        return self.rooms[kind]


@dataclass
class World:
    """A homeserver, people, villages, a config and (when started) the bot."""

    hs: Homeserver
    workdir: Path
    admin: Resident
    villages: list[TestVillage]
    bot_user_id: str
    raw_config: dict[str, Any]
    bot: Bot | None = None
    plugin_classes: list[type[Plugin]] | None = None
    _people: list[Resident] = field(default_factory=list)

    # shortcuts to the first village
    @property
    def village(self) -> TestVillage:
        return self.villages[0]

    @property
    def resident(self) -> Resident:
        return self.villages[0].residents[0]

    @property
    def moderator(self) -> Resident:
        return self.villages[0].moderator

    def room(self, kind: str) -> str:
        return self.villages[0].rooms[kind]

    @property
    def config(self) -> Config:
        return parse_config(self.raw_config, base_dir=self.workdir, env={})

    async def start_bot(self, *, wait_joined: bool = True) -> Bot:
        """Start the bot in-process; waits until it has joined every village room."""
        if self.bot is not None:
            raise RuntimeError("bot already running")
        bot = Bot(self.config, plugin_classes=self.plugin_classes)
        await bot.start()
        self.bot = bot
        await bot.wait_ready()
        # one full sync round, so the bot's device keys are uploaded (encrypted rooms)
        await asyncio.wait_for(bot.stream.first_round_done.wait(), 60)
        if wait_joined:
            wanted = {rid for v in self.villages for rid in v.rooms.values()}
            deadline = asyncio.get_running_loop().time() + 30
            while not wanted <= set(bot.matrix.client.rooms):
                if asyncio.get_running_loop().time() > deadline:
                    missing = wanted - set(bot.matrix.client.rooms)
                    raise TimeoutError(f"bot did not join {missing}")
                await asyncio.sleep(0.1)
        return bot

    async def stop_bot(self) -> None:
        if self.bot is not None:
            bot, self.bot = self.bot, None
            await bot.stop()

    async def restart_bot(self) -> Bot:
        await self.stop_bot()
        return await self.start_bot()

    async def new_resident(
        self, village: TestVillage | None = None, name: str = "resident"
    ) -> Resident:
        """One more resident, joined to every room of the village but moderation."""
        village = village or self.village
        person = await Resident.create(self.hs, f"{name}-{uuid.uuid4().hex[:8]}")
        self._people.append(person)
        for kind, room_id in village.rooms.items():
            if kind != "moderation":
                await self.admin.invite(room_id, person.user_id)
                await person.wait_joined(room_id)
        return person

    async def close(self) -> None:
        await self.stop_bot()
        for person in self._people:
            await person.close()


async def build_world(
    hs: Homeserver,
    workdir: Path,
    *,
    villages: int = 1,
    residents: int = 2,
    language: str = "de",
    village_options: dict[str, Any] | None = None,
    config_options: dict[str, Any] | None = None,
    plugin_classes: list[type[Plugin]] | None = None,
    encrypted: tuple[str, ...] = (),
) -> World:
    """Register people, create rooms and write the config of a fresh test world."""
    tag = uuid.uuid4().hex[:8]
    bot_localpart = f"dorfbot-{tag}"
    bot_user_id = hs.register(bot_localpart, BOT_PASSWORD)
    admin = await Resident.create(hs, f"admin-{tag}")
    people = [admin]
    test_villages: list[TestVillage] = []
    village_configs: list[dict[str, Any]] = []
    for index in range(villages):
        vid = f"dorf{index}-{tag}"
        moderator = await Resident.create(hs, f"mod{index}-{tag}")
        organizer = await Resident.create(hs, f"org{index}-{tag}")
        helper = await Resident.create(hs, f"helper{index}-{tag}")
        folks = [await Resident.create(hs, f"res{index}x{i}-{tag}") for i in range(residents)]
        people += [moderator, organizer, helper, *folks]
        rooms: dict[str, str] = {}
        for kind in ROOM_KINDS:
            members = [bot_user_id, moderator.user_id]
            if kind != "moderation":
                members += [organizer.user_id, helper.user_id, *(p.user_id for p in folks)]
            room_id = await admin.create_room(
                name=f"{vid} {kind}",
                invite=members,
                power_levels={
                    "users": {admin.user_id: 100, bot_user_id: 50, moderator.user_id: 50}
                },
                encrypted=kind in encrypted,
            )
            rooms[kind] = room_id
            for person in (moderator, organizer, helper, *folks):
                if person.user_id in members:
                    await person.wait_joined(room_id)
        test_villages.append(TestVillage(vid, rooms, moderator, organizer, helper, folks))
        village_configs.append(
            {
                "id": vid,
                "name": f"Testdorf {index}",
                "language": language,
                "rooms": {
                    **{k: rooms[k] for k in ROOM_KINDS if k != "chat"},
                    "chat": [rooms["chat"]],
                },
                "organizers": [organizer.user_id],
                "helpers": [helper.user_id],
                "categories": ["garten", "einkauf", "fahrdienst", "technik", "sonstiges"],
                "districts": ["Nord", "Süd", "Ortsmitte"],
                **(village_options or {}),
            }
        )
    raw: dict[str, Any] = {
        "homeserver": hs.url,
        "user_id": bot_user_id,
        "password": BOT_PASSWORD,
        "database": str(workdir / "data" / "dorfbot.db"),
        "http": {"listen": "127.0.0.1:0", "public_url": "http://dorf.test"},
        "admins": [admin.user_id],
        "villages": village_configs,
        **(config_options or {}),
    }
    world = World(
        hs, workdir, admin, test_villages, bot_user_id, raw, plugin_classes=plugin_classes
    )
    world._people = people
    return world
