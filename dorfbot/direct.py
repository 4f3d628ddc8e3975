"""Direct messages: which room is whose DM, and private delivery.

"This room is X's DM" is a fact the bot stores, not a guess from the member
count. A room is recorded as X's DM when the bot joined it on X's own invite
marked ``is_direct`` or created it for X. It counts as X's DM only while, in
addition,

- its join rule is ``invite`` (not public, not open to a space),
- its history is not ``world_readable``,
- its members, joined or invited, are exactly the bot and X.

So a ``!kontakt`` room whose asker made it public and left never becomes the
author's DM, however it looks after a restart. Anything private (a data
export, an erasure confirmation, a block notice) goes through
:meth:`DirectRooms.tell` or :meth:`DirectRooms.send_file`: to such a room, else
to a new encrypted one.

The records live in the ``direct_rooms`` table (scope ``direct``) and are
mirrored into the bot's ``m.direct`` account data, so clients logged in as the
bot show the rooms as direct chats.
"""

from __future__ import annotations

import logging
import time

from dorfbot.i18n import Text
from dorfbot.matrix import Matrix, MatrixError, Sent
from dorfbot.storage import Database, sql_script

log = logging.getLogger(__name__)

MIGRATIONS = [
    sql_script(
        "CREATE TABLE direct_rooms (room_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
        "created_at REAL NOT NULL)",
        "CREATE INDEX direct_rooms_user ON direct_rooms (user_id)",
    )
]

M_DIRECT = "m.direct"


class DirectRooms:
    """The recorded DM rooms and the one way to send something privately."""

    def __init__(self, matrix: Matrix, db: Database) -> None:
        self.matrix = matrix
        self.db = db
        self._owner: dict[str, str] = {}

    async def load(self) -> None:
        """Read the records (at start-up, after migrations)."""
        rows = await self.db.fetchall("SELECT room_id, user_id FROM direct_rooms")
        self._owner = {str(r["room_id"]): str(r["user_id"]) for r in rows}

    # ------------------------------------------------------------------ checks

    def owner(self, room_id: str) -> str | None:
        """The person whose DM this room is right now, or None."""
        user_id = self._owner.get(room_id)
        if user_id is None or not self._is_private_with(room_id, user_id):
            return None
        return user_id

    def is_dm_of(self, room_id: str, user_id: str) -> bool:
        return self.owner(room_id) == user_id

    def _is_private_with(self, room_id: str, user_id: str) -> bool:
        room = self.matrix.client.rooms.get(room_id)
        if room is None or room_id in self.matrix.village_rooms:
            return False
        members = set(room.users) | set(room.invited_users)
        return (
            members == {self.matrix.user_id, user_id}
            and room.join_rule == "invite"
            and room.history_visibility != "world_readable"
        )

    # ----------------------------------------------------------------- records

    async def record(self, room_id: str, user_id: str) -> None:
        """Note ``room_id`` as ``user_id``'s DM (database and ``m.direct``)."""
        await self.db.execute(
            "INSERT INTO direct_rooms (room_id, user_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT(room_id) DO UPDATE SET user_id = excluded.user_id",
            (room_id, user_id, time.time()),
        )
        self._owner[room_id] = user_id
        await self._mirror_m_direct()

    def rooms_of(self, user_id: str) -> list[str]:
        """Every room recorded as ``user_id``'s DM, private now or not."""
        return [room_id for room_id, owner in self._owner.items() if owner == user_id]

    async def forget_user(self, user_id: str) -> None:
        """Delete ``user_id``'s records from the database (erasure, inside its transaction).

        The rooms stay known until :meth:`forgotten` is called after the commit,
        so a rolled-back erasure leaves the DMs as they were.
        """
        await self.db.execute("DELETE FROM direct_rooms WHERE user_id = ?", (user_id,))

    async def forgotten(self, user_id: str) -> list[str]:
        """After the erasure committed: drop the rooms from memory and ``m.direct``;
        returns them, which the caller may leave."""
        rooms = self.rooms_of(user_id)
        if not rooms:
            return []
        for room_id in rooms:
            del self._owner[room_id]
        await self._mirror_m_direct()
        return rooms

    async def _mirror_m_direct(self) -> None:
        """Write the records into the bot's ``m.direct`` (best effort: the table rules)."""
        by_user: dict[str, list[str]] = {}
        for room_id, user_id in sorted(self._owner.items()):
            by_user.setdefault(user_id, []).append(room_id)
        try:
            await self.matrix.set_account_data(M_DIRECT, by_user)
        except MatrixError as exc:
            log.warning("could not update m.direct: %s", exc)

    # ---------------------------------------------------------------- delivery

    async def room_for(self, user_id: str, name: str) -> str:
        """``user_id``'s DM with the bot: a recorded private one, else a new encrypted one."""
        for room_id in self.rooms_of(user_id):
            if self._is_private_with(room_id, user_id):
                return room_id
        room_id = await self.matrix.create_direct_room(user_id, name)
        await self.record(room_id, user_id)
        log.info("opened DM %s", room_id)
        return room_id

    async def tell(self, user_id: str, text: Text, *, key: str, room_name: str) -> tuple[str, Sent]:
        """Send ``text`` to ``user_id`` privately; returns the room it went to and the event.

        It is told (:meth:`Matrix.tell`), so it pushes.
        """
        room_id = await self.room_for(user_id, room_name)
        sent = await self.matrix.tell(room_id, text, to=[user_id], key=key)
        return room_id, sent

    async def send_file(
        self,
        user_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
        *,
        key: str,
        room_name: str,
    ) -> str:
        """Send a file to ``user_id`` privately (encrypted where the room is); returns the room."""
        room_id = await self.room_for(user_id, room_name)
        await self.matrix.send_file(room_id, data, filename, mimetype, key=key)
        return room_id
