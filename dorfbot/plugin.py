"""The plugin base class and the hook contracts the core calls.

A plugin is a class deriving from :class:`Plugin`, in its own package under
``plugins/`` (or installed through the ``dorfbot.plugins`` entry-point group).
It declares:

- ``name`` — its config section and storage scope;
- ``migrations`` — numbered async schema upgrades (see :mod:`dorfbot.storage`);
- ``defaults`` — its config section's default values;
- commands, as methods decorated with :func:`dorfbot.commands.command`;
- message catalogs in ``locales/<lang>/*.yaml`` beside its module;
- any of the hook methods below it wants.

The core gives each plugin its ``bot`` (the core services), ``db``,
``scheduler``, ``log`` and ``config`` before calling :meth:`Plugin.start`, and
removes its commands and jobs after :meth:`Plugin.stop`, so a plugin cannot
forget to clean up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dorfbot.commands import COMMAND_ATTR, CommandSpec
from dorfbot.config import VillageConfig
from dorfbot.i18n import Text, Translator
from dorfbot.items import Item
from dorfbot.storage import Database, Migration

if TYPE_CHECKING:
    from dorfbot.bot import Bot
    from dorfbot.context import MessageEvent, ReactionEvent
    from dorfbot.webpage import FeedEntry, WebPage, WebSection


class Scheduler:
    """A plugin's view of the one APScheduler: jobs named and removed per plugin.

    The database is the truth; jobs are a cache that plugins rebuild in
    :meth:`Plugin.start` from what they stored.
    """

    def __init__(self, scheduler: AsyncIOScheduler, scope: str) -> None:
        self._scheduler = scheduler
        self._scope = scope
        self._ids: set[str] = set()

    def _id(self, job_id: str) -> str:
        full = f"{self._scope}:{job_id}"
        self._ids.add(full)
        return full

    def at(
        self, job_id: str, when: datetime, func: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        """Run ``func(*args)`` once at ``when`` (an aware datetime)."""
        self._scheduler.add_job(
            func,
            DateTrigger(run_date=when),
            args=args,
            id=self._id(job_id),
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def daily(
        self,
        job_id: str,
        hour: int,
        minute: int,
        tz: Any,
        func: Callable[..., Awaitable[Any]],
        *args: Any,
    ) -> None:
        """Run ``func(*args)`` every day at a local wall-clock time."""
        self._scheduler.add_job(
            func,
            CronTrigger(hour=hour, minute=minute, timezone=tz),
            args=args,
            id=self._id(job_id),
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def every(
        self, job_id: str, seconds: float, func: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        """Run ``func(*args)`` every ``seconds``."""
        self._scheduler.add_job(
            func,
            IntervalTrigger(seconds=seconds),
            args=args,
            id=self._id(job_id),
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def cancel(self, job_id: str) -> None:
        full = f"{self._scope}:{job_id}"
        self._ids.discard(full)
        if self._scheduler.get_job(full):
            self._scheduler.remove_job(full)

    def cancel_all(self) -> None:
        for full in list(self._ids):
            if self._scheduler.get_job(full):
                self._scheduler.remove_job(full)
        self._ids.clear()


class Plugin:
    """Base class of every feature plugin. Override the hooks you need."""

    name: ClassVar[str] = ""
    migrations: ClassVar[Sequence[Migration]] = ()
    defaults: ClassVar[dict[str, Any]] = {}

    bot: Bot
    db: Database
    scheduler: Scheduler
    log: logging.Logger
    config: dict[str, Any]
    path: Path

    # ----------------------------------------------------------- lifecycle hooks

    async def start(self) -> None:
        """Called after migrations, before the first sync: rebuild jobs, add routes."""

    async def stop(self) -> None:
        """Called at shutdown, before the core removes the plugin's commands and jobs."""

    async def on_synced(self) -> None:
        """Called after every sync once the bot is ready (cheap checks only)."""

    # -------------------------------------------------------------- event hooks

    async def on_message(self, event: MessageEvent) -> None:
        """A message in a village room or DM that is not a command (e.g. a file)."""

    async def on_reaction(self, event: ReactionEvent) -> None:
        """A reaction (``m.annotation``) in a village room."""

    async def on_member_join(self, village: VillageConfig, room_id: str, user_id: str) -> None:
        """Someone joined a room of a village."""

    async def on_private_room_join(self, room_id: str, user_id: str) -> None:
        """Someone joined a room of the bot outside the villages (one a plugin opened).

        Room messages push only to people who have joined, so a plugin that
        opens a room for people it invited speaks there once they are in.
        """

    async def on_redaction(self, room_id: str, redacted_event: str, sender: str) -> None:
        """An event in a village room was redacted (e.g. a reaction taken back)."""

    # ------------------------------------------------------------ item hooks
    # For plugins whose items go through the moderation queue (dorfbot.moderation).

    def render_item(self, item: Item, t: Translator) -> Text:
        """The item as shown in the queue and when published (escaped user content)."""
        return Text.escaped(item.title)

    async def publish_item(self, item: Item) -> tuple[str, str] | None:
        """Post an approved item into its room; returns (room ID, event ID)."""
        return None

    async def on_item_closed(self, item: Item) -> None:
        """An item of this plugin left the open states (removed, deleted, done, ...)."""

    # ------------------------------------------------------------ privacy hooks

    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        """Everything this plugin stores about ``user_id`` (for ``!meinedaten``)."""
        return {}

    async def forget_user(self, user_id: str) -> None:
        """Erase or anonymise everything this plugin stores about ``user_id``.

        Part of ``!vergessen``: runs inside the erasure's one transaction, before
        the core deletes the user's items (so rows can still be found by item).
        Database statements only, no Matrix sends (the core redacts messages
        after the commit). Raising rolls the whole erasure back.
        """

    async def purge_items(self, item_ids: list[int]) -> None:
        """Delete this plugin's rows of items the core is about to delete.

        Called by ``!vergessen`` (the user's items) and the retention purge,
        inside the caller's transaction; database statements only. A plugin
        whose tables reference ``items(id)`` must delete those rows here, or the
        core's ``DELETE FROM items`` fails and the caller's transaction rolls back.
        """

    # ------------------------------------------------------------ web hooks
    # For villages with ``web.public`` (dorfbot.webpage): the public page and feed.

    async def web_sections(self, page: WebPage) -> list[WebSection]:
        """This plugin's parts of the village's public page (``page.village``).

        Show only published content, never who posted it. Templates live in the
        plugin's ``templates/`` folder and are autoescaped Jinja2.
        """
        return []

    async def web_feed(self, page: WebPage) -> list[FeedEntry]:
        """This plugin's entries of the village's Atom feed (newest first is not required)."""
        return []

    # ------------------------------------------------------------------ helpers

    @classmethod
    def declared_commands(cls) -> list[tuple[str, CommandSpec]]:
        """(method name, spec) of every command, in the order the class defines them."""
        found: dict[str, CommandSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, func in vars(klass).items():
                spec = getattr(func, COMMAND_ATTR, None)
                if isinstance(spec, CommandSpec):
                    found[attr] = spec
        return list(found.items())

    def command_specs(self) -> list[CommandSpec]:
        """The commands this plugin declares, bound to this instance."""
        return [
            CommandSpec(**{**spec.__dict__, "handler": getattr(self, attr), "plugin": self.name})
            for attr, spec in self.declared_commands()
        ]
