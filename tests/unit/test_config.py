"""Config validation: every problem reported with its key path, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dorfbot.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def minimal() -> dict:
    return {
        "homeserver": "http://localhost:8008",
        "user_id": "@dorfbot:example.org",
        "password": "pw",
        "villages": [
            {"id": "musterdorf", "name": "Musterdorf", "rooms": {"moderation": "!mod:example.org"}}
        ],
    }


def problems(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base_dir=Path("/srv/dorfbot"), env={})
    return info.value.problems


def test_minimal_config_and_defaults() -> None:
    config = parse_config(minimal(), base_dir=Path("/srv/dorfbot"), env={})
    village = config.villages[0]
    assert village.timezone == "Europe/Berlin" and village.language == "de"
    assert village.moderation.posts == "pre"
    assert config.command_prefix == "!"
    assert config.database == Path("/srv/dorfbot/data/dorfbot.db")
    assert config.http.listen_host == "127.0.0.1"
    assert config.max_catchup_hours == 24


def test_missing_moderation_room_names_key_path() -> None:
    raw = minimal()
    raw["villages"][0]["rooms"] = {"marketplace": "!m:example.org"}
    assert "villages[0].rooms.moderation: missing" in problems(raw)


def test_all_problems_at_once() -> None:
    raw = minimal()
    del raw["user_id"]
    raw["villages"][0].update(id="Muster Dorf", language="fr", timezone="Mars/Olympus")
    raw["villages"][0]["moderation"] = {"posts": "sometimes"}
    raw["villages"][0]["moderators"] = ["not-a-user"]
    found = problems(raw)
    assert "user_id: missing" in found
    assert any(p.startswith("villages[0].id: invalid value") for p in found)
    assert any(p.startswith("villages[0].language: must be one of") for p in found)
    assert any(p.startswith("villages[0].timezone: unknown time zone") for p in found)
    assert any(p.startswith("villages[0].moderation.posts:") for p in found)
    assert any(p.startswith("villages[0].moderators[0]: invalid value") for p in found)


def test_secrets_from_environment() -> None:
    raw = minimal()
    del raw["password"]
    assert any(p.startswith("password: missing") for p in problems(raw))
    config = parse_config(raw, base_dir=Path("."), env={"DORFBOT_ACCESS_TOKEN": "tok"})
    assert config.access_token == "tok"


def test_duplicate_village_ids() -> None:
    raw = minimal()
    raw["villages"].append(dict(raw["villages"][0]))
    assert "villages[1].id: duplicate id 'musterdorf'" in problems(raw)


def test_not_a_mapping() -> None:
    assert problems(["a"]) == ["(top level): must be a mapping of keys"]


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**minimal(), "database": "state/db.sqlite"}))
    assert load_config(path).database == tmp_path / "conf" / "state" / "db.sqlite"


def test_example_config_is_valid() -> None:
    load_config(ROOT / "config.example.yaml")


def test_check_config_command_prints_key_paths(tmp_path: Path) -> None:
    bad = minimal()
    bad["villages"][0]["rooms"] = {}
    bad["http"] = {"listen": "everywhere"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [sys.executable, "-m", "dorfbot", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "villages[0].rooms.moderation: missing" in result.stderr
    assert "http.listen: must look like" in result.stderr
    assert "Traceback" not in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("villages: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "dorfbot", "check-config", "-c", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr
