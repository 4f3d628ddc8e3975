"""Welcome: greets a new member of a village room once per village, never twice."""

from __future__ import annotations

from typing import Any

from dorfbot.config import VillageConfig
from dorfbot.i18n import Text
from dorfbot.matrix import pill, txn_id
from dorfbot.plugin import Plugin
from dorfbot.storage import sql_script


class WelcomePlugin(Plugin):
    """Sends the village's welcome text to people joining any of its rooms, once."""

    name = "welcome"
    migrations = [
        sql_script(
            "CREATE TABLE welcome_greeted (village TEXT NOT NULL, user_id TEXT NOT NULL, "
            "greeted_at REAL NOT NULL, PRIMARY KEY (village, user_id))"
        )
    ]

    async def on_member_join(self, village: VillageConfig, room_id: str, user_id: str) -> None:
        if user_id == self.bot.matrix.user_id:
            return
        # Claim first: the greeting goes out at most once per person and village,
        # also when they join several rooms at once or rejoin later.
        claimed = await self.db.execute_rowcount(
            "INSERT OR IGNORE INTO welcome_greeted (village, user_id, greeted_at) "
            "VALUES (?, ?, strftime('%s','now'))",
            (village.id, user_id),
        )
        if not claimed:
            return
        t = self.bot.translator(village)
        custom = Text.escaped(village.welcome) if village.welcome else None
        text = t(
            "welcome.greeting",
            user=pill(user_id),
            village=village.name,
            text=custom or t("welcome.default_text", village=village.name),
            prefix=self.bot.config.command_prefix,
        )
        event_id = await self.bot.matrix.tell(
            room_id, text, to=[user_id], key=txn_id("welcome", village.id, user_id)
        )
        await self.bot.moderation.items.record_sent(room_id, event_id, users=[user_id])

    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        rows = await self.db.fetchall(
            "SELECT village, greeted_at FROM welcome_greeted WHERE user_id = ?", (user_id,)
        )
        return {"greeted": [dict(r) for r in rows]} if rows else {}

    async def forget_user(self, user_id: str) -> None:
        await self.db.execute("DELETE FROM welcome_greeted WHERE user_id = ?", (user_id,))
