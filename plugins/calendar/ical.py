"""iCalendar (RFC 5545) for the calendar plugin: the feed and imports, as pure functions.

:func:`render_feed` writes a village's events as a ``VCALENDAR`` with one
``VTIMEZONE`` per time zone used, RRULEs and EXDATEs as stored, stable UIDs,
CRLF line ends and lines folded at 75 octets. It is written by hand (not with
:mod:`icalendar`) because a feed of a thousand events must render in a few
milliseconds; only the ``VTIMEZONE`` blocks come from :mod:`icalendar`, cached.

:func:`parse_calendar` reads an ``.ics`` file (e.g. the waste-collection
calendar) with :mod:`icalendar` into :class:`CalendarEvent` values: all-day
and timed events, TZID/UTC/floating times, RRULE (UNTIL normalised to what
RFC 5545 asks for), EXDATE, moved or cancelled single occurrences
(RECURRENCE-ID), cancelled events. Anything unreadable is counted as skipped,
never guessed; an event whose RRULE the calendar does not support
(:func:`~.recurrence.parse_rule`: HOURLY and finer, BYHOUR, BYWEEKNO, ``X-``
parts, ...) is counted as unsupported and left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from .recurrence import RecurrenceError, Series

PRODID = "-//dorfbot//dorfbot calendar//DE"
MAX_TITLE = 200
MAX_TEXT = 4000
CRLF = "\r\n"


class CalendarFormatError(ValueError):
    """Data that is not an iCalendar file at all."""


@dataclass(frozen=True)
class CalendarEvent:
    """One event as the feed writes it and an import reads it.

    Times are naive wall-clock times in ``tz`` (an IANA name or ``UTC``);
    all-day events use local midnights, ``end`` exclusive.
    """

    uid: str
    title: str
    start: datetime
    tz: str
    end: datetime | None = None
    all_day: bool = False
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    description: str = ""
    location: str = ""
    url: str = ""
    sequence: int = 0
    created: datetime | None = None
    """Aware (UTC)."""
    modified: datetime | None = None
    """Aware (UTC)."""
    cancelled: bool = False

    def series(self, key: int = 0) -> Series:
        """The event's occurrences (raises RecurrenceError for an unreadable RRULE)."""
        length = self.end - self.start if self.end is not None else None
        return Series(
            key,
            self.start,
            _zone(self.tz),
            self.rrule,
            length,
            self.all_day,
            frozenset(self.exdates),
        )

    def fingerprint(self) -> str:
        """Changes when anything a resident sees changes (for idempotent imports)."""
        values = [
            self.title,
            self.start.isoformat(),
            self.tz,
            self.end.isoformat() if self.end else None,
            self.all_day,
            self.rrule,
            sorted(d.isoformat() for d in self.exdates),
            self.description,
            self.location,
            self.url,
            self.cancelled,
        ]
        return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:32]


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# ------------------------------------------------------------------------ render


def escape_text(value: str) -> str:
    """TEXT value escaping (RFC 5545 3.3.11); control characters are dropped."""
    cleaned = "".join(ch for ch in value if ch in "\n\t" or (ord(ch) >= 32 and ord(ch) != 127))
    return (
        cleaned.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\n")
        .replace("\n", "\\n")
    )


def fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character."""
    if len(line) <= 75 and line.isascii():
        return line
    encoded = line.encode()
    if len(encoded) <= 75:
        return line
    parts: list[str] = []
    start, limit = 0, 75
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1  # never cut inside a multi-byte character
        parts.append(encoded[start:end].decode())
        start, limit = end, 74  # continuation lines start with a space
    return "\r\n ".join(parts)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _dt_prop(name: str, moment: datetime, tz: str, all_day: bool) -> str:
    if all_day:
        return f"{name};VALUE=DATE:{moment:%Y%m%d}"
    if tz == "UTC":
        return f"{name}:{moment:%Y%m%dT%H%M%S}Z"
    return f"{name};TZID={tz}:{moment:%Y%m%dT%H%M%S}"


def _exdate_prop(event: CalendarEvent) -> str:
    days = sorted(event.exdates)
    if event.all_day:
        return "EXDATE;VALUE=DATE:" + ",".join(f"{d:%Y%m%d}" for d in days)
    if event.tz == "UTC":
        return "EXDATE:" + ",".join(f"{d:%Y%m%dT%H%M%S}Z" for d in days)
    return f"EXDATE;TZID={event.tz}:" + ",".join(f"{d:%Y%m%dT%H%M%S}" for d in days)


@lru_cache(maxsize=32)
def vtimezone(tz: str, first_year: int, last_year: int) -> str:
    """A VTIMEZONE block for ``tz`` covering the given years (cached)."""
    component = icalendar.Timezone.from_tzid(
        tz, first_date=date(first_year, 1, 1), last_date=date(last_year, 12, 31)
    )
    text: str = component.to_ical().decode()
    return text.replace("\r\n", "\n").strip("\n").replace("\n", CRLF)


def render_event(event: CalendarEvent, stamp: datetime) -> list[str]:
    """The content lines of one VEVENT (unfolded)."""
    lines = [
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{_stamp(event.modified or stamp)}",
        _dt_prop("DTSTART", event.start, event.tz, event.all_day),
    ]
    if event.end is not None:
        lines.append(_dt_prop("DTEND", event.end, event.tz, event.all_day))
    if event.rrule:
        lines.append(f"RRULE:{event.rrule}")
        if event.exdates:
            lines.append(_exdate_prop(event))
    lines.append(f"SUMMARY:{escape_text(event.title)}")
    if event.location:
        lines.append(f"LOCATION:{escape_text(event.location)}")
    if event.description:
        lines.append(f"DESCRIPTION:{escape_text(event.description)}")
    if event.url:
        lines.append(f"URL:{escape_text(event.url)}")
    if event.created is not None:
        lines.append(f"CREATED:{_stamp(event.created)}")
    if event.modified is not None:
        lines.append(f"LAST-MODIFIED:{_stamp(event.modified)}")
    lines += [
        f"SEQUENCE:{event.sequence}",
        "STATUS:CANCELLED" if event.cancelled else "STATUS:CONFIRMED",
        "TRANSP:TRANSPARENT" if event.all_day else "TRANSP:OPAQUE",
        "END:VEVENT",
    ]
    return lines


def render_feed(events: Iterable[CalendarEvent], *, name: str, tz: str, stamp: datetime) -> str:
    """A complete VCALENDAR for subscription (CRLF line ends, folded lines)."""
    events = list(events)
    zones = sorted(({e.tz for e in events if not e.all_day} | {tz}) - {"UTC"})
    first_year = min([stamp.year - 1, *(e.start.year for e in events)])
    last_year = stamp.year + 5
    head = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(name)}",
        f"X-WR-TIMEZONE:{tz}",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    out = [fold(line) for line in head]
    out += [vtimezone(zone, first_year, last_year) for zone in zones]
    for event in events:
        out += [fold(line) for line in render_event(event, stamp)]
    out.append("END:VCALENDAR")
    return CRLF.join(out) + CRLF


# ------------------------------------------------------------------------- parse


@dataclass
class ParsedCalendar:
    """What :func:`parse_calendar` found: events to import and how many it skipped."""

    events: list[CalendarEvent] = field(default_factory=list)
    skipped: int = 0
    past: int = 0
    unsupported: int = 0
    """Events left out for a recurrence rule the calendar does not support."""


def parse_calendar(
    data: bytes,
    *,
    zone: ZoneInfo,
    now: datetime,
    max_events: int = 2000,
    keep_past: timedelta = timedelta(days=1),
) -> ParsedCalendar:
    """Read VEVENTs of an iCalendar file.

    Floating times and unknown time zones are taken as the village's ``zone``.
    Events that ended more than ``keep_past`` before ``now`` are counted in
    ``past`` and left out; at most ``max_events`` are returned.
    Raises :class:`CalendarFormatError` when ``data`` is no calendar at all.
    """
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises ValueError, KeyError, ... on junk
        raise CalendarFormatError(str(exc)[:200]) from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise CalendarFormatError("not a VCALENDAR")
    result = ParsedCalendar()
    masters: dict[str, CalendarEvent] = {}
    overrides: list[tuple[str, datetime, CalendarEvent | None]] = []
    for component in calendar.walk("VEVENT"):
        try:
            event, recurrence_id = _read_event(component, zone)
        except RecurrenceError:
            result.unsupported += 1
            continue
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            ZoneInfoNotFoundError,
            OverflowError,
        ):
            result.skipped += 1
            continue
        if recurrence_id is not None:
            # A moved or cancelled single occurrence of a series.
            overrides.append((event.uid, recurrence_id, None if event.cancelled else event))
            continue
        if event.uid in masters:
            result.skipped += 1
            continue
        masters[event.uid] = event
    for uid, recurrence_id, moved in overrides:
        master = masters.get(uid)
        if master is not None and master.rrule:
            masters[uid] = replace(
                master, exdates=tuple(sorted({*master.exdates, _local_like(recurrence_id, master)}))
            )
        if moved is not None:
            key = f"{uid}/{recurrence_id:%Y%m%dT%H%M%S}"
            masters.setdefault(key, replace(moved, uid=key))
    limit = now - keep_past
    for event in masters.values():
        try:
            last = event.series().last_end()
        except RecurrenceError:
            result.unsupported += 1
            continue
        except (ValueError, OverflowError):
            result.skipped += 1
            continue
        if last is not None and last < limit:
            result.past += 1
            continue
        if len(result.events) >= max_events:
            result.skipped += 1
            continue
        result.events.append(event)
    return result


def _local_like(moment: datetime, master: CalendarEvent) -> datetime:
    """A RECURRENCE-ID as a naive wall-clock time in the master's zone."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(_zone(master.tz)).replace(tzinfo=None)
    if master.all_day:
        return datetime.combine(moment.date(), datetime.min.time())
    return moment


def _text(component: Any, name: str, limit: int = MAX_TEXT) -> str:
    value = component.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    if limit == MAX_TITLE:  # one line
        return " ".join(str(value).split())[:limit]
    return str(value).strip()[:limit]


def _as_wall(value: date | datetime, zone: ZoneInfo) -> tuple[datetime, str, bool]:
    """(naive wall-clock time, tz name, all-day) of a DTSTART-like value."""
    if not isinstance(value, datetime):
        return datetime.combine(value, datetime.min.time()), zone.key, True
    if value.tzinfo is None:
        return value, zone.key, False
    name = _tz_name(value.tzinfo, value)
    if name is None:
        return value.astimezone(zone).replace(tzinfo=None), zone.key, False
    return value.replace(tzinfo=None), name, False


def _tz_name(tz: tzinfo, moment: datetime) -> str | None:
    """An IANA name we can use for ``tz``, ``UTC``, or None (convert to the village)."""
    if isinstance(tz, ZoneInfo):
        return "UTC" if tz.key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z") else tz.key
    if moment.utcoffset() == timedelta(0) and tz.tzname(moment) in ("UTC", "Z", "GMT", None):
        return "UTC"
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if isinstance(key, str):
        try:
            _zone(key)
        except (ZoneInfoNotFoundError, ValueError):
            return None
        return key
    return None


def _in_zone(value: date | datetime, tz: str, all_day: bool) -> datetime:
    """Another date/time property as naive wall-clock time in the event's zone."""
    if all_day:
        day = value.date() if isinstance(value, datetime) else value
        return datetime.combine(day, datetime.min.time())
    if not isinstance(value, datetime):
        return datetime.combine(value, datetime.min.time())
    if value.tzinfo is None:
        return value
    return value.astimezone(_zone(tz)).replace(tzinfo=None)


def _dates(component: Any, name: str) -> Iterator[date | datetime]:
    value = component.get(name)
    if value is None:
        return
    for item in value if isinstance(value, list) else [value]:
        for entry in getattr(item, "dts", []):
            yield entry.dt


def _read_event(component: Any, zone: ZoneInfo) -> tuple[CalendarEvent, datetime | None]:
    title = _text(component, "SUMMARY", MAX_TITLE)
    if not title:
        raise ValueError("no SUMMARY")
    start, tz, all_day = _as_wall(component.decoded("DTSTART"), zone)
    end: datetime | None = None
    if component.get("DTEND") is not None:
        end = _in_zone(component.decoded("DTEND"), tz, all_day)
    elif component.get("DURATION") is not None:
        length = component.decoded("DURATION")
        if isinstance(length, timedelta):
            end = start + length
    elif all_day:
        end = start + timedelta(days=1)
    if end is not None and end <= start:
        end = start + timedelta(days=1) if all_day else None
    rrule: str | None = None
    value = component.get("RRULE")
    if isinstance(value, list):
        value = value[0] if value else None
    if value is not None:
        rrule = _normalise_rrule(value.to_ical().decode(), tz, all_day)
    exdates = tuple(sorted({_in_zone(d, tz, all_day) for d in _dates(component, "EXDATE")}))
    uid = _text(component, "UID", 500)
    if not uid:
        basis = f"{title}|{start.isoformat()}|{tz}|{rrule}"
        uid = "dorfbot-import-" + hashlib.sha256(basis.encode()).hexdigest()[:24]
    recurrence_id: datetime | None = None
    if component.get("RECURRENCE-ID") is not None:
        rid = component.decoded("RECURRENCE-ID")
        recurrence_id = (
            rid if isinstance(rid, datetime) else datetime.combine(rid, datetime.min.time())
        )
    try:
        sequence = int(component.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        sequence = 0
    event = CalendarEvent(
        uid=uid,
        title=title,
        start=start,
        tz=tz,
        end=end,
        all_day=all_day,
        rrule=rrule,
        exdates=exdates if rrule else (),
        description=_text(component, "DESCRIPTION"),
        location=_text(component, "LOCATION", 500),
        url=_text(component, "URL", 500),
        sequence=max(0, sequence),
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
    )
    event.series()  # refuse rules we do not expand (raises RecurrenceError)
    return event, recurrence_id


def _normalise_rrule(text: str, tz: str, all_day: bool) -> str:
    """UNTIL as RFC 5545 wants it next to our DTSTART: a DATE for all-day events,
    UTC otherwise (a date-only or floating UNTIL is local to the event)."""
    parts = []
    for part in text.strip().split(";"):
        name, _, value = part.partition("=")
        if name.strip().upper() == "UNTIL":
            value = _until(value.strip().upper(), tz, all_day)
        parts.append(f"{name.strip().upper()}={value}")
    return ";".join(parts)


def _until(value: str, tz: str, all_day: bool) -> str:
    zone = _zone(tz)
    if len(value) == 8:
        moment = datetime.strptime(value, "%Y%m%d")
        if all_day:
            return value
        local = moment.replace(hour=23, minute=59, second=59)
    else:
        local = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
        if value.endswith("Z"):
            if all_day:
                return f"{local.replace(tzinfo=UTC).astimezone(zone):%Y%m%d}"
            return value
        if all_day:
            return f"{local:%Y%m%d}"
    return _stamp(local.replace(tzinfo=zone))
