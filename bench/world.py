"""The benchmark's village on the local Synapse: accounts, rooms and the bots' configs.

Everything is created before either bot starts, so both find their rooms as
invites in their first sync and join them:

- ``main``: the village the residents live in (marketplace, calendar,
  announcements, moderation, chat); dorfbot answers here.
- ``fanout``: a second village with 100 rooms (the four kinds plus 96 chat
  rooms), the target of ``!rundruf`` in B4. Only the admin and the bot are in it.
- floor rooms: four rooms with the same residents, where the floor bot answers,
  and 100 rooms for the floor's bare fan-out.
- one room per resident with each bot (for B2's burst without shared rooms):
  chat rooms of ``fanout``, and floor fan-out rooms.

The admin created every room, so it is a member of each and serves as the
observer that sees every reply and every alert.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import nio

from dorfbot.testing import resident as resident_module
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident

from .timing import Arrivals, TimedResident

T = TypeVar("T")

BOT_PASSWORD = "bench-bot-password"
CATEGORIES = ["garten", "einkauf", "fahrdienst", "technik", "haushalt", "betreuung", "sonstiges"]
DISTRICTS = ["Nord", "Süd", "Ortsmitte"]
RESIDENT_ROOMS = ("marketplace", "calendar", "announcements", "chat")
KINDS = ("marketplace", "calendar", "announcements", "moderation")


async def bounded(limit: int, factories: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run coroutine factories with at most ``limit`` at a time; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await factory()

    return list(await asyncio.gather(*(one(f) for f in factories)))


@dataclass
class World:
    hs: Homeserver
    workdir: Path
    arrivals: Arrivals
    tag: str
    admin: Resident  # all of them TimedResident
    residents: list[Resident]
    bot_user_id: str
    floor_user_id: str
    big_bot_user_id: str  # B6's bot account
    main_id: str
    main_rooms: dict[str, str]
    fanout_rooms: list[str]  # announcements first
    floor_rooms: list[str]  # four rooms, like RESIDENT_ROOMS
    floor_fanout_rooms: list[str]
    own_rooms: list[str]  # one per resident, with dorfbot
    floor_own_rooms: list[str]  # one per resident, with the floor
    http_port: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def people(self) -> list[Resident]:
        return [self.admin, *self.residents]

    def dorfbot_config(self) -> dict[str, Any]:
        fan = self.fanout_rooms
        return {
            "homeserver": self.hs.url,
            "user_id": self.bot_user_id,
            "password": BOT_PASSWORD,
            "database": "data/dorfbot.db",
            "http": {"listen": f"127.0.0.1:{self.http_port}", "public_url": "http://dorf.bench"},
            "admins": [self.admin.user_id],
            # Residents here are scripts: the per-user flood limit would only measure itself.
            "commands_per_minute": 1_000_000,
            "villages": [
                {
                    "id": self.main_id,
                    "name": "Benchdorf",
                    "rooms": {
                        **{k: self.main_rooms[k] for k in KINDS},
                        "chat": [self.main_rooms["chat"]],
                    },
                    "categories": CATEGORIES,
                    "districts": DISTRICTS,
                },
                {
                    "id": f"{self.main_id}-rundruf",
                    "name": "Rundrufdorf",
                    "rooms": {
                        "announcements": fan[0],
                        "marketplace": fan[1],
                        "calendar": fan[2],
                        "moderation": fan[3],
                        "chat": fan[4:],
                    },
                },
            ],
        }

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.people), return_exceptions=True)


async def register_bot(hs: Homeserver, localpart: str) -> str:
    return await asyncio.to_thread(hs.register, localpart, BOT_PASSWORD)


def observe_only(senders: list[str]) -> None:
    """Residents' syncs carry only the bots' events (answers, alerts).

    Every event a syncing client receives costs Synapse work; the benchmark
    needs only the bots' side of the conversation, so that the homeserver's
    time goes to the bots under test. (The test harness has no parameter for
    its sync filter yet, hence the module attribute.)
    """
    resident_module._SYNC_FILTER = {
        "presence": {"types": []},
        "room": {
            "timeline": {"limit": 100, "senders": senders},
            "ephemeral": {"types": []},
        },
    }


async def join(person: Resident, room_id: str) -> None:
    """Join a public room without syncing; nio learns the room as the core does."""
    for attempt in range(5):
        resp = await person.client.join(room_id)
        if isinstance(resp, nio.JoinResponse):
            # nio sends only into rooms it knows (it must know whether they are
            # encrypted); these are not, and the resident does not sync.
            person.client.rooms.setdefault(room_id, nio.MatrixRoom(room_id, person.user_id))
            return
        await asyncio.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"{person.user_id} could not join {room_id}: {resp}")


async def build(
    hs: Homeserver,
    workdir: Path,
    arrivals: Arrivals,
    http_port: int,
    *,
    residents: int = 50,
    fanout: int = 100,
    log: Callable[[str], None] = print,
) -> World:
    """Accounts and rooms. Residents join public rooms directly and do not sync
    (only the admin, the observer, does), which keeps the set-up short."""
    TimedResident.arrivals = arrivals
    tag = uuid.uuid4().hex[:6]
    bot = await register_bot(hs, f"dorfbot-{tag}")
    floor = await register_bot(hs, f"floor-{tag}")
    big_bot = await register_bot(hs, f"dorfbot-big-{tag}")
    observe_only([bot, floor, big_bot])
    admin = await TimedResident.create(hs, f"admin-{tag}")
    folks = await bounded(
        10,
        [
            partial(TimedResident.create, hs, f"res{i:02d}-{tag}", start=False)
            for i in range(residents)
        ],
    )

    async def room(name: str, bot_id: str) -> str:
        return await admin.create_room(
            name=name,
            invite=[bot_id],
            power_levels={"users": {bot_id: 50}},
            preset="public_chat",
        )

    main_rooms = {kind: await room(f"Benchdorf {kind}", bot) for kind in (*KINDS, "chat")}
    floor_rooms = [await room(f"Floor {k}", floor) for k in RESIDENT_ROOMS]
    fanout_rooms = await bounded(8, [partial(room, f"Rundruf {i}", bot) for i in range(fanout)])
    floor_fanout = await bounded(
        8, [partial(room, f"Floor rundruf {i}", floor) for i in range(fanout)]
    )
    log(f"  {residents} residents registered, {2 * fanout + 9} rooms created")
    # Each resident: the four village rooms, the floor's four, and one room of
    # its own with each bot (a chat room of the fan-out village, a floor fan-out room).
    own = [(fanout_rooms[4 + i], floor_fanout[1 + i]) for i in range(residents)]
    joins = [
        partial(join, p, r)
        for i, p in enumerate(folks)
        for r in [*(main_rooms[k] for k in RESIDENT_ROOMS), *floor_rooms, *own[i]]
    ]
    await bounded(8, joins)
    log(f"  {len(joins)} joins done")
    (workdir / "floor-fanout-rooms.json").write_text(json.dumps(floor_fanout))
    return World(
        hs=hs,
        workdir=workdir,
        arrivals=arrivals,
        tag=tag,
        admin=admin,
        residents=folks,
        bot_user_id=bot,
        floor_user_id=floor,
        big_bot_user_id=big_bot,
        main_id=f"benchdorf-{tag}",
        main_rooms=main_rooms,
        fanout_rooms=fanout_rooms,
        floor_rooms=floor_rooms,
        floor_fanout_rooms=floor_fanout,
        own_rooms=[o[0] for o in own],
        floor_own_rooms=[o[1] for o in own],
        http_port=http_port,
    )
