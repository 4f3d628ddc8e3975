"""The bundled plugins are found at one place in the package, never as top-level ``plugins``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dorfbot.plugin_loader import BUNDLED_PLUGINS_DIR, bundled_plugins_dir

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_plugins_are_the_repository_plugins_folder() -> None:
    assert bundled_plugins_dir() == BUNDLED_PLUGINS_DIR
    assert BUNDLED_PLUGINS_DIR.resolve() == (ROOT / "plugins").resolve()


def test_plugins_is_not_an_importable_top_level_package(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import plugins"], capture_output=True, cwd=tmp_path, check=False
    )
    assert result.returncode != 0
