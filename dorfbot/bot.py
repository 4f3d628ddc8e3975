"""The composition root: config, storage, Matrix, plugins, scheduler and HTTP.

:class:`Bot` owns the lifecycle (``start``/``run``/``stop``) and routes each
room event from :class:`~dorfbot.sync.EventStream` to commands and plugin
hooks. Plugins see it as ``self.bot`` and use its services: ``matrix`` (the
sending API), ``villages``, ``translator()``, ``db``, ``web`` (and ``pages``, the
villages' public web pages of :mod:`dorfbot.webpage`), ``jobs`` (long work off the
command loop, :mod:`dorfbot.jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dorfbot import metrics
from dorfbot.commands import (
    CommandSpec,
    CommandTable,
    RateLimiter,
    Scope,
    parse_args,
    split_command,
    split_unprefixed,
)
from dorfbot.config import Config, VillageConfig
from dorfbot.context import CommandContext, MessageEvent, ReactionEvent
from dorfbot.crosssigning import ensure_cross_signed
from dorfbot.direct import MIGRATIONS as DIRECT_MIGRATIONS
from dorfbot.direct import DirectRooms
from dorfbot.i18n import CORE_LOCALES, Catalogs, Translator
from dorfbot.jobs import Jobs
from dorfbot.matrix import Matrix, txn_id
from dorfbot.moderation import Blocked, Moderation
from dorfbot.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from dorfbot.plugin import Plugin, Scheduler
from dorfbot.plugin_loader import discover, locales_dir
from dorfbot.roles import Role, role_of
from dorfbot.storage import Database
from dorfbot.sync import MIGRATIONS as SYNC_MIGRATIONS
from dorfbot.sync import EventStream
from dorfbot.villages import DM, Villages
from dorfbot.web import WebServer
from dorfbot.webpage import PublicPages

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10
DM_HINT_SECONDS = 3600


class Bot:
    """One dorfbot process serving every configured village."""

    def __init__(self, config: Config, *, plugin_classes: list[type[Plugin]] | None = None) -> None:
        self.config = config
        self.db = Database(config.database)
        self.matrix = Matrix(
            config.homeserver,
            config.user_id,
            config.data_dir,
            device_name=config.device_name,
            encryption=config.encryption,
            trust=config.trust,
            send_window=config.send_window,
        )
        self.villages = Villages(config, self.matrix)
        self.direct = DirectRooms(self.matrix, self.db)
        self.catalogs = Catalogs()
        self.catalogs.add_dir(CORE_LOCALES)
        self.commands = CommandTable()
        self.rate_limiter = RateLimiter(config.commands_per_minute)
        self.aps = AsyncIOScheduler(timezone="UTC")
        self.metrics = metrics.Metrics()
        self.jobs = Jobs(on_failure=self.metrics.errors.inc)
        self.web = WebServer(config.http, self)
        self.pages = PublicPages(self)
        self.plugins: dict[str, Plugin] = {}
        self._plugin_classes = plugin_classes
        self.stream = EventStream(
            self.matrix,
            self.db,
            on_event=self.on_event,
            on_invite=self.on_invite,
            on_synced=self._on_synced,
            max_catchup_hours=config.max_catchup_hours,
        )
        self.moderation = Moderation(self)
        self._undecryptable_notified: set[str] = set()
        self._dm_hinted: dict[str, float] = {}
        self._cross_signing_done = False
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- services

    def translator(self, village: VillageConfig | None) -> Translator:
        """The catalogs in the village's language (German without a village)."""
        return self.catalogs.translator(village.language if village else "de")

    def plugin(self, name: str) -> Plugin | None:
        return self.plugins.get(name)

    def role_in(self, village: VillageConfig | None, user_id: str) -> Role:
        """A user's role in a village, from config and the moderation room's power levels."""
        power = self.villages.moderation_power(village, user_id) if village else None
        return role_of(self.config, village, user_id, power)

    # ---------------------------------------------------------------- lifecycle

    async def prepare(self) -> None:
        """Open storage and load the plugins (migrations, catalogs, commands); no network."""
        await self.db.open()
        try:
            await self.db.claim()
        except BaseException:
            await self.db.close()  # nothing of this bot may keep the process alive
            raise
        await self.db.migrate("sync", SYNC_MIGRATIONS)
        await self.db.migrate("direct", DIRECT_MIGRATIONS)
        await self.db.migrate("outbox", OUTBOX_MIGRATIONS)
        await self.direct.load()
        await self._load_plugins()

    async def start(self) -> None:
        """Prepare, log in, start plugins and the web server; then sync in the background."""
        await self.prepare()
        await self.matrix.login(self.config.password, self.config.access_token)
        await self.matrix.window.load(self.db)  # sends a crash left in flight go out first
        for problem in await self.villages.resolve():
            log.error("room not found: %s", problem)
        self.matrix.village_rooms = set(self.villages.all_room_ids())
        for plugin in self.plugins.values():
            await plugin.start()
        self.aps.start()
        self.pages.add_routes()
        await self.web.start()
        self._task = asyncio.create_task(self.stream.run(), name="dorfbot-sync")
        log.info("dorfbot started as %s with %d plugins", self.matrix.user_id, len(self.plugins))

    async def _load_plugins(self) -> None:
        classes = self._plugin_classes if self._plugin_classes is not None else discover()
        for cls in classes:
            section = self.config.plugins.get(cls.name, {})
            if section.get("enabled", True) is False:
                continue
            plugin = cls()
            plugin.bot = self
            plugin.db = self.db
            plugin.log = logging.getLogger(f"dorfbot.plugin.{cls.name}")
            plugin.config = {**cls.defaults, **section}
            plugin.scheduler = Scheduler(self.aps, cls.name)
            await self.db.migrate(cls.name, cls.migrations)
            self.catalogs.add_dir(locales_dir(cls))
            for spec in plugin.command_specs():
                self.commands.add(spec)
            self.plugins[cls.name] = plugin

    async def wait_ready(self, timeout: float = 60) -> None:
        """Until the first sync is done (room state known, sends allowed)."""
        await asyncio.wait_for(self.matrix.ready.wait(), timeout)

    async def run(self) -> None:
        """Start and run until cancelled or stopped.

        Stopping also covers a start that never finished (a signal while the
        homeserver is still unreachable): what was opened is closed, so the
        process can exit.
        """
        try:
            await self.start()
            assert self._task is not None
            await self._task
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.stream.stop()
        if self._task is not None and not self._task.done() and self.stream.in_round:
            # Let the round in progress finish (replies sent *and* recorded) rather than
            # cutting a handler between its send and its bookkeeping.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_SECONDS)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.jobs.stop()
        for name, plugin in reversed(list(self.plugins.items())):
            try:
                await plugin.stop()
            except Exception:
                log.exception("plugin %s failed to stop", name)
            plugin.scheduler.cancel_all()
            self.commands.remove_plugin(name)
        self.plugins.clear()
        # Replies already handed to the window go out; what does not make it in
        # time stays in the outbox and is resent (same transaction IDs) next start.
        if not await self.matrix.window.drain(STOP_GRACE_SECONDS):
            log.warning("stopping with messages still in flight; they are resent at the next start")
        await self.matrix.window.close()
        if self.aps.running:
            self.aps.shutdown(wait=False)
        await self.web.stop()
        await self.matrix.close()
        await self.db.close()

    # ------------------------------------------------------------------ events

    async def _on_synced(self) -> None:
        self.metrics.sync_lag.set(0)
        if not self._cross_signing_done and self.config.encryption:
            # after the first round: the device's own keys are uploaded by then
            self._cross_signing_done = True
            try:
                await ensure_cross_signed(self.matrix, self.config.data_dir, self.config.password)
            except Exception as exc:
                log.warning("cross-signing the bot's device failed: %s", exc)
        for plugin in list(self.plugins.values()):
            try:
                await plugin.on_synced()
            except Exception:
                log.exception("plugin %s on_synced failed", plugin.name)

    async def on_invite(self, room_id: str, inviter: str | None, is_direct: bool) -> None:
        """Join configured rooms, rooms from admins, and DMs from village members.

        A DM (an invite marked ``is_direct``) is recorded as the inviter's, see
        :mod:`dorfbot.direct`.
        """
        configured = room_id in self.villages.all_room_ids()
        from_admin = inviter in self.config.admins
        from_member = bool(inviter and self.villages.of_user(inviter))
        direct = is_direct and not configured and inviter is not None
        if configured or from_admin or (direct and from_member):
            log.info("joining %s (invited by %s)", room_id, inviter)
            try:
                await self.matrix.join(room_id)
            except Exception as exc:
                log.warning("could not join %s: %s", room_id, exc)
                return
            if direct and inviter is not None:
                await self.direct.record(room_id, inviter)
        else:
            log.info("declining invite to %s from %s", room_id, inviter)
            try:
                await self.matrix.leave(room_id)
            except Exception as exc:
                log.warning("could not decline %s: %s", room_id, exc)

    async def on_event(self, room_id: str, source: dict[str, Any]) -> None:
        """Route one new room event (called exactly once per event)."""
        if source.get("dorfbot_undecryptable"):
            await self._on_undecryptable(room_id, source)
            return
        kind = source.get("type")
        if kind == "m.room.message":
            message = MessageEvent.from_source(room_id, source)
            if message is not None:
                await self.on_message(message)
        elif kind == "m.reaction":
            reaction = ReactionEvent.from_source(room_id, source)
            info = self.villages.room(room_id)
            if reaction is not None and info is not None:
                await self._each_plugin("on_reaction", reaction)
        elif kind == "m.room.redaction":
            content = source.get("content") or {}
            # room v11+ carry the target in content, older versions at the top level
            redacts = (content.get("redacts") if isinstance(content, dict) else None) or source.get(
                "redacts"
            )
            if isinstance(redacts, str) and self.villages.room(room_id) is not None:
                await self._each_plugin("on_redaction", room_id, redacts, str(source.get("sender")))
        elif kind == "m.room.member":
            info = self.villages.room(room_id)
            content = source.get("content") or {}
            if (
                isinstance(content, dict)
                and content.get("membership") == "join"
                and source.get("state_key") == source.get("sender")
                and (source.get("unsigned") or {}).get("prev_content", {}).get("membership")
                != "join"
            ):
                joiner = str(source.get("sender"))
                if info is not None:
                    await self._each_plugin("on_member_join", info.village, room_id, joiner)
                else:
                    await self._each_plugin("on_private_room_join", room_id, joiner)

    async def _each_plugin(self, hook: str, *args: Any) -> None:
        for plugin in list(self.plugins.values()):
            try:
                await getattr(plugin, hook)(*args)
            except Exception:
                log.exception("plugin %s %s failed", plugin.name, hook)

    async def _on_undecryptable(self, room_id: str, source: dict[str, Any]) -> None:
        sender = str(source.get("sender"))
        if sender in self._undecryptable_notified or self.villages.room(room_id) is None:
            return
        self._undecryptable_notified.add(sender)
        info = self.villages.room(room_id)
        t = self.translator(info.village if info else None)
        await self.matrix.answer(
            room_id,
            str(source.get("event_id")),
            t("core.undecryptable"),
            key=txn_id(source.get("event_id"), "undecryptable"),
        )

    async def on_message(self, event: MessageEvent) -> None:
        split = split_command(event.body, self.config.command_prefix)
        if split is None and self._in_own_dm(event):
            # In a DM the prefix is optional: "Hilfe", "angebote", "Biete Fahrrad".
            split = split_unprefixed(event.body)
            if split is not None and self.commands.get(split[0]) is None:
                split = None
            if split is None and event.msgtype == "m.text":
                await self._dm_hint(event)
        if split is None:
            await self._each_plugin("on_message", event)
            return
        started = time.monotonic()
        name, rest = split
        outcome = await self.dispatch(event, name, rest)
        spec = self.commands.get(name)
        # label by the declared name only: arbitrary words must not create metric series
        label = spec.name if spec is not None else "unknown"
        self.metrics.observe_command(label, outcome, time.monotonic() - started)

    def _in_own_dm(self, event: MessageEvent) -> bool:
        return self.villages.room(event.room_id) is None and self.direct.is_dm_of(
            event.room_id, event.sender
        )

    async def _dm_hint(self, event: MessageEvent) -> None:
        """A DM that is no command: point to ``hilfe``, once an hour per person."""
        now = time.time()
        if now - self._dm_hinted.get(event.sender, 0.0) < DM_HINT_SECONDS:
            return
        self._dm_hinted[event.sender] = now
        villages = self.villages.of_user(event.sender)
        t = self.translator(villages[0] if len(villages) == 1 else None)
        await self.matrix.answer(event.room_id, event.event_id, t("core.dm_hint"))

    async def dispatch(self, event: MessageEvent, name: str, rest: str) -> str:
        """Route one command; returns the outcome label for metrics."""
        info = self.villages.room(event.room_id)
        args = parse_args(rest)
        room_kind = info.kind if info else DM
        village = info.village if info else None
        t = self.translator(village)

        async def answer(key: str, **params: Any) -> None:
            await self.matrix.answer(event.room_id, event.event_id, t(key, **params))

        if village is None:
            if not self.direct.is_dm_of(event.room_id, event.sender):
                return "ignored"  # a room we share with people but do not serve
            villages = self.villages.of_user(event.sender)
            if args.village:
                village = self.villages.get(args.village.lower())
                if village is None or (
                    village not in villages and event.sender not in self.config.admins
                ):
                    await answer(
                        "core.unknown_village",
                        village=args.village,
                        known=", ".join(v.id for v in villages) or "-",
                    )
                    return "refused"
            elif len(villages) == 1:
                village = villages[0]
            t = self.translator(village)

        spec = self.commands.get(name)
        role = self.role_in(village, event.sender)
        # Counted by the time the message was sent, so a backlog answered after a
        # restart is not mistaken for a flood; unknown commands count too.
        sent_at = event.ts / 1000 if event.ts else None
        if not self.rate_limiter.hit(event.sender, sent_at) and role < Role.MODERATOR:
            if self.rate_limiter.should_warn(event.sender, sent_at):
                await answer("core.rate_limited")
            return "rate_limited"
        if spec is None:
            suggestion = self.commands.suggest(name, lambda s: self._allowed(s, role, room_kind))
            if suggestion:
                await answer(
                    "core.did_you_mean",
                    command=name,
                    suggestion=suggestion,
                    prefix=self.config.command_prefix,
                )
            else:
                await answer(
                    "core.unknown_command", command=name, prefix=self.config.command_prefix
                )
            return "unknown"
        if spec.needs_village and village is None:
            villages = self.villages.of_user(event.sender)
            await answer(
                "core.which_village" if villages else "core.no_village",
                villages=", ".join(f"dorf:{v.id}" for v in villages),
            )
            return "refused"
        if role < spec.role:
            await answer("core.not_allowed", role=t.plain(spec.role.key))
            return "refused"
        if spec.scope is Scope.MODERATION and room_kind != "moderation":
            await answer(
                "core.moderation_room_only", prefix=self.config.command_prefix, command=spec.name
            )
            return "refused"
        if spec.reaches_others and village is not None:
            try:
                await self.moderation.check_not_blocked(village, event.sender)
            except Blocked as refused:
                await answer(refused.key, **refused.params)
                return "refused"
        ctx = CommandContext(self, event, spec, args, village, room_kind, role, t)
        assert spec.handler is not None
        try:
            await spec.handler(ctx)
        except Exception:
            log.exception("command %s failed", spec.name)
            self.metrics.errors.inc()
            await ctx.answer("core.error")
            return "error"
        return "ok"

    @staticmethod
    def _allowed(spec: CommandSpec, role: Role, room_kind: str) -> bool:
        return role >= spec.role and (
            spec.scope is not Scope.MODERATION or room_kind == "moderation"
        )

    def visible_commands(self, role: Role, room_kind: str) -> list[CommandSpec]:
        """Commands a user with ``role`` may use in a room of ``room_kind`` (for ``!hilfe``)."""
        return [s for s in self.commands if self._allowed(s, role, room_kind)]
