"""The bots under test as child processes: dorfbot (``python -m dorfbot run``) and the floor.

Both run in their own process, so neither shares an event loop (or a core's
time slice) with the residents that drive the benchmark. Memory is read from
``/proc/<pid>/status`` (``VmHWM`` is the peak resident set size).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml

HERE = Path(__file__).resolve().parent


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DORFBOT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """One child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0
        self.started_wall = 0.0
        self.starts = 0
        self.profile: Path | None = None  # a pyinstrument session, rendered after each stop

    def start(self) -> float:
        """Start; returns the ``perf_counter`` just before the process was created."""
        self._log = self.log_path.open("ab")
        self.starts += 1
        argv = [a.replace("%n", str(self.starts)) for a in self.argv]
        self.started_wall = time.time()
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
        )
        return self.started_at

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status_kb(self, key: str) -> int | None:
        """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    def stop(self, timeout: float = 20.0) -> int | None:
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.profile is not None:
            self._render_profile(Path(str(self.profile).replace("%n", str(self.starts))))
        return code

    @staticmethod
    def _render_profile(session: Path) -> None:
        """``.pyisession`` -> ``.html`` (to browse) and ``.txt`` (to read or diff)."""
        if not session.exists():
            return
        for renderer in ("html", "text"):
            out = session.with_suffix(".txt" if renderer == "text" else ".html")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pyinstrument",
                    f"--load={session}",
                    "-r",
                    renderer,
                    "-o",
                    str(out),
                ],
                check=False,
                capture_output=True,
            )
        # the session stays (profile-* is git-ignored): `python -m pyinstrument --load=FILE`

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def dorfbot(
    config: dict[str, Any], workdir: Path, name: str = "dorfbot", profile: Path | None = None
) -> Proc:
    """``python -m dorfbot run -c <workdir>/config.yaml``, optionally under pyinstrument.

    ``profile`` names a ``.pyisession`` file (``%n``: the how-many-th start);
    it is rendered to ``.html`` and ``.txt`` beside it when the bot stops.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "pyinstrument", "-r", "pyisession", "-o", str(profile)]
        argv += ["--interval", "0.001"]
    argv += ["-m", "dorfbot", "run", "-c", str(cfg)]
    proc = Proc(name, argv, workdir / f"{name}.log", workdir)
    proc.profile = profile
    return proc


def floor(hs_url: str, user_id: str, password: str, fanout_rooms: Path, workdir: Path) -> Proc:
    argv = [
        sys.executable,
        str(HERE / "floor_bot.py"),
        hs_url,
        user_id,
        password,
        "--fanout-rooms",
        str(fanout_rooms),
    ]
    return Proc("floor", argv, workdir / "floor.log", workdir)


async def wait_healthy(port: int, proc: Proc, timeout: float = 60.0) -> None:
    """Until dorfbot's ``/healthz`` answers 200 (its first sync is done)."""
    url = f"http://127.0.0.1:{port}/healthz"

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if await asyncio.to_thread(probe):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{proc.name} not healthy after {timeout:.0f} s:\n{proc.tail()}")
