"""``dorfbot`` on the command line: run, check-config, setup, demo, backup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from dorfbot.config import Config, ConfigError, load_config
from dorfbot.storage import StorageError

log = logging.getLogger("dorfbot")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # nio logs message contents at DEBUG/INFO in places; keep it quiet.
    for noisy in ("nio", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"Configuration problems in {path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


async def run_until_signal(bot_main: asyncio.Task[None]) -> None:
    """Cancel ``bot_main`` on SIGINT/SIGTERM so everything shuts down in order."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, bot_main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await bot_main


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from dorfbot.bot import Bot

    async def main() -> None:
        bot = Bot(config)
        await run_until_signal(asyncio.create_task(bot.run()))

    try:
        asyncio.run(main())
    except StorageError as exc:
        print(f"dorfbot: {exc}", file=sys.stderr)
        return 3
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from dorfbot.plugin_loader import discover

    names = [cls.name for cls in discover()]
    unknown = sorted(set(config.plugins) - set(names))
    if unknown:
        print(f"Configuration problems in {args.config}:", file=sys.stderr)
        for name in unknown:
            print(f"  plugins.{name}: no such plugin (have: {', '.join(names)})", file=sys.stderr)
        return 2
    enabled = [n for n in names if config.plugins.get(n, {}).get("enabled", True) is not False]
    print(f"{args.config}: OK ({len(config.villages)} villages; plugins: {', '.join(enabled)})")
    if args.online:
        from dorfbot.matrix import MatrixError

        try:
            for line in asyncio.run(_online_checks(config)):
                print(line)
        except (MatrixError, OSError) as exc:
            print(f"dorfbot check-config --online: {exc}", file=sys.stderr)
            return 4
    return 0


async def _online_checks(config: Config) -> list[str]:
    """Log in as the bot and measure its message rate limit (lifted with an admin token)."""
    from dorfbot import ratelimit
    from dorfbot.setup import operator_matrix

    matrix = operator_matrix(config)
    try:
        await matrix.login(config.password, config.access_token)
        lines = [f"Logged in as {matrix.user_id} on {config.homeserver}."]
        return lines + await ratelimit.checked_report(matrix)
    finally:
        await matrix.close()


def cmd_backup(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from dorfbot.storage import Database

    async def main() -> None:
        db = Database(config.database)
        await db.open()
        try:
            await db.backup_to(Path(args.file))
        finally:
            await db.close()

    try:
        asyncio.run(main())
    except StorageError as exc:
        print(f"dorfbot: {exc}", file=sys.stderr)
        return 3
    print(f"backup written to {args.file}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, require_rooms=False)
    except ConfigError as exc:
        print(f"Configuration problems in {args.config}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    from dorfbot.matrix import MatrixError
    from dorfbot.setup import config_snippet, run_setup

    try:
        rate_lines: list[str] = []
        result = asyncio.run(run_setup(config, rate_limit_notes=rate_lines))
    except MatrixError as exc:
        print(f"dorfbot setup: {exc}", file=sys.stderr)
        return 4
    print("# Rooms are ready. Put these room IDs into your config:")
    print(config_snippet(result))
    for line in rate_lines:
        print(f"# {line}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dorfbot.demo import run_demo

    return run_demo(Path(args.dir) if args.dir else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dorfbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", default="config.yaml", help="config file")
        return p

    with_config(sub.add_parser("run", help="run the bot")).set_defaults(func=cmd_run)
    check = with_config(sub.add_parser("check-config", help="validate the config and exit"))
    check.add_argument(
        "--online",
        action="store_true",
        help="also log in and check the homeserver's rate limit for the bot "
        "(lifted when DORFBOT_ADMIN_TOKEN holds a server admin's token)",
    )
    check.set_defaults(func=cmd_check_config)
    with_config(
        sub.add_parser("setup", help="create each village's space, rooms and power levels")
    ).set_defaults(func=cmd_setup)
    backup = with_config(sub.add_parser("backup", help="consistent online database backup"))
    backup.add_argument("file")
    backup.set_defaults(func=cmd_backup)
    demo = sub.add_parser("demo", help="local homeserver + demo village + bot, to try dorfbot")
    demo.add_argument("--dir", help="keep the demo's files here (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
