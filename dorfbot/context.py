"""What handlers receive: a command's context and typed views of room events.

Events arrive from the homeserver as untrusted JSON. These views accept only
well-formed events (``from_source`` returns None otherwise), so handlers never
meet a missing or non-string ``body``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dorfbot.commands import Args, CommandSpec
from dorfbot.config import VillageConfig
from dorfbot.i18n import Text, Translator
from dorfbot.matrix import Sent, reaction_key, txn_id
from dorfbot.roles import Role

if TYPE_CHECKING:
    from dorfbot.bot import Bot


@dataclass(frozen=True)
class MessageEvent:
    """An ``m.room.message`` that is not an edit."""

    room_id: str
    event_id: str
    sender: str
    msgtype: str
    body: str
    formatted_body: str | None
    ts: int
    content: dict[str, Any]

    @classmethod
    def from_source(cls, room_id: str, source: dict[str, Any]) -> MessageEvent | None:
        content = source.get("content")
        if source.get("type") != "m.room.message" or not isinstance(content, dict):
            return None
        body = content.get("body")
        msgtype = content.get("msgtype")
        event_id, sender = source.get("event_id"), source.get("sender")
        if not all(isinstance(v, str) for v in (body, msgtype, event_id, sender)):
            return None
        relates = content.get("m.relates_to")
        if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
            return None  # edits are not new commands
        formatted = content.get("formatted_body")
        return cls(
            room_id=room_id,
            event_id=str(event_id),
            sender=str(sender),
            msgtype=str(msgtype),
            body=str(body),
            formatted_body=formatted
            if isinstance(formatted, str) and content.get("format") == "org.matrix.custom.html"
            else None,
            ts=int(source.get("origin_server_ts") or 0),
            content=content,
        )


@dataclass(frozen=True)
class ReactionEvent:
    """An ``m.reaction`` annotation on another event."""

    room_id: str
    event_id: str
    sender: str
    target: str
    key: str
    ts: int

    @property
    def emoji(self) -> str:
        """The key as compared (:func:`dorfbot.matrix.reaction_key`): 👍🏽 and 👍️ are 👍."""
        return reaction_key(self.key)

    @classmethod
    def from_source(cls, room_id: str, source: dict[str, Any]) -> ReactionEvent | None:
        content = source.get("content")
        if source.get("type") != "m.reaction" or not isinstance(content, dict):
            return None
        rel = content.get("m.relates_to")
        if not isinstance(rel, dict) or rel.get("rel_type") != "m.annotation":
            return None
        target, key = rel.get("event_id"), rel.get("key")
        event_id, sender = source.get("event_id"), source.get("sender")
        if not all(isinstance(v, str) for v in (target, key, event_id, sender)):
            return None
        return cls(
            room_id,
            str(event_id),
            str(sender),
            str(target),
            str(key),
            int(source.get("origin_server_ts") or 0),
        )


@dataclass
class CommandContext:
    """Everything a command handler needs; its answers go through :meth:`answer`."""

    bot: Bot
    event: MessageEvent
    spec: CommandSpec
    args: Args
    village: VillageConfig | None
    room_kind: str
    role: Role
    t: Translator
    _sent: int = field(default=0, repr=False)

    @property
    def sender(self) -> str:
        return self.event.sender

    @property
    def room_id(self) -> str:
        return self.event.room_id

    @property
    def language(self) -> str:
        return self.t.language

    def key(self, purpose: str) -> str:
        """A transaction key for a send caused by this command (idempotent on retry)."""
        return txn_id(self.event.event_id, purpose)

    async def answer(self, key_or_text: str | Text, /, **params: Any) -> Sent:
        """Answer the command with a catalog text (or a ready :class:`Text`).

        An answer is what the asker is waiting for on screen, so it does not
        push (:meth:`dorfbot.matrix.Matrix.answer`). To reach someone else, a
        plugin tells them (``self.bot.matrix.tell``).
        """
        text = key_or_text if isinstance(key_or_text, Text) else self.t(key_or_text, **params)
        self._sent += 1
        return await self.bot.matrix.answer(
            self.room_id, self.event.event_id, text, key=self.key(f"reply:{self._sent}")
        )

    @property
    def require_village(self) -> VillageConfig:
        """The village; the router guarantees it for commands with ``needs_village``."""
        assert self.village is not None
        return self.village
