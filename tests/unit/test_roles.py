"""The role table: config lists, power level in the moderation room, ordering."""

from __future__ import annotations

from pathlib import Path

from dorfbot.config import parse_config
from dorfbot.roles import Role, role_of


def config():
    return parse_config(
        {
            "homeserver": "http://hs",
            "user_id": "@bot:x",
            "password": "p",
            "admins": ["@admin:x"],
            "villages": [
                {
                    "id": "a",
                    "rooms": {"moderation": "!ma:x"},
                    "moderators": ["@mod:x"],
                    "organizers": ["@org:x"],
                    "helpers": ["@help:x"],
                },
                {"id": "b", "rooms": {"moderation": "!mb:x"}},
            ],
        },
        base_dir=Path("."),
        env={},
    )


def test_configured_roles_are_per_village() -> None:
    cfg = config()
    a, b = cfg.villages
    assert role_of(cfg, a, "@mod:x") is Role.MODERATOR
    assert role_of(cfg, b, "@mod:x") is Role.RESIDENT
    assert role_of(cfg, a, "@org:x") is Role.ORGANIZER
    assert role_of(cfg, a, "@help:x") is Role.HELPER
    assert role_of(cfg, b, "@admin:x") is Role.ADMIN
    assert role_of(cfg, None, "@admin:x") is Role.ADMIN


def test_power_level_makes_moderator_but_never_demotes() -> None:
    cfg = config()
    a = cfg.villages[0]
    assert role_of(cfg, a, "@someone:x", moderation_power_level=50) is Role.MODERATOR
    assert role_of(cfg, a, "@someone:x", moderation_power_level=49) is Role.RESIDENT
    assert role_of(cfg, a, "@admin:x", moderation_power_level=0) is Role.ADMIN


def test_roles_are_ordered() -> None:
    assert Role.ADMIN > Role.MODERATOR > Role.ORGANIZER > Role.HELPER > Role.RESIDENT
