"""Roles: who may do what in which village.

Roles come from the config (``admins``; per village ``moderators``,
``organizers``, ``helpers``) and from Matrix: power level >= 50 in a village's
moderation room makes a moderator of that village. Higher roles include the
lower ones.
"""

from __future__ import annotations

from enum import IntEnum

from dorfbot.config import Config, VillageConfig

MODERATOR_POWER_LEVEL = 50


class Role(IntEnum):
    """Ordered roles; comparisons express "at least"."""

    RESIDENT = 0
    HELPER = 1
    ORGANIZER = 2
    MODERATOR = 3
    ADMIN = 4

    @property
    def key(self) -> str:
        """Catalog key of the role's name."""
        return f"role.{self.name.lower()}"


def configured_role(config: Config, village: VillageConfig | None, user_id: str) -> Role:
    """The role a user has by configuration alone."""
    if user_id in config.admins:
        return Role.ADMIN
    if village is None:
        return Role.RESIDENT
    if user_id in village.moderators:
        return Role.MODERATOR
    if user_id in village.organizers:
        return Role.ORGANIZER
    if user_id in village.helpers:
        return Role.HELPER
    return Role.RESIDENT


def role_of(
    config: Config,
    village: VillageConfig | None,
    user_id: str,
    moderation_power_level: int | None = None,
) -> Role:
    """The effective role, including power level in the village's moderation room."""
    role = configured_role(config, village, user_id)
    if (
        village is not None
        and role < Role.MODERATOR
        and moderation_power_level is not None
        and moderation_power_level >= MODERATOR_POWER_LEVEL
    ):
        return Role.MODERATOR
    return role
