"""Running the installed ``dorfbot`` command the way a user does.

A user types ``.venv/bin/dorfbot ...`` in a shell whose working directory is
anywhere, with no ``PYTHONPATH`` pointing into a checkout. Tests that claim to
run "what a user runs" use :func:`installed_command` and :func:`user_env`, so
the package is found only through what ``pip install`` put into the venv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["installed_command", "user_env"]


def installed_command(venv_bin: Path | None = None) -> Path:
    """The ``dorfbot`` console script beside the running interpreter (or in ``venv_bin``)."""
    folder = venv_bin if venv_bin is not None else Path(sys.executable).parent
    script = folder / "dorfbot"
    if not script.is_file():
        raise FileNotFoundError(f"{script}: the dorfbot console script is not installed")
    return script


def user_env() -> dict[str, str]:
    """This process's environment without anything that would leak the checkout in."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.pop("VIRTUAL_ENV", None)
    return env
