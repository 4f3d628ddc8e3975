"""Dates, times and events as residents read them, from the plugin's catalogs.

Every word comes from ``locales/<lang>/calendar.yaml`` (weekday and month names
too); this module only picks the template and fills in numbers. Times are shown
in the village's time zone.
"""

from __future__ import annotations

import html
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dorfbot.dates import describe_rrule
from dorfbot.i18n import Markup, Text, Translator

from .ical import CalendarEvent
from .recurrence import Occurrence


class Formatter:
    """Formats dates, times and events in one language and time zone."""

    def __init__(self, t: Translator, zone: ZoneInfo) -> None:
        self.t = t
        self.zone = zone

    # ------------------------------------------------------------- pieces

    def _fields(self, day: date) -> dict[str, str]:
        t = self.t
        return {
            "weekday": t.plain(f"calendar.weekday.{day.weekday()}"),
            "weekday_short": t.plain(f"calendar.weekday_short.{day.weekday()}"),
            "day": f"{day.day:02d}",
            "day_num": str(day.day),
            "month": f"{day.month:02d}",
            "month_name": t.plain(f"calendar.month.{day.month}"),
            "year": str(day.year),
        }

    def day_text(self, day: date) -> str:
        """``Samstag, 24.12.2026``."""
        return self.t.plain("calendar.fmt.date", **self._fields(day))

    def day_short(self, day: date) -> str:
        """``Sa, 24.12.``."""
        return self.t.plain("calendar.fmt.date_short", **self._fields(day))

    def clock(self, moment: datetime) -> str:
        return self.t.plain(
            "calendar.fmt.clock", hour=f"{moment.hour:02d}", minute=f"{moment.minute:02d}"
        )

    def local(self, occurrence: Occurrence) -> tuple[datetime, datetime | None]:
        """Start and end as naive wall-clock times of the village."""
        if occurrence.series.all_day:
            length = occurrence.series.duration or timedelta(days=1)
            return occurrence.local, occurrence.local + length
        start = occurrence.start.astimezone(self.zone).replace(tzinfo=None)
        end = occurrence.end
        return start, end.astimezone(self.zone).replace(tzinfo=None) if end else None

    # ------------------------------------------------------------- phrases

    def time_of(self, occurrence: Occurrence) -> str:
        """The time part of a list line: ``18:00 Uhr``, ``18:00–20:00 Uhr``, ``ganztägig``."""
        start, end = self.local(occurrence)
        if occurrence.series.all_day:
            days = ((end or start) - start).days
            if days > 1:
                return self.t.plain(
                    "calendar.fmt.time_days",
                    end_date=self.day_short((end or start).date() - timedelta(days=1)),
                )
            return self.t.plain("calendar.fmt.time_all_day")
        if end is None:
            return self.t.plain("calendar.fmt.time_at", time=self.clock(start))
        if end - start < timedelta(days=1):
            return self.t.plain(
                "calendar.fmt.time_range", start=self.clock(start), end=self.clock(end)
            )
        return self.t.plain(
            "calendar.fmt.time_until",
            start=self.clock(start),
            end_date=self.day_short(end.date()),
            end=self.clock(end),
        )

    def when(self, occurrence: Occurrence) -> str:
        """Date and time of one occurrence: ``Samstag, 24.12.2026, 18:00 Uhr``."""
        start, _ = self.local(occurrence)
        return self.t.plain(
            "calendar.fmt.when", date=self.day_text(start.date()), time=self.time_of(occurrence)
        )

    def repeat(self, event: CalendarEvent) -> str:
        """``jeden Montag`` for a recurring event, "" for a one-off."""
        if not event.rrule:
            return ""
        zone = ZoneInfo(event.tz)
        return describe_rrule(event.rrule, self.t.language, start=event.start.replace(tzinfo=zone))

    # ------------------------------------------------------------- blocks

    def event(self, number: int, event: CalendarEvent, first: Occurrence | None) -> Text:
        """An event as posted in the calendar room and shown in the queue (one fact a line)."""
        t = self.t
        when = self.when(first) if first is not None else self.day_text(event.start.date())
        lines = [
            t("calendar.event_title", number=number, title=event.title),
            t("calendar.event_when", when=when),
        ]
        if event.rrule:
            lines.append(t("calendar.event_repeat", rule=self.repeat(event)))
        if event.location:
            lines.append(t("calendar.event_location", location=event.location))
        if event.description:
            lines.append(multiline(event.description))
        return Text.join(lines)

    def line(
        self,
        number: int,
        event: CalendarEvent,
        occurrence: Occurrence,
        rsvps: int,
        *,
        with_date: bool = False,
    ) -> Text:
        """One list entry: time, title, number, place, RSVPs (and the date if asked)."""
        t = self.t
        extra: list[Text] = []
        if event.location:
            extra.append(t("calendar.line_location", location=event.location))
        if event.rrule:
            extra.append(t("calendar.line_repeat", rule=self.repeat(event)))
        if rsvps:
            extra.append(t("calendar.line_rsvps", count=rsvps))
        time_text = self.time_of(occurrence)
        if with_date:
            time_text = self.when(occurrence)
        return t(
            "calendar.line",
            time=time_text,
            title=event.title,
            number=number,
            extra=Markup(Text.join(extra, Text("", ""))),
        )


def multiline(value: str) -> Text:
    """User text with its line breaks kept in HTML (escaped)."""
    return Text(value, "<br>".join(html.escape(line, quote=True) for line in value.splitlines()))
