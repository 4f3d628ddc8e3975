"""The village calendar: events through the moderation queue, lists, digests, iCal.

Commands: ``!termin`` / ``!event`` (new event, queued per ``moderation.events``),
``!termine`` / ``!events`` (upcoming occurrences, recurring ones expanded, with
RSVP counts), ``!absagen`` / ``!cancel``, ``!kalender`` / ``!calendar`` (the
subscription URL) and ``!import`` (organizers; also an ``.ics`` file posted in
a village room).

Published events are posted into the village's calendar room; a 👍 on that
message counts as taking part. Each village gets a daily digest in the calendar
room at its ``digest_time`` and, with ``plugins.calendar.remind_hours`` set, a
reminder that many hours before each event. Both are claimed in the database
before they are sent and sent with a deterministic transaction ID, so each goes
out exactly once, across restarts too; one missed while the bot was down is
sent late within ``grace_minutes``, otherwise skipped and logged.

``GET /ical/<village>.ics`` serves the village's published events (RFC 5545).
On the village's public page (``web.public``) the plugin shows the next
``web_days`` of events, cancelled ones marked, with the subscription links.

Config (``plugins.calendar``)::

    remind_hours: 0            # 0 = no reminders
    grace_minutes: 120         # late digests/reminders after downtime
    reminder_check_seconds: 60
    list_days: 14              # !termine without a range
    max_list: 30               # lines per list
    digest_when_empty: false   # also post a digest on days without events
    feed_past_days: 90         # how far back the iCal feed reaches
    web_days: 14               # days of events on the village's public page
    web_max_events: 100        # at most this many occurrences there
    import_max_bytes: 2000000
    import_timeout: 20         # seconds, for the whole download
    import_max_events: 2000
    import_max_redirects: 3
    import_allow_private: false  # true: also intranet/loopback addresses
    import_allow_networks: []    # or only these networks, e.g. ["10.1.2.0/24"]

Imports run as background jobs (:mod:`dorfbot.jobs`): the command returns at
once, the result is a reply to the command (after a "loading" note when it
takes longer than :data:`PROGRESS_SECONDS`). URLs are fetched with
:func:`dorfbot.fetch.fetch_public`: public addresses only unless the operator
allows more; what the organizer is told never names a status or an address.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import web

from dorfbot import items as states
from dorfbot.commands import command, parse_count, parse_number
from dorfbot.config import VillageConfig
from dorfbot.context import CommandContext, MessageEvent, ReactionEvent
from dorfbot.dates import DateParseError, parse_time, parse_when
from dorfbot.fetch import (
    AddressPolicy,
    FetchError,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    check_url,
    fetch_public,
)
from dorfbot.i18n import Markup, Text, Translator
from dorfbot.items import Item
from dorfbot.matrix import MatrixError, Sent, txn_id
from dorfbot.moderation import Blocked
from dorfbot.plugin import Plugin
from dorfbot.roles import Role
from dorfbot.webpage import WebPage, WebSection

from .cache import EventCache
from .ical import MAX_TITLE, CalendarEvent, CalendarFormatError, parse_calendar, render_feed
from .recurrence import Occurrence, RecurrenceError
from .store import MIGRATIONS, EventStore, StoredEvent
from .texts import Formatter

RSVP_KEY = "👍"
WEEK_WORDS = ("woche", "week")
MONTH_WORDS = ("monat", "month")
TODAY_WORDS = ("heute", "today")
MAX_COUNT = 100
COUNT_WINDOWS = (14, 62, 366)
PROGRESS_SECONDS = 3.0
"""An import still running after this long tells the asker it is on its way."""


class ImportFailure(Exception):
    """An import that could not start; ``key``/``params`` say why in the catalog."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class ImportResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    cancelled: int = 0
    skipped: int = 0
    past: int = 0
    unsupported: int = 0


class CalendarPlugin(Plugin):
    """Events, lists, digests, reminders, iCal feed and imports."""

    name = "calendar"
    migrations = MIGRATIONS
    defaults: ClassVar[dict[str, Any]] = {
        "remind_hours": 0,
        "grace_minutes": 120,
        "reminder_check_seconds": 60,
        "list_days": 14,
        "max_list": 30,
        "digest_when_empty": False,
        "feed_past_days": 90,
        "import_max_bytes": 2_000_000,
        "import_timeout": 20,
        "import_max_events": 2000,
        "web_days": 14,
        "web_max_events": 100,
        "import_max_redirects": 3,
        "import_allow_private": False,
        "import_allow_networks": [],
    }

    events: EventStore
    cache: EventCache
    address_policy: AddressPolicy

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.events = EventStore(self.db)
        self.cache = EventCache(self.events, self.log)
        self.address_policy = AddressPolicy.of(
            self.config["import_allow_private"] is True,
            self.config["import_allow_networks"] or (),
        )
        self.bot.web.add_get("/ical/{village}.ics", self.serve_feed)
        for village in self.bot.config.villages:
            hour, minute = digest_clock(village)
            self.scheduler.daily(
                f"digest:{village.id}", hour, minute, village.tz, self._digest_job, village.id
            )
        if self.remind_hours > 0:
            self.scheduler.every(
                "reminders", float(self.config["reminder_check_seconds"]), self.run_reminders
            )
        # After the first sync (sends wait for it): late digests and unfinished sends.
        self.scheduler.at("catch-up", datetime.now(UTC), self.catch_up)

    @property
    def remind_hours(self) -> float:
        return float(self.config.get("remind_hours") or 0)

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=float(self.config["grace_minutes"]))

    def formatter(self, village: VillageConfig) -> Formatter:
        return Formatter(self.bot.translator(village), village.tz)

    # ------------------------------------------------------------------ queries

    async def occurrences(
        self,
        village: VillageConfig,
        after: datetime,
        before: datetime,
        in_states: tuple[str, ...] = (states.PUBLISHED,),
    ) -> list[tuple[StoredEvent, Occurrence]]:
        """Every occurrence of the village's published events in ``[after, before)``.

        The events come parsed from :attr:`cache` (read from the database only
        after they changed) and are expanded in memory (yielding to the event loop
        every few milliseconds; the cache keeps the days asked lately until the
        events change), ordered by start. ``in_states`` widens the
        query (the public page also shows cancelled events, marked). Events whose
        stored rule cannot be read (stored before the calendar refused such rules)
        are logged and left out. RSVP counts are not read here: :meth:`with_rsvps`
        adds them to the rows a caller shows.
        """
        return await self.cache.occurrences(village.id, after, before, in_states)

    async def with_rsvps(
        self, found: list[tuple[StoredEvent, Occurrence]]
    ) -> list[tuple[StoredEvent, Occurrence]]:
        """These occurrences with their events' RSVP counts (one query for all)."""
        counts = await self.events.rsvp_counts(stored.item_id for stored, _ in found)
        return [
            (replace(stored, rsvps=counts.get(stored.item_id, 0)), occ) for stored, occ in found
        ]

    async def upcoming(
        self, village: VillageConfig, now: datetime, *, count: int
    ) -> list[tuple[StoredEvent, Occurrence]]:
        """The next ``count`` occurrences within a year, widening the window as needed."""
        found: list[tuple[StoredEvent, Occurrence]] = []
        for days in COUNT_WINDOWS:
            found = await self.occurrences(village, now, now + timedelta(days=days))
            if len(found) >= count:
                break
        return found[:count]

    # ------------------------------------------------------------------ items

    def event_of(self, item: Item) -> CalendarEvent:
        """The event an item describes (its ``data`` holds the times)."""
        data = item.data
        end = data.get("end")
        return CalendarEvent(
            uid=str(data.get("uid") or self._uid(item)),
            title=item.title,
            start=datetime.fromisoformat(data["start"]),
            tz=str(data["tz"]),
            end=datetime.fromisoformat(end) if end else None,
            all_day=bool(data.get("all_day")),
            rrule=data.get("rrule") or None,
            exdates=tuple(datetime.fromisoformat(d) for d in data.get("exdates") or ()),
            description=item.body,
            location=str(data.get("location") or ""),
            url=str(data.get("url") or ""),
        )

    def _uid(self, item: Item) -> str:
        host = urlsplit(self.bot.config.http.public_url).hostname or "dorfbot"
        return f"dorfbot-{item.village}-{item.number}-{int(item.created_at)}@{host}"

    async def _ensure_stored(self, item: Item) -> CalendarEvent:
        event = self.event_of(item)
        await self.events.save(item.id, item.village, event, source=item.data.get("source"))
        return event

    def render_item(self, item: Item, t: Translator) -> Text:
        village = self.bot.villages.get(item.village)
        zone = village.tz if village else None
        try:
            event = self.event_of(item)
            series = event.series(item.id)
        except (KeyError, ValueError, RecurrenceError):
            return Text.escaped(item.title)
        first = series.occurrences(
            series.real(event.start), series.real(event.start) + timedelta(seconds=1)
        )
        formatter = Formatter(t, zone or series.zone)
        return formatter.event(item.number, event, first[0] if first else None)

    async def publish_item(self, item: Item) -> tuple[str, str] | None:
        await self._ensure_stored(item)
        village = self.bot.villages.get(item.village)
        room_id = self.bot.villages.room_id(village, "calendar") if village else None
        if village is None or room_id is None:
            return None
        t = self.bot.translator(village)
        text = t("calendar.published", event=self.render_item(item, t))
        sent = await self.bot.matrix.publish(room_id, text, key=item.key("calendar-publish"))
        event_id = await sent.event_id()
        try:  # a chip to tap; the bot's own reaction never counts as taking part
            await self.bot.matrix.react(
                room_id, event_id, RSVP_KEY, key=item.key("calendar-publish-react")
            )
        except MatrixError as exc:
            self.log.warning("could not react on item %s: %s", item.id, exc)
        return room_id, event_id

    # ------------------------------------------------------------------ commands

    @command(
        "termin",
        "event",
        reaches_others=True,
        examples=(
            "!termin morgen 18 Uhr Laternenumzug wo:Kirche",
            "!termin 24.12. 22:00 Christmette bis:23:30",
            "!termin jeden Montag 19:30 Chorprobe wo:Gemeindehaus",
        ),
    )
    async def add_event(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        prefix = self.bot.config.command_prefix
        if not ctx.args.text:
            await ctx.answer("usage.termin", prefix=prefix)
            return
        try:
            when, rest = parse_when(ctx.args.text, now=datetime.now(village.tz), tz=village.tz)
            if ctx.args.until:
                when = when.with_end_time(parse_time(ctx.args.until))
        except DateParseError as exc:
            await ctx.answer(exc.key, **exc.params)
            return
        title = " ".join(rest.split()).strip(" -–:,;")
        if not title:
            await ctx.answer("calendar.need_title", prefix=prefix)
            return
        if len(title) > MAX_TITLE:
            await ctx.answer("calendar.title_too_long", max=MAX_TITLE)
            return
        data = {
            "start": when.start.replace(tzinfo=None).isoformat(),
            "end": when.end.replace(tzinfo=None).isoformat() if when.end else None,
            "tz": when.tz,
            "rrule": when.rrule,
            "location": ctx.args.where,
        }
        try:
            item = await self.bot.moderation.submit(
                ctx,
                plugin=self.name,
                kind="event",
                title=title,
                body=ctx.args.description,
                mode=village.moderation.events,
                district=ctx.args.district,
                data=data,
            )
        except Blocked as exc:
            if exc.until:
                until = datetime.fromtimestamp(exc.until, UTC).astimezone(village.tz)
                await ctx.answer(
                    "calendar.blocked_until", until=self.formatter(village).day_text(until.date())
                )
            else:
                await ctx.answer("calendar.blocked")
            return
        await self._ensure_stored(item)
        key = "calendar.added_pending" if item.state == states.PENDING else "calendar.added"
        event_id = await ctx.answer(
            key, number=item.number, event=self.render_item(item, ctx.t), prefix=prefix
        )
        await self._sent(ctx.room_id, event_id, [item.id])

    @command("termine", "events", examples=("!termine", "!termine woche", "!termine 20"))
    async def list_events(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        prefix = self.bot.config.command_prefix
        word = ctx.args.words[0].lower() if ctx.args.words else ""
        now = datetime.now(UTC)
        limit = int(self.config["max_list"])
        count: int | None = None
        days = int(self.config["list_days"])
        if word in WEEK_WORDS:
            days = 7
        elif word in MONTH_WORDS:
            days = 31
        elif word in TODAY_WORDS:
            days = 0
        elif (wanted := parse_count(word, digits=3)) is not None:
            count = max(1, min(wanted, MAX_COUNT))
            limit = count
        elif word:
            await ctx.answer("calendar.list_usage", prefix=prefix)
            return
        if count is not None:
            found = await self.upcoming(village, now, count=count)
            header = ctx.t("calendar.list_header_count", count=len(found), village=village.name)
        elif days == 0:
            _, end = day_bounds(village, now.astimezone(village.tz).date())
            found = await self.occurrences(village, now, end)
            header = ctx.t("calendar.list_header_today", village=village.name)
        else:
            found = await self.occurrences(village, now, now + timedelta(days=days))
            header = ctx.t("calendar.list_header_days", days=days, village=village.name)
        if not found:
            await ctx.answer("calendar.list_empty", prefix=prefix)
            return
        body = self._grouped(village, ctx.t, await self.with_rsvps(found[:limit]), now)
        parts = [header, body]
        if len(found) > limit:
            parts.append(ctx.t("calendar.list_more", more=len(found) - limit, prefix=prefix))
        event_id = await ctx.answer(Text.join(parts))
        await self._sent(ctx.room_id, event_id, [s.item_id for s, _ in found[:limit]])

    def _grouped(
        self,
        village: VillageConfig,
        t: Translator,
        found: list[tuple[StoredEvent, Occurrence]],
        now: datetime,
    ) -> Text:
        """Occurrences under one heading per local day (running ones under today)."""
        formatter = Formatter(t, village.tz)
        today = now.astimezone(village.tz).date()
        days: dict[date, list[Text]] = {}
        for stored, occ in found:
            day = max(formatter.local(occ)[0].date(), today)
            days.setdefault(day, []).append(
                formatter.line(stored.number, stored.event, occ, stored.rsvps)
            )
        blocks = [
            t(
                "calendar.list_day",
                date=formatter.day_text(day),
                lines=Markup(Text.join(lines, Text("\n", ""))),
            )
            for day, lines in days.items()
        ]
        return Text.join(blocks, Text("\n\n", ""))

    @command(
        "absagen",
        "cancel",
        reaches_others=True,
        examples=("!absagen 12", "!absagen 12 Wegen Regen"),
    )
    async def cancel(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        prefix = self.bot.config.command_prefix
        number, rest = parse_number(ctx.args.text)
        if number is None:
            await ctx.answer("calendar.cancel_need_number", prefix=prefix)
            return
        items = self.bot.moderation.items
        item = await items.get(village.id, number)
        if item is None:
            await ctx.answer("calendar.not_found", number=number, prefix=prefix)
            return
        if item.plugin != self.name:
            await ctx.answer("calendar.not_an_event", number=number)
            return
        if ctx.sender not in (item.author, item.on_behalf_of) and ctx.role < Role.ORGANIZER:
            await ctx.answer("calendar.cancel_not_allowed")
            return
        reason = rest or None
        pending = item.state == states.PENDING
        closed = await self.bot.moderation.remove(
            village,
            item,
            ctx.sender,
            state=states.DELETED if pending else states.CANCELLED,
            reason=reason,
        )
        if closed is None:
            await ctx.answer(
                "calendar.cancel_not_open", number=number, state=ctx.t(f"state.{item.state}")
            )
            return
        await self.bot.moderation.log_action(
            village.id, ctx.sender, "cancel", number=number, target=item.author, reason=reason
        )
        if not pending:
            await self._announce_cancel(village, closed, reason)
        if ctx.sender != closed.author:
            t = self.bot.translator(village)
            await self.bot.moderation.tell_author(
                closed,
                t(
                    "calendar.told_withdrawn" if pending else "calendar.told_cancelled",
                    number=number,
                    title=closed.title,
                    actor=ctx.sender,
                    reason=reason or "-",
                ),
                purpose="withdrawn" if pending else "cancelled",
                cause=ctx.event.event_id,
            )
        await ctx.answer("calendar.withdrawn" if pending else "calendar.cancelled", number=number)

    async def _announce_cancel(
        self, village: VillageConfig, item: Item, reason: str | None
    ) -> None:
        room_id = self.bot.villages.room_id(village, "calendar")
        if room_id is None:
            return
        t = self.bot.translator(village)
        formatter = Formatter(t, village.tz)
        stored = await self.events.get(item.id)
        event = stored.event if stored else self.event_of(item)
        now = datetime.now(UTC)
        try:
            upcoming = event.series(item.id).occurrences(now, now + timedelta(days=366))
        except (RecurrenceError, ValueError):
            upcoming = []
        if event.rrule:
            when = t.plain("calendar.cancel_series", rule=formatter.repeat(event))
        elif upcoming:
            when = formatter.when(upcoming[0])
        else:
            when = formatter.day_text(event.start.date())
        text = t(
            "calendar.cancel_announcement",
            number=item.number,
            title=item.title,
            when=when,
            reason=Markup(t("calendar.cancel_reason", reason=reason)) if reason else "",
        )
        to = await self.events.participants([item.id])
        event_id = await self.bot.matrix.tell(room_id, text, to=to, key=item.key("calendar-cancel"))
        await self._sent(room_id, event_id, [item.id], to)

    @command("kalender", "calendar", examples=("!kalender",))
    async def subscribe(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        url = self.feed_url(village)
        await ctx.answer(
            "calendar.subscribe",
            url=url,
            village=village.name,
            webcal="webcal://" + url.split("://", 1)[-1],
        )

    def feed_url(self, village: VillageConfig) -> str:
        return f"{self.bot.config.http.public_url}/ical/{village.id}.ics"

    @command(
        "import",
        role=Role.ORGANIZER,
        reaches_others=True,
        examples=("!import https://example.org/abfallkalender.ics",),
    )
    async def import_url(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        prefix = self.bot.config.command_prefix
        url = ctx.args.words[0] if ctx.args.words else ""
        if not url:
            await ctx.answer("usage.import", prefix=prefix)
            return
        if check_url(url) is not None:
            await ctx.answer("calendar.import_bad_url")
            return
        if self.bot.jobs.full:
            await ctx.answer("calendar.import_busy")
            return

        async def answer(text: Text) -> None:
            await ctx.answer(text)

        async def failed(_: BaseException) -> None:
            await ctx.answer("calendar.import_failed")

        # The download may take up to import_timeout: never on the command loop.
        self.bot.jobs.start(
            f"import:{village.id}",
            self._import_job(village, ctx.t, answer, lambda: self.fetch(url), ctx.sender, url),
            on_error=failed,
        )

    async def fetch(self, url: str) -> bytes:
        """GET an ``.ics`` from a public address with the configured limits."""
        return await fetch_public(
            url,
            policy=self.address_policy,
            max_bytes=int(self.config["import_max_bytes"]),
            timeout=float(self.config["import_timeout"]),
            max_redirects=int(self.config["import_max_redirects"]),
            accept="text/calendar, */*;q=0.5",
        )

    async def _import_job(
        self,
        village: VillageConfig,
        t: Translator,
        answer: Callable[[Text], Awaitable[None]],
        load: Callable[[], Awaitable[bytes]],
        actor: str,
        source: str,
    ) -> None:
        """Load and import, then answer; a note first when it takes a while."""
        work = asyncio.ensure_future(self._load_and_import(village, t, load, actor, source))
        try:
            done, _ = await asyncio.wait({work}, timeout=PROGRESS_SECONDS)
            if not done:
                await answer(t("calendar.import_running"))
            text = await work
        finally:
            work.cancel()  # a no-op once done; stops the work when the job is cancelled
        await answer(text)

    async def _load_and_import(
        self,
        village: VillageConfig,
        t: Translator,
        load: Callable[[], Awaitable[bytes]],
        actor: str,
        source: str,
    ) -> Text:
        """The import's outcome as the text for the asker (failures in generic words)."""
        limit = int(self.config["import_max_bytes"])
        try:
            data = await load()
            result = await self.import_data(village, data, actor=actor, source=source)
        except ImportFailure as exc:
            return t(exc.key, **exc.params)
        except FetchTooLarge:
            return t("calendar.import_too_large", max=_megabytes(limit))
        except FetchTimeout:
            return t("calendar.import_timeout")
        except FetchRefused as exc:
            # The log says why (for the operator); the asker learns nothing about
            # the inside of the network.
            self.log.info("import into %s refused: %s", village.id, exc.reason)
            return t("calendar.import_unreachable")
        except FetchError as exc:
            self.log.info("import into %s failed: %s", village.id, exc.reason)
            return t("calendar.import_unreachable")
        return self._import_text(t, result)

    async def import_data(
        self, village: VillageConfig, data: bytes, *, actor: str, source: str
    ) -> ImportResult:
        """Import an ``.ics``: new UIDs become published events, known ones are updated.

        Idempotent by UID: the same file twice changes nothing the second time.
        Events cancelled here (``!absagen``) stay cancelled.
        """
        try:
            parsed = await asyncio.to_thread(
                parse_calendar,
                data,
                zone=village.tz,
                now=datetime.now(UTC),
                max_events=int(self.config["import_max_events"]),
            )
        except CalendarFormatError:
            raise ImportFailure("calendar.import_invalid") from None
        counts: Counter[str] = Counter()
        items = self.bot.moderation.items
        async with self.db.transaction():
            known = await self.events.by_uid(village.id)
            for event in parsed.events:
                found = known.get(event.uid)
                if found is None:
                    if event.cancelled:
                        counts["skipped"] += 1
                        continue
                    item, _ = await items.create(
                        village=village.id,
                        plugin=self.name,
                        kind="event",
                        state=states.PUBLISHED,
                        author=actor,
                        title=event.title,
                        body=event.description,
                        data=event_data(event, source),
                    )
                    await self.events.save(item.id, village.id, event, source=source)
                    known[event.uid] = (item.id, event.fingerprint(), item.state)
                    counts["new"] += 1
                    continue
                item_id, fingerprint, state = found
                if state != states.PUBLISHED or fingerprint == event.fingerprint():
                    counts["unchanged"] += 1
                    continue
                current = await items.get_by_id(item_id)
                if current is None:
                    continue
                if event.cancelled:
                    await items.transition(current, states.CANCELLED)
                    counts["cancelled"] += 1
                    continue
                await items.update(
                    current,
                    title=event.title,
                    body=event.description,
                    data=event_data(event, source),
                )
                await self.events.replace(item_id, event)
                counts["updated"] += 1
        self.log.info("import into %s: %s", village.id, dict(counts))
        return ImportResult(
            new=counts["new"],
            updated=counts["updated"],
            unchanged=counts["unchanged"],
            cancelled=counts["cancelled"],
            skipped=counts["skipped"] + parsed.skipped,
            past=parsed.past,
            unsupported=parsed.unsupported,
        )

    def _import_text(self, t: Translator, result: ImportResult) -> Text:
        extra: list[Text] = []
        if result.cancelled:
            extra.append(t("calendar.import_cancelled", n=result.cancelled))
        if result.past:
            extra.append(t("calendar.import_past", n=result.past))
        if result.unsupported:
            extra.append(t("calendar.import_unsupported", n=result.unsupported))
        if result.skipped:
            extra.append(t("calendar.import_skipped", n=result.skipped))
        return t(
            "calendar.import_done",
            new=result.new,
            updated=result.updated,
            unchanged=result.unchanged,
            extra=Markup(Text.join(extra, Text("", ""))),
            prefix=self.bot.config.command_prefix,
        )

    # ------------------------------------------------------------------ event hooks

    async def on_message(self, event: MessageEvent) -> None:
        """An ``.ics`` file posted by an organizer in a village room is imported."""
        if event.msgtype != "m.file":
            return
        info = self.bot.villages.room(event.room_id)
        if info is None:
            return
        content = event.content
        raw_info = content.get("info")
        file_info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        name = str(content.get("filename") or event.body).lower()
        if not (name.endswith(".ics") or file_info.get("mimetype") == "text/calendar"):
            return
        if self.bot.role_in(info.village, event.sender) < Role.ORGANIZER:
            return
        village = info.village
        limit = int(self.config["import_max_bytes"])
        size = file_info.get("size")
        sent = 0

        async def answer(text: Text) -> None:
            nonlocal sent
            sent += 1
            key = txn_id(event.event_id, "calendar-import", sent)
            await self.bot.matrix.answer(event.room_id, event.event_id, text, key=key)

        async def load() -> bytes:
            if isinstance(size, int) and size > limit:
                raise ImportFailure("calendar.import_too_large", max=_megabytes(limit))
            try:  # plain or encrypted (the file key travels in the encrypted event)
                data = await self.bot.matrix.download_attachment(content)
            except MatrixError as exc:
                self.log.warning("attached calendar not readable: %s", exc)
                raise ImportFailure(
                    "calendar.import_encrypted", prefix=self.bot.config.command_prefix
                ) from exc
            if len(data) > limit:
                raise ImportFailure("calendar.import_too_large", max=_megabytes(limit))
            return data

        t = self.bot.translator(village)
        try:
            await self.bot.moderation.check_not_blocked(village, event.sender)
        except Blocked as refused:
            await answer(t(refused.key, **refused.params))
            return
        if self.bot.jobs.full:
            await answer(t("calendar.import_busy"))
            return

        async def failed(_: BaseException) -> None:
            await answer(t("calendar.import_failed"))

        self.bot.jobs.start(
            f"import-file:{village.id}",
            self._import_job(village, t, answer, load, event.sender, f"file:{name}"),
            on_error=failed,
        )

    async def on_reaction(self, event: ReactionEvent) -> None:
        """👍 on a published event counts as taking part."""
        if event.emoji != RSVP_KEY:
            return
        info = self.bot.villages.room(event.room_id)
        if info is None or event.sender == self.bot.matrix.user_id:
            return
        item = await self.bot.moderation.items.by_event("published_event", event.target)
        if (
            item is None
            or item.plugin != self.name
            or item.village != info.village.id
            or item.state != states.PUBLISHED
        ):
            return
        await self.events.add_rsvp(item.id, event.sender, event.event_id)

    async def on_redaction(self, room_id: str, redacted_event: str, sender: str) -> None:
        """Taking back the 👍 (redacting one's own reaction) withdraws the RSVP."""
        await self.events.remove_rsvp(redacted_event, sender)

    # ------------------------------------------------------------------ digests

    async def _digest_job(self, village_id: str) -> None:
        village = self.bot.villages.get(village_id)
        if village is None:
            return
        await self.run_digest(village, datetime.now(village.tz).date())

    async def run_digest(self, village: VillageConfig, day: date) -> bool:
        """Send the village's digest of ``day`` unless it was sent (or skipped) before.

        The day is claimed in the database before anything is sent; the send
        uses ``txn_id("digest", village, day)``, so a retry after a crash is
        deduplicated by the homeserver. Returns whether this call sent it.
        """
        room_id = self.bot.villages.room_id(village, "calendar")
        if room_id is None:
            return False
        start, end = day_bounds(village, day)
        found = await self.occurrences(village, start, end)
        key_day = day.isoformat()
        if not found and not self.config["digest_when_empty"]:
            if await self.events.claim_digest(village.id, key_day, state="empty"):
                self.log.info("digest %s %s: no events", village.id, key_day)
            return False
        if not await self.events.claim_digest(village.id, key_day):
            return False
        await self._send_digest(village, day, found)
        return True

    async def _send_digest(
        self, village: VillageConfig, day: date, found: list[tuple[StoredEvent, Occurrence]]
    ) -> None:
        room_id = self.bot.villages.room_id(village, "calendar")
        if room_id is None:
            return
        t = self.bot.translator(village)
        formatter = Formatter(t, village.tz)
        if found:
            found = await self.with_rsvps(found)
            lines = [formatter.line(s.number, s.event, occ, s.rsvps) for s, occ in found]
            text = t(
                "calendar.digest",
                date=formatter.day_text(day),
                village=village.name,
                lines=Markup(Text.join(lines, Text("\n", ""))),
            )
        else:
            text = t("calendar.digest_empty", date=formatter.day_text(day), village=village.name)
        key_day = day.isoformat()
        to = await self.events.participants(s.item_id for s, _ in found)
        sent = await self.bot.matrix.tell(
            room_id, text, to=to, key=txn_id("digest", village.id, key_day)
        )
        event_id = await sent.event_id()
        await self._sent(room_id, event_id, [s.item_id for s, _ in found], to)
        await self.events.finish_digest(village.id, key_day, "sent", event_id)
        self.log.info("digest %s %s sent (%d events)", village.id, key_day, len(found))

    async def catch_up(self, now: datetime | None = None) -> None:
        """At start: today's digest if it was missed (within the grace period), and
        digests or reminders whose send was interrupted."""
        now = now or datetime.now(UTC)
        for village in self.bot.config.villages:
            try:
                await self._catch_up_digest(village, now)
            except Exception:
                self.log.exception("digest catch-up for %s failed", village.id)
        try:
            await self._resend_reminders(now)
            await self.events.prune(now - timedelta(days=30))
        except Exception:
            self.log.exception("reminder catch-up failed")

    async def _catch_up_digest(self, village: VillageConfig, now: datetime) -> None:
        local = now.astimezone(village.tz)
        day = local.date()
        due = digest_due(village, day)
        if local < due:
            return  # the job will run at digest time
        row = await self.events.digest_state(village.id, day.isoformat())
        late = now - due
        if row is not None:
            if row["state"] == "sending" and late <= self.grace:
                # claimed, but the send may not have finished: same key, same event
                start, end = day_bounds(village, day)
                await self._send_digest(village, day, await self.occurrences(village, start, end))
            return
        if late <= self.grace:
            if await self.run_digest(village, day):
                self.log.info("digest %s %s sent late (%s)", village.id, day, late)
            return
        first_start = not await self.events.any_digest(village.id)
        if await self.events.claim_digest(village.id, day.isoformat(), state="skipped"):
            if first_start:  # nothing was missed: the bot did not run before
                return
            self.log.warning(
                "digest %s %s missed while down (%s late): skipped", village.id, day, late
            )

    # ------------------------------------------------------------------ reminders

    async def run_reminders(self, now: datetime | None = None) -> int:
        """Send due reminders (``remind_hours`` before each occurrence); returns how many."""
        hours = self.remind_hours
        if hours <= 0:
            return 0
        now = now or datetime.now(UTC)
        lead = timedelta(hours=hours)
        sent = 0
        for village in self.bot.config.villages:
            if self.bot.villages.room_id(village, "calendar") is None:
                continue
            for stored, occ in await self.occurrences(village, now, now + lead):
                start = occ.start
                remind_at = start - lead
                if start <= now or remind_at > now:
                    continue
                created = await self._published_at(stored.item_id)
                if created is not None and created > remind_at:
                    await self.events.claim_reminder(stored.item_id, start, "late")
                    continue
                if now - remind_at > self.grace:
                    if await self.events.claim_reminder(stored.item_id, start, "skipped"):
                        self.log.warning(
                            "reminder for item %s at %s missed while down: skipped",
                            stored.item_id,
                            start,
                        )
                    continue
                if not await self.events.claim_reminder(stored.item_id, start, "sending"):
                    continue
                await self._send_reminder(village, stored, occ)
                sent += 1
        return sent

    async def _published_at(self, item_id: int) -> datetime | None:
        value = await self.db.fetchval("SELECT published_at FROM items WHERE id = ?", (item_id,))
        return datetime.fromtimestamp(value, UTC) if value else None

    async def _send_reminder(
        self, village: VillageConfig, stored: StoredEvent, occ: Occurrence
    ) -> None:
        room_id = self.bot.villages.room_id(village, "calendar")
        if room_id is None:
            return
        t = self.bot.translator(village)
        formatter = Formatter(t, village.tz)
        text = t(
            "calendar.reminder",
            number=stored.number,
            title=stored.event.title,
            when=formatter.when(occ),
            location=Markup(t("calendar.line_location", location=stored.event.location))
            if stored.event.location
            else "",
        )
        to = await self.events.participants([stored.item_id])
        event_id = await self.bot.matrix.tell(
            room_id,
            text,
            to=to,
            key=txn_id(
                "calendar-reminder", stored.village, stored.event.uid, occ.start.isoformat()
            ),
        )
        await self._sent(room_id, event_id, [stored.item_id], to)
        await self.events.finish_reminder(stored.item_id, occ.start)

    async def _resend_reminders(self, now: datetime) -> None:
        """Reminders claimed but maybe not sent (a crash): again, with the same key."""
        lead = timedelta(hours=self.remind_hours)
        for row in await self.events.unsent_reminders(now):
            start = datetime.fromtimestamp(row["occurrence"], UTC)
            if now - (start - lead) > self.grace:
                continue
            stored = await self.events.get(row["item_id"])
            village = self.bot.villages.get(stored.village) if stored else None
            if stored is None or village is None or stored.state != states.PUBLISHED:
                continue
            for occ in stored.series().occurrences(start, start + timedelta(seconds=1)):
                if occ.start == start:
                    await self._send_reminder(village, stored, occ)

    # ------------------------------------------------------------------ iCal

    async def feed(self, village: VillageConfig, now: datetime | None = None) -> str:
        """The village's published events as an iCalendar document."""
        now = now or datetime.now(UTC)
        since = now - timedelta(days=int(self.config["feed_past_days"]))
        stored = await self.events.feed(village.id, since)
        return render_feed(
            [s.event for s in stored], name=village.name, tz=village.timezone, stamp=now
        )

    async def serve_feed(self, request: web.Request) -> web.StreamResponse:
        village = self.bot.villages.get(request.match_info.get("village", ""))
        if village is None:
            raise web.HTTPNotFound()
        started = time.monotonic()
        body = (await self.feed(village)).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "max-age=300"}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        self.log.debug(
            "feed %s rendered in %.1f ms", village.id, (time.monotonic() - started) * 1000
        )
        return web.Response(
            body=body,
            content_type="text/calendar",
            charset="utf-8",
            headers={**headers, "Content-Disposition": f'inline; filename="{village.id}.ics"'},
        )

    # ------------------------------------------------------------------ web page

    async def web_sections(self, page: WebPage) -> list[WebSection]:
        """The next days' events on the public page, grouped by day, with the feed links."""
        village = page.village
        ahead = int(self.config["web_days"])
        limit = int(self.config["web_max_events"])
        found = await self.occurrences(
            village,
            page.now,
            page.now + timedelta(days=ahead),
            in_states=(states.PUBLISHED, states.CANCELLED),
        )
        formatter = self.formatter(village)
        today = page.local(page.now).date()
        days: dict[date, list[dict[str, Any]]] = {}
        for stored, occ in await self.with_rsvps(found[:limit]):
            day = max(formatter.local(occ)[0].date(), today)  # running ones under today
            days.setdefault(day, []).append(
                {
                    "number": stored.number,
                    "title": stored.event.title,
                    "time": formatter.time_of(occ),
                    "location": stored.event.location,
                    "repeat": formatter.repeat(stored.event),
                    "rsvps": stored.rsvps,
                    "cancelled": stored.state == states.CANCELLED,
                }
            )
        url = self.feed_url(village)
        return [
            WebSection(
                key="events",
                title=page.plain("calendar.web.title"),
                template="calendar/section.html",
                context={
                    "days": [
                        {"title": page.day(day, relative=True), "events": events}
                        for day, events in days.items()
                    ],
                    "ahead": ahead,
                    "more": max(0, len(found) - limit),
                    "feed_url": url,
                    "webcal_url": "webcal://" + url.split("://", 1)[-1],
                    "prefix": self.bot.config.command_prefix,
                },
                order=20,
            )
        ]

    # ------------------------------------------------------------------ privacy

    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        rows = await self.events.rsvps_of(user_id)
        return {
            "rsvps": [
                {
                    "village": r["village"],
                    "number": r["number"],
                    "title": r["title"],
                    "at": datetime.fromtimestamp(r["created_at"], UTC).isoformat(),
                }
                for r in rows
            ]
        }

    async def forget_user(self, user_id: str) -> None:
        await self.events.forget(user_id)

    async def purge_items(self, item_ids: list[int]) -> None:
        await self.events.purge(item_ids)

    async def _sent(
        self, room_id: str, event_id: str | Sent, item_ids: list[int], told: Iterable[str] = ()
    ) -> None:
        """Record a message carrying these events and naming the people ``told``
        (``!vergessen`` redacts it)."""
        await self.bot.moderation.items.record_sent(room_id, event_id, items=item_ids, users=told)


# ---------------------------------------------------------------------- helpers


def event_data(event: CalendarEvent, source: str | None = None) -> dict[str, Any]:
    """What an item's ``data`` keeps of an event (the queue and !meine render from it)."""
    return {
        "uid": event.uid,
        "start": event.start.isoformat(),
        "end": event.end.isoformat() if event.end else None,
        "tz": event.tz,
        "all_day": event.all_day,
        "rrule": event.rrule,
        "exdates": [d.isoformat() for d in event.exdates],
        "location": event.location or None,
        "url": event.url or None,
        "source": source,
    }


def digest_clock(village: VillageConfig) -> tuple[int, int]:
    hour, _, minute = village.digest_time.partition(":")
    return int(hour), int(minute or 0)


def digest_due(village: VillageConfig, day: date) -> datetime:
    """When the digest of ``day`` is due (aware, village time)."""
    hour, minute = digest_clock(village)
    naive = datetime(day.year, day.month, day.day, hour, minute)
    return naive.replace(tzinfo=village.tz)


def day_bounds(village: VillageConfig, day: date) -> tuple[datetime, datetime]:
    """Start and end of a local day as aware datetimes (23 or 25 hours at DST changes)."""
    start = datetime(day.year, day.month, day.day, tzinfo=village.tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=village.tz)
    return start, end


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g}"


__all__ = ["CalendarPlugin"]
