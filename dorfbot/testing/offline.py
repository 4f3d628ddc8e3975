"""A bot without a homeserver, for pure-unit tests of routing, permissions and parsing.

:class:`OfflineBot` loads every plugin on a temporary database and records what
the bot *would* send instead of sending it. It is for tables and properties
(who may run which command; no input crashes a handler; user text is escaped
in every output) — never as the proof that a feature works on Matrix; that is
what the real-homeserver tests in ``tests/integration`` are for.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dorfbot.bot import Bot
from dorfbot.config import Config, parse_config
from dorfbot.context import MessageEvent
from dorfbot.matrix import Sent as Delivered
from dorfbot.villages import RoomInfo

ROOM_KINDS = ("marketplace", "calendar", "announcements", "moderation", "chat")


@dataclass
class Sent:
    """One recorded send: target room, event type, content and the event ID handed back."""

    room_id: str
    event_type: str
    content: dict[str, Any]
    event_id: str = ""


@dataclass
class OfflineBot:
    """A prepared :class:`Bot` whose sends are recorded in :attr:`sent`."""

    bot: Bot
    sent: list[Sent] = field(default_factory=list)
    redacted: list[tuple[str, str]] = field(default_factory=list)
    """(room, event) of every redaction the bot sent."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    async def create(
        cls, workdir: Path, villages: int = 2, *, village_options: dict[str, Any] | None = None
    ) -> OfflineBot:
        """``village_options`` are merged into every village's config (e.g. ``moderation``)."""
        raw: dict[str, Any] = {
            "homeserver": "http://127.0.0.1:9",
            "user_id": "@bot:test",
            "password": "unused",
            "database": str(workdir / "offline.db"),
            "http": {"enabled": False},
            "admins": ["@admin:test"],
            "commands_per_minute": 1_000_000,
            "encryption": False,
            "villages": [
                {
                    "id": f"v{i}",
                    "name": f"Dorf {i}",
                    "rooms": {
                        **{k: f"!{k}{i}:test" for k in ROOM_KINDS if k != "chat"},
                        "chat": [f"!chat{i}:test"],
                    },
                    "moderators": [f"@mod{i}:test"],
                    "organizers": [f"@org{i}:test"],
                    "helpers": [f"@helper{i}:test"],
                    "categories": ["garten", "sonstiges"],
                    "districts": ["Nord", "Süd"],
                    # the first village has a public page with the marketplace
                    "web": {"public": i == 0, "marketplace": i == 0},
                    **(village_options or {}),
                }
                for i in range(villages)
            ],
        }
        config: Config = parse_config(raw, base_dir=workdir, env={})
        bot = Bot(config)
        await bot.prepare()
        for village in config.villages:
            for kind, room in village.rooms.all():
                bot.villages._rooms[room] = RoomInfo(village, kind, room)
                bot.villages._room_ids.setdefault((village.id, kind), []).append(room)
        offline = cls(bot)
        offline._patch()
        bot.matrix.ready.set()
        for plugin in bot.plugins.values():
            await plugin.start()  # jobs are added, but the scheduler never runs
        return offline

    def _patch(self) -> None:
        matrix = self.bot.matrix

        async def send(
            room_id: str,
            content: dict[str, Any],
            *,
            key: str | None = None,
            event_type: str = "m.room.message",
        ) -> Delivered:
            event_id = f"$sent{next(self._ids)}"
            self.sent.append(Sent(room_id, event_type, content, event_id))
            return Delivered.delivered(room_id, event_id)

        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        async def redact(room_id: str, event_id: str, *args: Any, **kwargs: Any) -> None:
            self.redacted.append((room_id, event_id))

        async def edits_of(room_id: str, event_id: str) -> list[str]:
            return [
                sent.event_id
                for sent in self.sent
                if sent.room_id == room_id
                and (sent.content.get("m.relates_to") or {}).get("rel_type") == "m.replace"
                and sent.content["m.relates_to"].get("event_id") == event_id
            ]

        async def room(*args: Any, **kwargs: Any) -> str:
            return f"!room{next(self._ids)}:test"

        async def no_state(*args: Any, **kwargs: Any) -> dict[str, Any]:
            return {}

        async def send_file(
            room_id: str, data: bytes, filename: str, mimetype: str, **kwargs: Any
        ) -> Delivered:
            event_id = f"$file{next(self._ids)}"
            self.sent.append(
                Sent(room_id, "m.room.message", {"msgtype": "m.file", "body": filename}, event_id)
            )
            return Delivered.delivered(room_id, event_id)

        matrix.send = send  # type: ignore[method-assign]
        matrix.redact = redact  # type: ignore[method-assign]
        matrix.edits_of = edits_of  # type: ignore[method-assign]
        matrix.put_state = room  # type: ignore[method-assign]
        matrix.get_state = no_state  # type: ignore[method-assign]
        matrix.open_private_room = room  # type: ignore[method-assign]
        matrix.create_direct_room = room  # type: ignore[method-assign]
        matrix._api = nothing  # type: ignore[method-assign]
        matrix.leave = nothing  # type: ignore[method-assign]
        matrix.send_file = send_file  # type: ignore[method-assign]

    async def command(
        self, room_id: str, sender: str, body: str, *, formatted_body: str | None = None
    ) -> str:
        """Dispatch one message as if it arrived; returns the router's outcome label."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if formatted_body is not None:
            content.update(format="org.matrix.custom.html", formatted_body=formatted_body)
        event = MessageEvent(
            room_id=room_id,
            event_id=f"$in{next(self._ids)}",
            sender=sender,
            msgtype="m.text",
            body=body,
            formatted_body=formatted_body,
            ts=0,
            content=content,
        )
        from dorfbot.commands import split_command

        split = split_command(body, self.bot.config.command_prefix)
        if split is None:
            await self.bot.on_message(event)
            await self.bot.jobs.wait()
            return "not a command"
        outcome = await self.bot.dispatch(event, *split)
        await self.bot.jobs.wait()  # background work (imports) answers before we return
        return outcome

    def replies(self) -> list[str]:
        """The plain bodies of everything recorded so far, oldest first."""
        return [str(s.content.get("body", "")) for s in self.sent]

    async def close(self) -> None:
        for plugin in self.bot.plugins.values():
            plugin.scheduler.cancel_all()
        await self.bot.db.close()
