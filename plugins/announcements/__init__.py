"""Announcements, push alerts and scheduled announcements (SPEC sections 3 and 5).

Organizers post announcements into the village's announcements room (``m.text``,
a normal notification, their own formatting kept after sanitising), send push
alerts into every room of the village (``@room``, which the homeserver pushes
even to members who set a room to mentions-only), and schedule either for a
date or a recurrence (the calendar's grammar, :mod:`dorfbot.dates`).

Delivery is crash-safe. Every send is a stored *fan-out* with one delivery row
per room (:mod:`.store`); the transaction key of each room's message is derived
from what caused it (the command, or the scheduled item and occurrence), so a
fan-out resumed after a crash skips the rooms it finished and the homeserver
deduplicates the one it may have been sending. Scheduled items keep their next
run in the database; an occurrence is claimed and its fan-out stored in one
transaction, so it fires exactly once, also across restarts. Occurrences missed
while the bot was down are sent late (with a note) within
``plugins.announcements.grace_minutes``, and skipped and logged after that.

On a village's public page (``web.public``) and in its Atom feed the plugin
shows the announcements and alerts of the last ``web_days`` that reached the
village, sanitised again for the web; one a moderator redacted in its room is
left out.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from dorfbot.commands import command, parse_number
from dorfbot.config import VillageConfig
from dorfbot.context import CommandContext
from dorfbot.dates import DateParseError, parse_when
from dorfbot.i18n import Markup, Text, Translator
from dorfbot.matrix import Intent, MatrixError, txn_id
from dorfbot.plugin import Plugin
from dorfbot.roles import Role
from dorfbot.webpage import FeedEntry, WebPage, WebSection, safe_html

from .sanitize import (
    MAX_HTML_LENGTH,
    clean_html,
    plain_to_html,
    strip_leading_words,
    visible_text,
    web_html,
)
from .store import (
    ALERT,
    ALL,
    ANNOUNCE,
    MIGRATIONS,
    VILLAGE,
    Delivery,
    Fanout,
    Scheduled,
    Store,
)
from .timing import LATE_AFTER, from_iso, local_start, plan_due, rebuild, to_iso

#: First words that pin an announcement (``!ankuendigung anheften ...``).
PIN_WORDS = frozenset({"anheften", "pin", "📌"})
#: First word of ``!rundruf alle ...`` (admins: every village).
ALL_WORDS = frozenset({"alle", "all"})
#: First words of ``!planen`` naming what is scheduled.
KIND_WORDS = {
    "rundruf": ALERT,
    "broadcast": ALERT,
    "ankuendigung": ANNOUNCE,
    "ankündigung": ANNOUNCE,
    "announce": ANNOUNCE,
    "announcement": ANNOUNCE,
}
#: Fan-outs to at least this many rooms report their start and progress.
PROGRESS_MIN_ROOMS = 10
#: Stored mode of a delivery sent without ``@room`` (the bot lacked the power).
PLAIN = "text"
_VILLAGE_OPTION = re.compile(r"(?<!\S)(?:dorf|village):(?:\"[^\"]*\"|\S+)", re.IGNORECASE)


def _first_word(text: str) -> tuple[str, str]:
    parts = text.lstrip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _command_token(ctx: CommandContext) -> str:
    """The command as the organizer typed it (``!Ankündigung``), to strip it from HTML."""
    return ctx.event.body.lstrip().split(None, 1)[0]


class AnnouncementsPlugin(Plugin):
    """``!ankuendigung``, ``!rundruf``, ``!planen``, ``!geplant``, ``!planloeschen``."""

    name = "announcements"
    migrations = MIGRATIONS
    defaults: ClassVar[dict[str, Any]] = {
        "grace_minutes": 60,  # missed scheduled sends are sent late within this window
        "progress_seconds": 30,  # how often a long fan-out reports its progress
        "poll_seconds": 30,  # safety net besides the exact timers
        "keep_days": 90,  # how long finished fan-outs are remembered
        "web_days": 30,  # how far back the public page and the Atom feed reach
        "web_max": 50,  # at most this many announcements there
    }

    store: Store

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.store = Store(self.db)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._due_lock = asyncio.Lock()
        await self.store.prune_fanouts(time.time() - self._number("keep_days", 90) * 86400)
        # Missed occurrences first (late within the grace period), then the
        # fan-outs a crash interrupted; they all send once the first sync is done.
        await self.run_due(catching_up=True)
        for fanout_id in await self.store.running_fanouts():
            self._spawn(fanout_id)
        for item in await self.store.active():
            self._arm(item)
        self.scheduler.every("poll", self._number("poll_seconds", 30), self.run_due)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _number(self, key: str, default: float) -> float:
        try:
            value = float(self.config.get(key, default))
        except (TypeError, ValueError):
            self.log.warning("plugins.announcements.%s is not a number; using %s", key, default)
            return default
        return value if value >= 0 else default

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self._number("grace_minutes", 60))

    # ------------------------------------------------------------------ commands

    @command(
        "ankuendigung",
        "announce",
        role=Role.ORGANIZER,
        reaches_others=True,
        examples=(
            "!ankuendigung Biotonne rausstellen!",
            "!ankuendigung anheften Wasserrohrbruch Hauptstraße",
        ),
    )
    async def announce(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        room_id = self.bot.villages.room_id(village, "announcements")
        if room_id is None:
            await ctx.answer("announcements.no_room")
            return
        raw = self._raw(ctx)
        consumed: list[str] = []
        first, rest = _first_word(raw)
        pin = first.lower() in PIN_WORDS
        if pin:
            consumed.append(first)
            raw = rest
        content = self._content(ctx, raw, consumed)
        if content is None:
            await ctx.answer("usage.ankuendigung", prefix=self.bot.config.command_prefix)
            return
        fanout_id = await self.store.create_fanout(
            origin=ctx.event.event_id,
            kind=ANNOUNCE,
            village=village.id,
            sender=ctx.sender,
            text_plain=content.plain,
            text_html=content.html,
            rooms=[(room_id, village.id)],
            pin=pin,
            reply_room=ctx.room_id,
            reply_event=ctx.event.event_id,
        )
        self._spawn(fanout_id)

    @command(
        "rundruf",
        "broadcast",
        role=Role.ORGANIZER,
        reaches_others=True,
        examples=("!rundruf Wasserrohrbruch in der Hauptstraße – bitte Wasser abkochen!",),
    )
    async def broadcast(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        raw = self._raw(ctx)
        consumed: list[str] = []
        scope = VILLAGE
        first, rest = _first_word(raw)
        if first.lower() in ALL_WORDS:
            if ctx.role < Role.ADMIN:
                await ctx.answer(
                    "announcements.all_admins_only", prefix=self.bot.config.command_prefix
                )
                return
            scope, raw = ALL, rest
            consumed.append(first)
        content = self._content(ctx, raw, consumed)
        if content is None:
            await ctx.answer("usage.rundruf", prefix=self.bot.config.command_prefix)
            return
        rooms = self._alert_rooms(village, scope)
        if not rooms:
            await ctx.answer("announcements.no_rooms")
            return
        fanout_id = await self.store.create_fanout(
            origin=ctx.event.event_id,
            kind=ALERT,
            village=village.id,
            sender=ctx.sender,
            text_plain=content.plain,
            text_html=content.html,
            rooms=rooms,
            reply_room=ctx.room_id,
            reply_event=ctx.event.event_id,
        )
        self._spawn(fanout_id)

    @command(
        "planen",
        "schedule",
        role=Role.ORGANIZER,
        reaches_others=True,
        examples=(
            "!planen morgen 7:00 Biotonne rausstellen",
            "!planen jeden 1. Montag 18 Uhr Gemeinderat heute im Bürgerhaus",
            "!planen rundruf 24.12. 16 Uhr Krippenspiel in der Kirche",
        ),
    )
    async def schedule(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        prefix = self.bot.config.command_prefix
        raw = self._raw(ctx)
        consumed: list[str] = []
        kind, scope = ANNOUNCE, VILLAGE
        first, rest = _first_word(raw)
        if first.lower() in KIND_WORDS:
            kind = KIND_WORDS[first.lower()]
            consumed.append(first)
            raw = rest
            if kind == ALERT:
                first, rest = _first_word(raw)
                if first.lower() in ALL_WORDS:
                    if ctx.role < Role.ADMIN:
                        await ctx.answer("announcements.all_admins_only", prefix=prefix)
                        return
                    scope, raw = ALL, rest
                    consumed.append(first)
        line, newline, description = raw.partition("\n")
        if not line.strip():
            await ctx.answer("usage.planen", prefix=prefix)
            return
        now = datetime.now(UTC)
        try:
            when, title = parse_when(line, now=now, tz=village.tz)
        except DateParseError as err:
            await ctx.answer(err.key, **err.params)
            return
        stripped = line.rstrip()
        head = stripped[: len(stripped) - len(title)] if title else stripped
        consumed += head.split()
        text = title + (newline + description if description.strip() else "")
        content = self._content(ctx, text, consumed)
        if content is None:
            await ctx.answer("announcements.schedule_needs_text", prefix=prefix)
            return
        if kind == ANNOUNCE and self.bot.villages.room_id(village, "announcements") is None:
            await ctx.answer("announcements.no_room")
            return
        first_run = when.next_after(now - timedelta(seconds=1))
        if first_run is None:
            await ctx.answer("announcements.no_occurrence")
            return
        item = await self.store.add_scheduled(
            village=village.id,
            kind=kind,
            scope=scope,
            creator=ctx.sender,
            text_plain=content.plain,
            text_html=content.html,
            start_local=local_start(when),
            tz=village.timezone,
            rrule=when.rrule,
            next_run=to_iso(first_run),
            source_event=ctx.event.event_id,
        )
        self._arm(item)
        lines = [
            ctx.t(
                "announcements.scheduled",
                number=item.number,
                kind=ctx.t(f"announcements.kind.{kind}"),
                when=self._local_time(ctx.t, first_run, village),
                prefix=prefix,
            )
        ]
        if when.rrule:
            lines.append(ctx.t("announcements.repeats", rule=when.describe(ctx.language)))
        if kind == ALERT:
            missing = [r for r, _ in self._alert_rooms(village, scope) if not self._can_alert(r)]
            if missing:
                lines.append(
                    ctx.t("announcements.no_push_warning", rooms=await self._room_list(missing))
                )
        await ctx.answer(Text.join(lines))

    @command("geplant", "scheduled", role=Role.ORGANIZER, examples=("!geplant",))
    async def scheduled(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        items = await self.store.active(village.id)
        prefix = self.bot.config.command_prefix
        if not items:
            await ctx.answer("announcements.list_empty", prefix=prefix)
            return
        entries = []
        for item in items:
            next_run = from_iso(item.next_run) if item.next_run else None
            when = rebuild(item.start_local, item.tz, item.rrule)
            entries.append(
                ctx.t(
                    "announcements.list_entry",
                    number=item.number,
                    kind=ctx.t(f"announcements.kind.{item.kind}"),
                    when=self._local_time(ctx.t, next_run, village) if next_run else "-",
                    rule=when.describe(ctx.language) if when.rrule else ctx.t("announcements.once"),
                    text=_preview(item.text_plain),
                )
            )
        await ctx.answer(
            "announcements.list",
            entries=Markup(Text.join(entries, Text("\n", ""))),
            prefix=prefix,
        )

    @command("planloeschen", "unschedule", role=Role.ORGANIZER, examples=("!planloeschen 3",))
    async def unschedule(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        prefix = self.bot.config.command_prefix
        number, _ = parse_number(self._raw(ctx))
        if number is None:
            await ctx.answer("usage.planloeschen", prefix=prefix)
            return
        item = await self.store.scheduled_by_number(village.id, number)
        if item is None or item.state != "active":
            await ctx.answer("announcements.not_found", number=number, prefix=prefix)
            return
        if item.scope == ALL and ctx.role < Role.ADMIN:
            # A district-wide alert is an admin's; a village's organizer cannot stop it.
            await ctx.answer("announcements.unschedule_all_admins_only", number=number)
            return
        if await self.store.cancel(item.id):
            self.scheduler.cancel(f"item:{item.id}")
        await ctx.answer("announcements.unscheduled", number=number)

    # ------------------------------------------------------------ command helpers

    def _raw(self, ctx: CommandContext) -> str:
        raw = ctx.args.raw
        if ctx.args.village:  # ``dorf:<id>`` named the village in a DM; not part of the text
            raw = _VILLAGE_OPTION.sub("", raw, count=1)
        return raw.strip()

    def _content(self, ctx: CommandContext, text: str, consumed: list[str]) -> Text | None:
        """The organizer's text as plain and sanitised HTML; None if it is empty.

        ``consumed`` are the words after the command that are not part of the
        text (flags, date and time); they are removed from the formatted body too.
        """
        plain = text.strip()
        if not plain:
            return None
        formatted = ctx.event.formatted_body
        html_text: str | None = None
        if formatted and not ctx.args.village:
            cleaned = clean_html(formatted)
            html_text = strip_leading_words(cleaned, [_command_token(ctx), *consumed])
            if html_text is None or not visible_text(html_text) or len(html_text) > MAX_HTML_LENGTH:
                html_text = None
        return Text(plain, html_text or plain_to_html(plain))

    def _alert_rooms(self, village: VillageConfig, scope: str) -> list[tuple[str, str]]:
        """(room ID, village ID) of every room a push alert goes to, announcements first."""
        villages = self.bot.config.villages if scope == ALL else (village,)
        rooms: dict[str, str] = {}
        for target in villages:
            first = self.bot.villages.room_id(target, "announcements")
            ids = self.bot.villages.room_ids(target)
            for room_id in ([first] if first else []) + ids:
                rooms.setdefault(room_id, target.id)
        return list(rooms.items())

    def _can_alert(self, room_id: str) -> bool:
        return self.bot.matrix.can_alert(room_id)

    async def _room_list(self, room_ids: list[str]) -> str:
        names = []
        for room_id in room_ids:
            try:
                name = (await self.bot.matrix.get_state(room_id, "m.room.name")).get("name")
            except Exception:
                name = None
            names.append(f"„{name}“" if isinstance(name, str) and name else room_id)
        return ", ".join(names)

    def _local_time(self, t: Translator, moment: datetime, village: VillageConfig) -> Text:
        local = moment.astimezone(village.tz)
        return t(
            "announcements.datetime",
            weekday=t.plain(f"announcements.weekday.{local.weekday()}"),
            day=f"{local.day:02d}",
            month=f"{local.month:02d}",
            year=str(local.year),
            time=f"{local.hour:02d}:{local.minute:02d}",
        )

    # ------------------------------------------------------------------ schedule

    def _arm(self, item: Scheduled) -> None:
        """Set the exact timer for an item's next run (the poll is the safety net)."""
        if item.state != "active" or not item.next_run:
            self.scheduler.cancel(f"item:{item.id}")
            return
        self.scheduler.at(f"item:{item.id}", from_iso(item.next_run), self.run_due)

    async def run_due(self, *, catching_up: bool = False) -> None:
        """Fire every scheduled item whose next run has come (exactly once each).

        ``catching_up`` (at start) marks whatever is due as missed while the bot
        was down, so it carries the "late" note however short the downtime was.
        """
        async with self._due_lock:
            now = datetime.now(UTC)
            for item in await self.store.due(to_iso(now)):
                try:
                    await self._fire(item, now, catching_up=catching_up)
                except Exception:
                    self.log.exception("scheduled item %d could not be fired", item.id)

    async def _fire(self, item: Scheduled, now: datetime, *, catching_up: bool) -> None:
        assert item.next_run is not None
        when = rebuild(item.start_local, item.tz, item.rrule)
        plan = plan_due(
            when,
            from_iso(item.next_run),
            now,
            self.grace,
            late_after=timedelta(0) if catching_up else LATE_AFTER,
        )
        for missed in plan.skipped:
            self.log.warning(
                "scheduled item %d (%s Nr. %d): occurrence %s skipped, missed by more "
                "than the grace period or superseded",
                item.id,
                item.village,
                item.number,
                to_iso(missed),
            )
        if plan.skipped_more:
            self.log.warning("scheduled item %d: further occurrences skipped", item.id)
        rooms: list[tuple[str, str]] = []
        village = self.bot.villages.get(item.village)
        if plan.fire is not None:
            if village is None:
                self.log.warning("scheduled item %d: village %s is gone", item.id, item.village)
            elif item.kind == ANNOUNCE:
                room_id = self.bot.villages.room_id(village, "announcements")
                rooms = [(room_id, village.id)] if room_id else []
            else:
                rooms = self._alert_rooms(village, item.scope)
            if not rooms:
                self.log.warning("scheduled item %d: no room to send to", item.id)
        fired = to_iso(plan.fire) if plan.fire is not None else None
        fanout_id: int | None = None
        async with self.db.transaction():
            claimed = await self.store.advance(
                item,
                fired=fired,
                next_run=to_iso(plan.next_run) if plan.next_run is not None else None,
            )
            if not claimed:
                return
            if fired is not None and rooms:
                fanout_id = await self.store.create_fanout(
                    origin=f"sched:{item.id}:{fired}",
                    kind=item.kind,
                    village=item.village,
                    sender=item.creator,
                    text_plain=item.text_plain,
                    text_html=item.text_html,
                    rooms=rooms,
                    late_for=fired if plan.late else None,
                )
        if fanout_id is not None:
            self.log.info(
                "scheduled item %d (%s Nr. %d) fired for %s%s",
                item.id,
                item.village,
                item.number,
                fired,
                " (late)" if plan.late else "",
            )
            self._spawn(fanout_id)
        updated = await self.store.scheduled(item.id)
        if updated is not None:
            self._arm(updated)

    # ------------------------------------------------------------------ fan-outs

    def _spawn(self, fanout_id: int) -> asyncio.Task[None]:
        """Deliver a stored fan-out in the background (at most one task per fan-out)."""
        task = self._tasks.get(fanout_id)
        if task is not None and not task.done():
            return task
        task = asyncio.create_task(self._deliver(fanout_id), name=f"announcements-{fanout_id}")
        self._tasks[fanout_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(fanout_id) is done:
                del self._tasks[fanout_id]

        task.add_done_callback(forget)
        return task

    async def _deliver(self, fanout_id: int) -> None:
        try:
            await self._deliver_fanout(fanout_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The fan-out stays "running" and resumes at the next start.
            self.log.exception("fan-out %d failed", fanout_id)

    async def _deliver_fanout(self, fanout_id: int) -> None:
        matrix = self.bot.matrix
        await matrix.ready.wait()  # room state (power levels) is known after the first sync
        fanout = await self.store.fanout(fanout_id)
        if fanout is None or fanout.state != "running":
            return
        deliveries = await self.store.deliveries(fanout_id)
        total = len(deliveries)
        pending = [d for d in deliveries if d.state == "pending"]
        done = total - len(pending)
        t = self.bot.translator(self.bot.villages.get(fanout.village))
        no_push = [
            d.room_id
            for d in deliveries
            if fanout.kind == ALERT
            and (
                (d.state == "sent" and d.mode == PLAIN)
                or (d.state == "pending" and not self._can_alert(d.room_id))
            )
        ]
        report = fanout.reply_room is not None and fanout.reply_event is not None
        status_event = fanout.status_event
        started = Text("", "")
        if report and fanout.kind == ALERT and (no_push or total >= PROGRESS_MIN_ROOMS):
            parts = [t("announcements.broadcast_started", total=total)]
            if no_push:
                parts.append(
                    t("announcements.no_push_warning", rooms=await self._room_list(no_push))
                )
            started = Text.join(parts)
            if status_event is None:
                assert fanout.reply_room and fanout.reply_event
                status = await matrix.answer(
                    fanout.reply_room,
                    fanout.reply_event,
                    started,
                    key=txn_id("fanout", fanout.origin, "status"),
                )
                status_event = await status.event_id()  # edited with the progress
                await self.store.set_status_event(fanout_id, status_event)

        progress_every = self._number("progress_seconds", 30)
        last_report = time.monotonic()
        for delivery in pending:
            village = self.bot.villages.get(delivery.village)
            mode = ALERT if fanout.kind == ALERT and self._can_alert(delivery.room_id) else PLAIN
            text = self._message(fanout, village)
            key = txn_id("fanout", fanout.origin, delivery.room_id)
            try:
                if mode == ALERT:
                    posted = await matrix.alert(delivery.room_id, text, key=key)
                else:
                    posted = await matrix.publish(delivery.room_id, text, key=key)
                event_id = await posted.event_id()
            except MatrixError as exc:
                self.log.warning("fan-out %d: %s failed: %s", fanout_id, delivery.room_id, exc)
                await self.store.mark_delivery(
                    fanout_id, delivery.room_id, state="failed", mode=mode, error=str(exc)[:500]
                )
            else:
                await self.store.mark_delivery(
                    fanout_id, delivery.room_id, state="sent", mode=mode, event_id=event_id
                )
            done += 1
            if (
                status_event is not None
                and fanout.reply_room is not None
                and done < total
                and time.monotonic() - last_report >= progress_every
            ):
                last_report = time.monotonic()
                progress = t("announcements.broadcast_progress", done=done, total=total)
                await matrix.edit(
                    fanout.reply_room,
                    status_event,
                    Text.join([started, progress]),
                    intent=Intent.ANSWER,
                    key=txn_id("fanout", fanout.origin, "progress", done),
                )

        deliveries = await self.store.deliveries(fanout_id)
        sent = [d for d in deliveries if d.state == "sent"]
        failed = [d for d in deliveries if d.state == "failed"]
        pinned = False
        if fanout.pin:
            for delivery in sent:
                assert delivery.event_id is not None
                pinned = await self._pin(delivery.room_id, delivery.event_id) or pinned
        if report:
            assert fanout.reply_room and fanout.reply_event
            summary = await self._summary(t, fanout, total, sent, failed, pinned)
            await matrix.answer(
                fanout.reply_room,
                fanout.reply_event,
                summary,
                key=txn_id("fanout", fanout.origin, "summary"),
            )
        self.log.info(
            "fan-out %d (%s) done: %d of %d rooms", fanout_id, fanout.kind, len(sent), total
        )
        await self.store.finish_fanout(fanout_id)

    def _message(self, fanout: Fanout, village: VillageConfig | None) -> Text:
        """The message a room receives, in its village's language."""
        t = self.bot.translator(village)
        content = Text(fanout.text_plain, fanout.text_html)
        base = "announcements.message" if fanout.kind == ANNOUNCE else "announcements.alert"
        if fanout.late_for is None:
            return t(base, text=content)
        late = from_iso(fanout.late_for)
        zone = village.tz if village else UTC
        local = late.astimezone(zone)
        return t(
            base + "_late",
            text=content,
            time=f"{local.hour:02d}:{local.minute:02d}",
        )

    async def _pin(self, room_id: str, event_id: str) -> bool:
        try:
            state = await self.bot.matrix.get_state(room_id, "m.room.pinned_events")
            pinned = [e for e in state.get("pinned") or [] if isinstance(e, str)]
            if event_id not in pinned:
                await self.bot.matrix.set_pinned(room_id, [event_id, *pinned])
        except MatrixError as exc:
            self.log.warning("could not pin in %s: %s", room_id, exc)
            return False
        return True

    async def _summary(
        self,
        t: Translator,
        fanout: Fanout,
        total: int,
        sent: list[Delivery],
        failed: list[Delivery],
        pinned: bool,
    ) -> Text:
        if fanout.kind == ANNOUNCE:
            if failed:
                return t("announcements.announce_failed", error=failed[0].error or "")
            return t("announcements.announce_pinned" if pinned else "announcements.announce_done")
        lines = [t("announcements.broadcast_done", sent=len(sent), total=total)]
        if failed:
            rooms = await self._room_list([d.room_id for d in failed])
            lines.append(t("announcements.broadcast_failed_rooms", rooms=rooms))
        no_push = [d.room_id for d in sent if d.mode == PLAIN]
        if no_push:
            rooms = await self._room_list(no_push)
            lines.append(t("announcements.broadcast_no_push_rooms", rooms=rooms))
        return Text.join(lines)

    # ------------------------------------------------------------------ web page

    async def on_redaction(self, room_id: str, redacted_event: str, sender: str) -> None:
        """A moderator redacted an announcement: it leaves the public page and the feed."""
        if await self.store.redacted(room_id, redacted_event):
            self.log.info("announcement %s redacted in %s by %s", redacted_event, room_id, sender)

    async def _web_items(self, page: WebPage) -> list[dict[str, Any]]:
        since = page.now.timestamp() - self._number("web_days", 30) * 86400
        found = await self.store.published(page.village.id, since, int(self._number("web_max", 50)))
        items = []
        for fanout in found:
            local = page.local(fanout.created_at)
            digest = hashlib.sha256(fanout.origin.encode()).hexdigest()[:16]
            items.append(
                {
                    "fanout": fanout,
                    "anchor": f"a-{digest}",
                    "digest": digest,
                    "alert": fanout.kind == ALERT,
                    "local": local,
                    "when": page.plain(
                        "web.moment", date=page.day(local.date()), time=page.clock(local)
                    ),
                    # sanitised by nh3 just now: trusted by the autoescaping template
                    "html": safe_html(web_html(fanout.text_html)),
                }
            )
        return items

    async def web_sections(self, page: WebPage) -> list[WebSection]:
        """The announcements and alerts of the last ``web_days``, newest first."""
        return [
            WebSection(
                key="news",
                title=page.plain("announcements.web.title"),
                template="announcements/section.html",
                context={
                    "entries": await self._web_items(page),
                    "days": int(self._number("web_days", 30)),
                },
                order=30,
            )
        ]

    async def web_feed(self, page: WebPage) -> list[FeedEntry]:
        """The same announcements as Atom entries; the ID is derived from what caused them."""
        entries = []
        for item in await self._web_items(page):
            fanout: Fanout = item["fanout"]
            moment = datetime.fromtimestamp(fanout.created_at, UTC)
            title = _preview(fanout.text_plain)
            if item["alert"]:
                title = page.plain("announcements.web.alert_title", title=title)
            entries.append(
                FeedEntry(
                    id=page.tag(moment.date(), "announcement", item["digest"]),
                    title=title,
                    html=str(item["html"]),
                    updated=moment,
                    published=moment,
                    anchor=item["anchor"],
                )
            )
        return entries

    # ------------------------------------------------------------------- privacy

    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        return await self.store.export_user(user_id)

    async def forget_user(self, user_id: str) -> None:
        await self.store.forget_user(user_id)


def _preview(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
