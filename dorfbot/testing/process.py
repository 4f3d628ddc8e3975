"""``dorfbot run`` as a real subprocess of a test world, so a test can SIGKILL it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from dorfbot.testing.village import World

__all__ = ["BotProcess"]


class BotProcess:
    """The world's bot as ``python -m dorfbot run``, logging to ``workdir/bot.log``."""

    def __init__(self, world: World, workdir: Path) -> None:
        self.config = workdir / "config.yaml"
        self.config.write_text(yaml.safe_dump(world.raw_config))
        self.db = Path(world.raw_config["database"])
        self.log = workdir / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dorfbot", "run", "-c", str(self.config)],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()  # gone, with its database lock, before anything restarts

    def in_flight(self) -> int:
        """Sends the bot has stored as handled but not yet delivered (its outbox)."""
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1) as conn:
                return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        except sqlite3.Error:
            return 0
