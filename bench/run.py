"""Run every benchmark in one session: ``python -m bench`` (see ``bench/README.md``).

One Synapse on 127.0.0.1 in a temporary directory carries the whole run. dorfbot
and the floor (a bare matrix-nio bot, ``bench/floor_bot.py``) run as child
processes against it at the same time, in separate rooms, so each ratio
compares figures taken minutes apart on the same server, data and machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dorfbot.storage import Database
from dorfbot.testing.homeserver import Homeserver

from . import inprocess, live, procs, report
from .seed import prepare, seed_posts
from .timing import Arrivals
from .world import CATEGORIES, DISTRICTS, RESIDENT_ROOMS, World, build

HERE = Path(__file__).resolve().parent
B8_RESIDENTS = 10
B8_COMMANDS = 200
ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is; ``--quick`` shrinks them for a smoke test."""

    residents: int = 50
    per_resident: int = 20  # B2 and B5: 50 x 20 = 1,000 commands
    rounds: int = 200  # B1 round trips per case
    posts: int = 100_000
    villages: int = 10
    fanout_rooms: int = 100
    fanout_repeats: int = 3
    big_rooms: int = 1000
    events: int = 1000


QUICK = Sizes(
    residents=8,
    per_resident=5,
    rounds=30,
    posts=10_000,
    fanout_rooms=20,
    fanout_repeats=1,
    big_rooms=100,
    events=200,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def meta(sizes: Sizes, quick: bool) -> dict[str, Any]:
    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            return subprocess.run(
                ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=True
            ).stdout.strip()
        return ""

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "sizes": sizes.__dict__,
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "matrix-nio": version("matrix-nio"),
        "matrix-synapse": version("matrix-synapse"),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }


async def joined(hs: Homeserver, user_id: str, rooms: list[str], timeout: float = 120) -> None:
    """Until the homeserver lists ``user_id`` as joined to every room."""
    path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id, safe='')}/joined_rooms"
    deadline = time.monotonic() + timeout
    missing = set(rooms)
    while time.monotonic() < deadline:
        data = await asyncio.to_thread(hs.admin_api, "GET", path)
        missing = set(rooms) - set(data.get("joined_rooms", []))
        if not missing:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{user_id} did not join {len(missing)} rooms")


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else Sizes()
        self.only = {b.strip().upper() for b in args.only.split(",")} if args.only else set(ALL)
        self.results: dict[str, Any] = {"meta": meta(self.sizes, args.quick)}
        self.began = time.perf_counter()
        self.procs: list[procs.Proc] = []

    def log(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.began:6.1f} s] {text}", flush=True)

    def want(self, *names: str) -> bool:
        return any(n in self.only for n in names)

    def profile_path(self, name: str) -> Path | None:
        """Where a profile goes (``.pyisession``, rendered to ``.html`` and ``.txt``)."""
        return HERE / f"profile-{name}.pyisession" if self.args.profile else None

    async def timed(self, name: str, step: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        self.log(f"{name} ...")
        try:
            result = await step()
        except Exception as exc:  # one failed benchmark must not cost the others
            logging.getLogger("bench").exception("%s failed", name)
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            return None
        took = time.perf_counter() - started
        self.results.setdefault("durations_s", {})[name] = round(took, 1)
        self.log(f"{name} done in {took:.0f} s")
        return result

    async def run(self, workdir: Path) -> None:
        sizes = self.sizes
        hs = Homeserver(workdir / "synapse", log_level="WARNING")
        self.log(f"starting Synapse in {workdir}")
        await asyncio.to_thread(hs.start)
        world: World | None = None
        try:
            live_needed = self.want("B1", "B2", "B4", "B5", "B6", "B8")
            arrivals = Arrivals()
            if live_needed:
                self.log("building the village")
                residents = sizes.residents if self.want("B1", "B2", "B5") else 1
                if self.want("B8"):
                    residents = max(residents, B8_RESIDENTS)
                fanout = max(sizes.fanout_rooms if self.want("B4") else 0, residents + 4)
                world = await build(
                    hs,
                    workdir,
                    arrivals,
                    free_port(),
                    residents=residents,
                    fanout=fanout,
                    log=self.log,
                )
            bot_dir = workdir / "dorfbot"
            villages = [world.main_id if world else "benchdorf"]
            villages += [f"nachbardorf-{i}" for i in range(1, sizes.villages)]
            if self.want("B1", "B3"):
                await self.timed("seed", lambda: self.seed(bot_dir, villages))
            if self.want("B3"):
                self.results["B3"] = await self.timed("B3", lambda: self.b3(bot_dir, villages))
            if self.want("B7"):
                self.results["B7"] = await self.timed("B7", lambda: self.b7(workdir))
            if world is not None and self.want("B1", "B2", "B4", "B5", "B8"):
                await self.live_main(world, bot_dir)
            if world is not None and self.want("B6"):
                self.results["B6"] = await self.timed("B6", lambda: self.b6(world, workdir))
        finally:
            for proc in self.procs:
                proc.stop()
            if world is not None:
                await world.close()
            await asyncio.to_thread(hs.stop)

    async def seed(self, bot_dir: Path, villages: list[str]) -> None:
        db = Database(bot_dir / "data" / "dorfbot.db")
        await db.open()
        try:
            await prepare(db)
            self.results["seed"] = await seed_posts(
                db, villages, self.sizes.posts, categories=CATEGORIES, districts=DISTRICTS
            )
        finally:
            await db.close()

    async def b3(self, bot_dir: Path, villages: list[str]) -> dict[str, Any]:
        with self.profiled("b3"):
            return await inprocess.b3_storage(
                bot_dir / "data" / "dorfbot.db",
                villages,
                categories=CATEGORIES,
                districts=DISTRICTS,
            )

    async def b7(self, workdir: Path) -> dict[str, Any]:
        with self.profiled("b7"):
            return await inprocess.b7_calendar(workdir, events=self.sizes.events)

    @contextlib.contextmanager
    def profiled(self, name: str) -> Iterator[None]:
        """pyinstrument around an in-process benchmark, with ``--profile``."""
        path = self.profile_path(name)
        if path is None:
            yield
            return
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="enabled")
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()
            path.with_suffix(".html").write_text(profiler.output_html())
            path.with_suffix(".txt").write_text(profiler.output_text(color=False))

    async def live_main(self, world: World, bot_dir: Path) -> None:
        sizes = self.sizes
        hs = world.hs
        config = world.dorfbot_config()
        bot = procs.dorfbot(config, bot_dir, profile=self.profile_path("dorfbot-%n"))
        floor = procs.floor(
            hs.url,
            world.floor_user_id,
            "bench-bot-password",
            world.workdir / "floor-fanout-rooms.json",
            world.workdir,
        )
        self.procs += [bot, floor]
        bot.start()
        floor.start()
        await procs.wait_healthy(world.http_port, bot, timeout=120)
        await joined(hs, world.bot_user_id, [*world.main_rooms.values(), *world.fanout_rooms])
        await joined(hs, world.floor_user_id, [*world.floor_rooms, *world.floor_fanout_rooms])
        self.log("dorfbot and the floor are up and joined")
        # Only the observer (the admin) and B1's pinger sync: fifty phones' syncs
        # would load the two cores more than either bot does.
        pinger = world.residents[0]
        await pinger.start()
        if self.want("B1"):
            self.results["B1"] = await self.timed(
                "B1", lambda: live.b1_latency(world, pinger, rounds=sizes.rounds)
            )
        await pinger.stop()
        if self.want("B8"):
            self.results["B8"] = await self.timed("B8", lambda: self.b8(world, bot_dir, bot))
        if self.want("B2"):
            self.results["B2"] = await self.timed("B2", lambda: self.b2(world))
        if self.want("B4"):
            self.results["B4"] = await self.timed("B4", lambda: self.b4(world))
        if self.want("B5"):
            self.results["B5"] = await self.timed(
                "B5", lambda: live.b5_catchup(world, bot, per_resident=sizes.per_resident)
            )
        bot.stop()
        floor.stop()

    async def b2(self, world: World) -> dict[str, Any]:
        """The burst twice: in the four shared village rooms (more than a sync's
        100 events per room pile up, so a bot must back-paginate), and with each
        resident in a room of their own (the floor sees every command too)."""
        per = self.sizes.per_resident
        result: dict[str, Any] = {"residents": len(world.residents), "per_resident": per}
        variants = {
            "shared": ([world.main_rooms[k] for k in RESIDENT_ROOMS], world.floor_rooms),
            "own": (world.own_rooms, world.floor_own_rooms),
        }
        for n, (variant, (dorf_rooms, floor_rooms)) in enumerate(variants.items()):
            part: dict[str, Any] = {"rooms": len(dorf_rooms)}
            # Alternate who goes first, so that drift over the minutes between
            # two bursts does not always favour the same bot.
            order = [("dorfbot", dorf_rooms), ("floor", floor_rooms)]
            for who, rooms in order if n % 2 == 0 else order[::-1]:
                part[who] = await live.b2_burst(world, rooms, per_resident=per)
                self.log(f"  {variant} rooms, {who}: {_brief(part[who])}")
                await asyncio.sleep(2)
            result[variant] = part
        return result

    async def b8(self, world: World, bot_dir: Path, bot: procs.Proc) -> dict[str, Any]:
        """200 commands from 10 residents at once, into one room and into ten, against
        the floor; then dorfbot again with ``send_window: 1`` (one reply at a time)."""
        people = world.residents[:B8_RESIDENTS]
        per = B8_COMMANDS // len(people)
        variants = {
            "one_room": ([world.main_rooms["chat"]], [world.floor_rooms[-1]]),
            "ten_rooms": (world.own_rooms[: len(people)], world.floor_own_rooms[: len(people)]),
        }
        result: dict[str, Any] = {"residents": len(people), "per_resident": per}

        async def burst(rooms: list[str]) -> dict[str, Any]:
            _, _, sent = await live.send_burst(people, rooms, per)
            start = min(t for t, _ in sent)
            return await live.account(world.arrivals, sent, start, timeout=180, quiet=8, settle=2)

        for n, (variant, (dorf_rooms, floor_rooms)) in enumerate(variants.items()):
            part: dict[str, Any] = {"rooms": len(dorf_rooms)}
            order = [("dorfbot", dorf_rooms), ("floor", floor_rooms)]
            for who, rooms in order if n % 2 == 0 else order[::-1]:
                part[who] = await burst(rooms)
                self.log(f"  B8 {variant}, {who}: {_brief(part[who])}")
                await asyncio.sleep(2)
            result[variant] = part
        # the window's effect: the same bursts with one reply in flight at a time
        bot.stop()
        config = {**world.dorfbot_config(), "send_window": 1}
        serial = procs.dorfbot(config, bot_dir, name="dorfbot-window1")
        self.procs.append(serial)
        serial.start()
        try:
            await procs.wait_healthy(world.http_port, serial, timeout=120)
            for variant, (dorf_rooms, _) in variants.items():
                result[variant]["dorfbot_window_1"] = await burst(dorf_rooms)
                self.log(f"  B8 {variant}, window 1: {_brief(result[variant]['dorfbot_window_1'])}")
                await asyncio.sleep(2)
        finally:
            serial.stop()
            procs.dorfbot(world.dorfbot_config(), bot_dir)  # the config file back as it was
            bot.start()
            await procs.wait_healthy(world.http_port, bot, timeout=120)
        return result

    async def b4(self, world: World) -> dict[str, Any]:
        runs: dict[str, list[dict[str, Any]]] = {"dorfbot": [], "bare": []}
        for _ in range(self.sizes.fanout_repeats):
            runs["dorfbot"].append(
                await live.b4_fanout(
                    world, world.fanout_rooms[0], world.fanout_rooms, world.bot_user_id, "dorfbot"
                )
            )
            await asyncio.sleep(2)  # dorfbot's summary reply comes after the last room
            runs["bare"].append(
                await live.b4_fanout(
                    world,
                    world.floor_fanout_rooms[0],
                    world.floor_fanout_rooms,
                    world.floor_user_id,
                    "bare",
                )
            )
            await asyncio.sleep(1)

        def median(key: str) -> float | None:
            values = [r["all_s"] for r in runs[key] if r["all_s"] is not None]
            return round(statistics.median(values), 3) if values else None

        return {
            "rooms": len(world.fanout_rooms),
            "dorfbot_s": median("dorfbot"),
            "bare_s": median("bare"),
            "runs": runs,
        }

    async def b6(self, world: World, workdir: Path) -> dict[str, Any]:
        """1,000 rooms: the floor's start (login, full sync), dorfbot's first start and restart."""
        big = await live.make_big_bot(
            world.hs,
            world.big_bot_user_id,
            world.admin,
            rooms=self.sizes.big_rooms,
            villages=10,
            http_port=free_port(),
            log=self.log,
        )
        big_dir = workdir / "dorfbot-big"
        big_dir.mkdir(parents=True, exist_ok=True)
        rooms_file = big_dir / "no-fanout.json"
        rooms_file.write_text("[]")
        config = big["config"]
        floor = procs.floor(
            world.hs.url, config["user_id"], config["password"], rooms_file, big_dir
        )
        bot = procs.dorfbot(
            config, big_dir, name="dorfbot-big", profile=self.profile_path("dorfbot-big-%n")
        )
        result: dict[str, Any] = {"rooms": len(big["rooms"])}
        result["floor"] = await live.b6_startup(world, floor, big["ping_room"], "floor")
        self.log(f"  floor: {result['floor']}")
        result["runs"] = []
        for label in ("first start", "restart"):
            run = await live.b6_startup(world, bot, big["ping_room"], label)
            self.log(f"  dorfbot {label}: {run}")
            result["runs"].append(run)
        peaks = [r["peak_rss_mb"] for r in result["runs"] if r.get("peak_rss_mb")]
        result["peak_rss_mb"] = max(peaks, default=None)
        return result


def _brief(result: dict[str, Any]) -> str:
    return (
        f"{result['answered']}/{result['commands']} answered in {result['drain_s']} s, "
        f"lost {result['lost']}, duplicated {result['duplicated']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help="comma-separated subset, e.g. B1,B3 (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke test (figures not comparable)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile dorfbot with pyinstrument: bench/profile-*.html",
    )
    parser.add_argument("--workdir", help="keep the run's files here (default: a temp dir)")
    parser.add_argument("--out", default=str(HERE / "results.json"), help="JSON output")
    parser.add_argument("--chart", default=str(HERE / "latency.png"), help="PNG output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    runner = Runner(args)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dorfbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(runner.run(workdir))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results = runner.results
    results["meta"]["loadavg_end"] = os.getloadavg()
    results["meta"]["total_s"] = round(time.perf_counter() - runner.began, 1)
    table_rows = report.rows(results)
    results["table"] = [r.as_dict() for r in table_rows]
    text = report.table(table_rows)
    why_not = report.chart(results, Path(args.chart))
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    title = "dorfbot benchmarks" + (" (QUICK: sizes reduced, not comparable)" if args.quick else "")
    print(
        f"\n{title}, {results['meta']['total_s']:.0f} s, load at start "
        f"{results['meta']['loadavg_start'][0]:.1f} on {results['meta']['cpus']} cores\n"
    )
    print(text)
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    for name in failed:
        print(f"\n{name} FAILED: {results[name]['error']}")
    print(
        f"\nwrote {args.out}"
        + (f" and {args.chart}" if why_not is None else f" (no chart: {why_not})")
    )
    return 1 if failed else 0
