"""B1, B2, B4, B5, B6: the bots against the real homeserver, timed at the residents' clients.

Every figure is taken the same way for dorfbot and the floor: a resident's
client sends, and the clock stops when that client's (or the observer's) sync
has delivered the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import nio

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of

from . import procs
from .timing import Arrivals, percentile, summary_ms
from .world import BOT_PASSWORD, KINDS, World, bounded

Log = Callable[[str], None]


# --------------------------------------------------------------------------- B1


async def b1_latency(
    world: World, pinger: Resident, *, rounds: int, warmup: int = 5, timeout: float = 15.0
) -> dict[str, Any]:
    """Sequential round trips, the cases interleaved so drift hits all alike.

    The floor answers ``!angebote`` no differently from ``!ping`` (it echoes), so
    dorfbot's ``!angebote`` is held against the floor's ``!ping``.
    """
    dorf = world.main_rooms["marketplace"]
    floor = world.floor_rooms[0]
    cases = [
        ("dorfbot !ping", dorf, "!ping"),
        ("floor !ping", floor, "!ping"),
        ("dorfbot !angebote", dorf, "!angebote"),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    lost: dict[str, int] = dict.fromkeys(samples, 0)
    arrivals = world.arrivals
    for i in range(warmup + rounds):
        shift = i % len(cases)
        for name, room, body in cases[shift:] + cases[:shift]:
            started = time.perf_counter()
            sent = await pinger.send(room, body)
            if not await arrivals.wait([sent], timeout):
                lost[name] += 1
                continue
            arrived = arrivals.first(sent)
            if i >= warmup and arrived is not None:
                samples[name].append(arrived - started)
    return {
        "rounds": rounds,
        "lost": lost,
        "samples_ms": {k: [round(v * 1000, 3) for v in vals] for k, vals in samples.items()},
        **{name: summary_ms(vals) for name, vals in samples.items()},
    }


# --------------------------------------------------------------------------- B2 / B5


async def send_burst(
    residents: Sequence[Resident], rooms: Sequence[str], per_resident: int, body: str = "!ping"
) -> tuple[float, float, list[tuple[float, str]]]:
    """Every resident sends ``per_resident`` commands back to back, all at once.

    Returns (start, end of sending, [(send time, event ID)]).
    """
    sent: list[tuple[float, str]] = []

    async def one(index: int, person: Resident) -> None:
        room = rooms[index % len(rooms)]
        for _ in range(per_resident):
            started = time.perf_counter()
            sent.append((started, await person.send(room, body)))

    start = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(residents)))
    return start, time.perf_counter(), sent


async def account(
    arrivals: Arrivals,
    sent: list[tuple[float, str]],
    start: float,
    *,
    timeout: float,
    quiet: float,
    settle: float = 3.0,
) -> dict[str, Any]:
    """Wait for the answers to ``sent``; count lost and duplicated ones."""
    ids = [eid for _, eid in sent]
    complete = await arrivals.wait(ids, timeout, poll=0.01, quiet=quiet)
    await asyncio.sleep(settle)  # a late duplicate would show up here
    answered = [(t, eid) for t, eid in sent if eid in arrivals.replies]
    firsts = [arrivals.first(eid) or 0.0 for _, eid in answered]
    last = max(firsts, default=start)
    latencies = [(arrivals.first(eid) or 0.0) - t for t, eid in answered]
    drain = last - start
    return {
        "commands": len(sent),
        "answered": len(answered),
        "lost": len(sent) - len(answered),
        "duplicated": sum(arrivals.count(eid) - 1 for eid in ids if arrivals.count(eid) > 1),
        "complete": complete,
        "drain_s": round(drain, 3),
        "answers_per_s": round(len(answered) / drain, 1) if drain > 0 else None,
        "latency": summary_ms(latencies),
        "latency_samples_ms": [round(v * 1000, 1) for v in latencies],
        "progress": _progress(sorted(f - start for f in firsts)),
    }


def _progress(times: list[float], points: int = 60) -> list[tuple[float, int]]:
    """(seconds since start, answered so far), thinned for the chart."""
    if not times:
        return []
    step = max(1, len(times) // points)
    picked = [(round(t, 3), i + 1) for i, t in enumerate(times) if i % step == 0]
    if picked[-1][1] != len(times):
        picked.append((round(times[-1], 3), len(times)))
    return picked


async def b2_burst(
    world: World, rooms: Sequence[str], *, per_resident: int, timeout: float = 180.0
) -> dict[str, Any]:
    start, sent_by, sent = await send_burst(world.residents, rooms, per_resident)
    result = await account(world.arrivals, sent, start, timeout=timeout, quiet=8.0, settle=2.0)
    result["send_s"] = round(sent_by - start, 3)
    return result


async def b5_catchup(
    world: World, bot: procs.Proc, *, per_resident: int, timeout: float = 240.0
) -> dict[str, Any]:
    """Commands sent while the bot is stopped, answered after its restart (once each)."""
    bot.stop()
    rooms = [world.main_rooms[k] for k in ("marketplace", "calendar", "announcements", "chat")]
    _, _, sent = await send_burst(world.residents, rooms, per_resident)
    await asyncio.sleep(1.0)
    started = bot.start()
    result = await account(world.arrivals, sent, started, timeout=timeout, quiet=30.0, settle=5.0)
    result["restart_to_all_answered_s"] = result.pop("drain_s")
    # how many limited timelines the restarted bot had to back-paginate
    result["back_paginations"] = len(_log_times(bot.log_path, "back-paginated", bot.started_wall))
    return result


# --------------------------------------------------------------------------- B4


async def b4_fanout(
    world: World, trigger_room: str, rooms: Sequence[str], sender: str, label: str
) -> dict[str, Any]:
    """``!rundruf`` in ``trigger_room``: until the observer has the alert in every room."""
    targets = set(rooms)
    got: dict[str, float] = {}
    everywhere = asyncio.Event()
    marker = f"bench-{label}-{time.monotonic_ns()}"

    def hook(room_id: str, source: dict[str, Any], now: float) -> None:
        body = body_of(source) or ""
        if (
            room_id in targets
            and room_id not in got
            and source.get("sender") == sender
            and body.startswith("@room")
            and marker in body
        ):
            got[room_id] = now
            if len(got) == len(targets):
                everywhere.set()

    world.arrivals.hooks.append(hook)
    try:
        started = time.perf_counter()
        await world.admin.send(trigger_room, f"!rundruf Wasserrohrbruch, bitte abkochen {marker}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everywhere.wait(), 120)
    finally:
        world.arrivals.hooks.remove(hook)
    times = sorted(t - started for t in got.values())
    return {
        "rooms": len(targets),
        "delivered": len(got),
        "all_s": round(times[-1], 3) if len(got) == len(targets) else None,
        "first_s": round(times[0], 3) if times else None,
        "progress": _progress(times),
    }


# --------------------------------------------------------------------------- B6


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _log_times(path: Path, needle: str, since_wall: float) -> list[float]:
    """Seconds from ``since_wall`` to each later log line containing ``needle``."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if needle in ln]
    except OSError:
        return []
    stamps = []
    for line in lines:
        match = _LOG_TIME.match(line)
        if match:
            moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if moment >= since_wall - 0.5:
                stamps.append(moment - since_wall)
    return stamps


def _log_offset(path: Path, needle: str, since_wall: float) -> float | None:
    """Seconds from ``since_wall`` to the first later log line containing ``needle``."""
    stamps = _log_times(path, needle, since_wall)
    return round(stamps[0], 3) if stamps else None


async def make_big_bot(
    hs: Homeserver,
    user_id: str,
    observer: Resident,
    *,
    rooms: int,
    villages: int,
    http_port: int,
    log: Log,
) -> dict[str, Any]:
    """A second bot account that created ``rooms`` rooms itself; its dorfbot config."""
    client = nio.AsyncClient(hs.url, user_id)
    try:
        resp = await client.login(BOT_PASSWORD, device_name="bench-setup")
        if isinstance(resp, nio.ErrorResponse):
            raise RuntimeError(f"login of {user_id} failed: {resp}")

        async def create(index: int) -> str:
            invite = [observer.user_id] if index == 0 else []
            for attempt in range(5):
                made = await client.room_create(name=f"Raum {index}", invite=invite)
                if isinstance(made, nio.RoomCreateResponse):
                    return str(made.room_id)
                await asyncio.sleep(0.5 * (attempt + 1))
            raise RuntimeError(f"room {index} could not be created: {made}")

        started = time.perf_counter()
        room_ids = await bounded(8, [partial(create, i) for i in range(rooms)])
        log(f"  {rooms} rooms created in {time.perf_counter() - started:.0f} s")
        await client.logout()
    finally:
        await client.close()
    await observer.wait_joined(room_ids[0], timeout=60)
    per = rooms // villages
    village_configs = []
    for v in range(villages):
        chunk = room_ids[v * per : (v + 1) * per]
        village_configs.append(
            {
                "id": f"gross-{v}",
                "name": f"Großdorf {v}",
                "rooms": {**dict(zip(KINDS, chunk[:4], strict=True)), "chat": chunk[4:]},
            }
        )
    config = {
        "homeserver": hs.url,
        "user_id": user_id,
        "password": BOT_PASSWORD,
        "database": "data/dorfbot.db",
        "http": {"listen": f"127.0.0.1:{http_port}", "public_url": "http://gross.bench"},
        "admins": [],
        "commands_per_minute": 1_000_000,
        "villages": village_configs,
    }
    return {"config": config, "ping_room": room_ids[0], "rooms": room_ids}


async def b6_startup(
    world: World, bot: procs.Proc, ping_room: str, label: str, *, timeout: float = 60.0
) -> dict[str, Any]:
    """Process start to the first ``!ping`` answered; peak RSS of the bot process.

    The observer sends ``!ping`` every 0.1 s from the moment the process starts
    (a bot answers what arrives after its start, and after a restart also what
    arrived while it was down), so the first answer marks the bot as serving.
    """
    pinger = world.admin
    arrivals = world.arrivals
    sent: list[str] = []
    started = bot.start()
    first: float | None = None
    try:
        while time.perf_counter() - started < timeout:
            if not bot.running:
                raise RuntimeError(f"{bot.name} exited:\n{bot.tail()}")
            sent.append(await pinger.send(ping_room, "!ping"))
            answered = [t for eid in sent if (t := arrivals.first(eid)) is not None]
            if answered:
                first = min(answered)
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)
        rss = bot.status_kb("VmRSS")
        peak = bot.status_kb("VmHWM")
    finally:
        bot.stop()
    return {
        "case": label,
        "start_to_first_reply_s": round(first - started, 3) if first else None,
        "first_sync_done_s": _log_offset(bot.log_path, "first sync done", bot.started_wall),
        "peak_rss_mb": round(peak / 1024, 1) if peak else None,
        "rss_after_mb": round(rss / 1024, 1) if rss else None,
        "pings_sent": len(sent),
    }


def ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or not floor:
        return None
    return round(value / floor, 3)


__all__ = [
    "account",
    "b1_latency",
    "b2_burst",
    "b4_fanout",
    "b5_catchup",
    "b6_startup",
    "make_big_bot",
    "percentile",
    "ratio",
]
