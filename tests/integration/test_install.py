"""What a user runs, the way a user runs it: the installed ``dorfbot`` command.

Every test here starts the console script from a temporary working directory
outside the checkout, with no ``PYTHONPATH``, so the package is found only
through what ``pip install`` wrote: the editable install of the suite's venv,
and a wheel built from the checkout and installed into a fresh venv.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

from dorfbot.storage import Database
from dorfbot.testing.commandline import installed_command, user_env

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ("announcements", "calendar", "links", "marketplace", "welcome")


def run_dorfbot(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *args],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def example_config(folder: Path) -> Path:
    """The documented example config, copied where a user would put theirs."""
    config = folder / "etc" / "config.yaml"
    config.parent.mkdir(parents=True)
    shutil.copy(ROOT / "config.example.yaml", config)
    return config


def assert_config_ok(result: subprocess.CompletedProcess[str], config: Path) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{config}: OK" in result.stdout
    for name in BUNDLED:
        assert name in result.stdout, f"bundled plugin {name} not loaded:\n{result.stdout}"


def test_installed_command_help_from_outside_the_checkout(tmp_path: Path) -> None:
    result = run_dorfbot(installed_command(), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for sub in ("run", "check-config", "setup", "backup", "demo"):
        assert sub in result.stdout


def test_installed_command_checks_a_config_and_loads_the_bundled_plugins(tmp_path: Path) -> None:
    config = example_config(tmp_path)
    assert_config_ok(
        run_dorfbot(installed_command(), "check-config", "-c", str(config), cwd=tmp_path), config
    )


def test_installed_command_reports_problems_by_key_path(tmp_path: Path) -> None:
    config = example_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("id: musterdorf", "id: Muster Dorf") + "\n  nosuchplugin: {}\n",
        encoding="utf-8",
    )
    result = run_dorfbot(installed_command(), "check-config", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "villages[0].id" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_second_bot_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    """Two processes on one SQLite file would both answer every command: the second stops."""
    config = example_config(tmp_path)
    running = Database(config.parent / "data" / "dorfbot.db")  # stands in for the first bot
    await running.open()
    await running.claim()
    try:
        result = run_dorfbot(installed_command(), "run", "-c", str(config), cwd=tmp_path)
    finally:
        await running.close()
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"another dorfbot process (pid {os.getpid()})" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_signal_stops_a_bot_that_cannot_reach_its_homeserver(tmp_path: Path) -> None:
    """systemd's stop while the homeserver is down: the bot ends promptly, nothing left open."""
    config = example_config(tmp_path)
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("homeserver: http://localhost:8008", f"homeserver: http://127.0.0.1:{port}"),
        encoding="utf-8",
    )
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(installed_command()), "run", "-c", str(config)],
            cwd=tmp_path,
            env=user_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while b"sleeping for" not in log.read_bytes():  # it is retrying the login
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    """Build the wheel, install it (with its dependencies) into a new venv, run it."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        env=user_env(),
    )
    wheel = next(dist.glob("dorfbot-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith("plugins/") for n in names), "a top-level 'plugins' package"
    assert "dorfbot/bundled_plugins/calendar/locales/de/calendar.yaml" in names
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "plugins"], capture_output=True, text=True, check=False
    ).stdout.split()
    shipped = {n.removeprefix("dorfbot/bundled_") for n in names if "/bundled_plugins/" in n}
    assert not tracked or set(tracked) <= shipped, set(tracked) - shipped

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    install = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        env=user_env(),
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    config = example_config(work)
    script = installed_command(env_dir / "bin")
    assert_config_ok(run_dorfbot(script, "check-config", "-c", str(config), cwd=work), config)
    probe = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import dorfbot, plugins"],
        cwd=work,
        env=user_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert "No module named 'plugins'" in probe.stderr
