"""The systemd unit runs what the README's install steps put in place (issue 18.13)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_unit_runs_dorfbot_from_the_venv_the_readme_installs() -> None:
    readme = (ROOT / "README.md").read_text()
    venv = re.search(r"python3 -m venv (/\S+)", readme)  # "Install for real"
    assert venv is not None
    unit = (ROOT / "deploy" / "dorfbot.service").read_text()
    commands = re.findall(r"^(?:ExecStart|ExecStartPre)=(\S+)", unit, re.M)
    assert commands
    for command in commands:
        assert command == f"{venv[1]}/bin/dorfbot", command
    # the install steps in the unit's header create the same venv
    assert f"python3 -m venv {venv[1]} " in unit
    assert f"{venv[1]}/bin/pip install" in unit
