"""The wheel carries the bundled plugins inside the package, never as top-level ``plugins``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_carries_bundled_plugins(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("dorfbot-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dorfbot/bundled_plugins/marketplace/__init__.py" in names
    assert "dorfbot/bundled_plugins/calendar/locales/de/calendar.yaml" in names
    assert not any(n.startswith("plugins/") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[1]);"
         "from dorfbot.plugin_loader import discover, bundled_plugins_dir;"
         "print(bundled_plugins_dir()); print(sorted(c.name for c in discover()))",
         str(site)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )
    assert str(site / "dorfbot" / "bundled_plugins") in probe.stdout
    for name in ("marketplace", "calendar", "announcements", "links", "welcome"):
        assert name in probe.stdout


def test_plugins_is_not_an_importable_top_level_package(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import plugins"], capture_output=True, cwd=tmp_path, check=False
    )
    assert result.returncode != 0
