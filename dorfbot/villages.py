"""Villages and their rooms: which village a room, a user or a command belongs to."""

from __future__ import annotations

from dataclasses import dataclass

from dorfbot.config import Config, VillageConfig
from dorfbot.matrix import Matrix
from dorfbot.roles import Role, role_of

DM = "dm"


@dataclass(frozen=True)
class RoomInfo:
    """A configured room: its village and kind (marketplace, calendar, ..., chat)."""

    village: VillageConfig
    kind: str
    room_id: str


class Villages:
    """Room IDs resolved from the config, and lookups over them."""

    def __init__(self, config: Config, matrix: Matrix) -> None:
        self.config = config
        self.matrix = matrix
        self._rooms: dict[str, RoomInfo] = {}
        self._room_ids: dict[tuple[str, str], list[str]] = {}

    async def resolve(self) -> list[str]:
        """Resolve aliases to room IDs; returns problems (unresolvable rooms)."""
        problems: list[str] = []
        for village in self.config.villages:
            for kind, room in village.rooms.all():
                try:
                    room_id = await self.matrix.resolve(room)
                except Exception as exc:
                    problems.append(f"{village.id}: room {room} ({kind}): {exc}")
                    continue
                self._rooms[room_id] = RoomInfo(village, kind, room_id)
                self._room_ids.setdefault((village.id, kind), []).append(room_id)
        return problems

    def room(self, room_id: str) -> RoomInfo | None:
        return self._rooms.get(room_id)

    def room_id(self, village: VillageConfig, kind: str) -> str | None:
        """The room of a kind (the first, for chat rooms) or None if not configured."""
        ids = self._room_ids.get((village.id, kind))
        return ids[0] if ids else None

    def room_ids(self, village: VillageConfig) -> list[str]:
        """Every configured room of a village."""
        return [rid for rid, info in self._rooms.items() if info.village.id == village.id]

    def all_room_ids(self) -> list[str]:
        return list(self._rooms)

    def get(self, village_id: str) -> VillageConfig | None:
        return self.config.village(village_id)

    def of_user(self, user_id: str) -> list[VillageConfig]:
        """Villages where the user is a member of a room or holds a configured role."""
        found: list[VillageConfig] = []
        for village in self.config.villages:
            roles = (*village.moderators, *village.organizers, *village.helpers)
            if (
                user_id in roles
                or user_id in self.config.admins
                or any(user_id in self.matrix.members(rid) for rid in self.room_ids(village))
            ):
                found.append(village)
        return found

    def moderators(self, village: VillageConfig) -> list[str]:
        """The village's moderators who are in its moderation room (whom a queue item tells).

        Moderators by config or by power level there, admins too; not the bot.
        Sorted, so the same queue item always names them in the same order.
        """
        room_id = self.room_id(village, "moderation")
        if room_id is None:
            return []
        return sorted(
            user
            for user in self.matrix.members(room_id)
            if user != self.matrix.user_id
            and role_of(self.config, village, user, self.matrix.power_level(room_id, user))
            >= Role.MODERATOR
        )

    def moderation_power(self, village: VillageConfig, user_id: str) -> int | None:
        """Power level in the moderation room, counted only while the user is a member."""
        room_id = self.room_id(village, "moderation")
        if room_id is None or user_id not in self.matrix.members(room_id):
            return None
        return self.matrix.power_level(room_id, user_id)
