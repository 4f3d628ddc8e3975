"""Expanding stored events into occurrences, fast, bounded and in local wall-clock time.

An event is a :class:`Series`: a wall-clock start in its time zone, an
optional RFC 5545 RRULE, EXDATEs and a wall-clock length. Occurrences are
generated as naive local times and only then turned into instants, so a
Sunday 10:00 service stays at 10:00 across daylight-saving changes.

Only what a village calendar needs is accepted (:func:`parse_rule`):
FREQ=DAILY/WEEKLY/MONTHLY/YEARLY with INTERVAL (up to 1000), COUNT, UNTIL,
BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS and WKST. HOURLY/MINUTELY/SECONDLY, the
other BYxxx parts and unknown (``X-``) parts raise :class:`UnsupportedRule`,
so an import refuses them and a stored one is skipped, never expanded.

Every rule is generated directly for the asked window (whole periods aligned
to DTSTART and INTERVAL), never iterated from DTSTART onwards, so the work per
series is bounded by the window, not by the age of the series; at most
:data:`MAX_PER_SERIES` occurrences come from one series per call. A COUNT is
turned once into the start of its last occurrence (a cached datetime, searched
at most :data:`COUNT_HORIZON_YEARS` ahead and cut at :data:`MAX_COUNT`), so
it bounds the window like an UNTIL. :func:`expand_async` expands many series
and yields to the event loop every few milliseconds.
``tests/unit/test_calendar_recurrence.py`` checks the generators against
dateutil.

Like :class:`dorfbot.dates.When`, DTSTART itself is always the first
occurrence (RFC 5545 counts it even when the rule would not produce it).
"""

from __future__ import annotations

import asyncio
import calendar
import heapq
import logging
import time as clock
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import cast
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
ZERO = timedelta(0)
MAX_COUNT = 10_000
"""Rules with a larger COUNT are cut there (a weekly event for 190 years)."""
COUNT_HORIZON_YEARS = 100
"""How far after DTSTART the last occurrence of a COUNT rule is searched."""
MAX_INTERVAL = 1000
MAX_PER_SERIES = 2000
"""Occurrences one series contributes to one expansion at most."""
SLICE_SECONDS = 0.004
""":func:`expand_async` yields to the event loop after this much work."""
SORT_AT_ONCE = 10_000
""":func:`expand_async` sorts up to this many occurrences in one go (a few milliseconds);
more are sorted series by series and merged, yielding in between."""

_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
)
"""The RRULE parts the calendar understands; anything else is refused."""


class RecurrenceError(ValueError):
    """An RRULE this module cannot read."""


class UnsupportedRule(RecurrenceError):
    """A well-formed RRULE the calendar does not support (e.g. FREQ=HOURLY, X-parts)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """An RRULE value split into its parts."""

    text: str
    freq: str
    interval: int = 1
    count: int | None = None
    until: datetime | None = None
    """Naive local time (inclusive); a date-only UNTIL is the end of that day."""
    byday: tuple[tuple[int | None, int], ...] = ()
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    bysetpos: tuple[int, ...] = ()
    wkst: int = 0


@lru_cache(maxsize=4096)
def parse_rule(text: str, zone: ZoneInfo) -> Rule:
    """Read an RRULE value (with or without the ``RRULE:`` prefix); cached, rules repeat.

    Raises :class:`UnsupportedRule` for frequencies and parts the calendar does
    not support and :class:`RecurrenceError` for malformed rules.
    """
    value = text.strip()
    if value[:6].upper() == "RRULE:":
        value = value[6:]
    if not value or len(value) > 1000:
        raise RecurrenceError("empty or overlong RRULE")
    parts: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, item = part.partition("=")
        name = name.strip().upper()
        if not name:
            continue
        if not sep or name in parts:
            raise RecurrenceError(f"bad RRULE part {part[:40]!r}")
        parts[name] = item.strip().upper()
    freq = parts.get("FREQ", "")
    if freq not in FREQUENCIES:
        raise UnsupportedRule(f"FREQ {freq[:20]!r} is not supported")
    unknown = sorted(set(parts) - PARTS)
    if unknown:
        raise UnsupportedRule(f"RRULE part {unknown[0][:20]!r} is not supported")
    try:
        interval = int(parts.get("INTERVAL", "1") or "1")
        count = int(parts["COUNT"]) if "COUNT" in parts else None
        byday = tuple(_byday(item) for item in _items(parts.get("BYDAY")))
        bymonthday = tuple(int(item) for item in _items(parts.get("BYMONTHDAY")))
        bymonth = tuple(int(item) for item in _items(parts.get("BYMONTH")))
        bysetpos = tuple(int(item) for item in _items(parts.get("BYSETPOS")))
        wkst = _CODES.index(parts.get("WKST", "MO"))
    except ValueError as exc:
        raise RecurrenceError(str(exc)[:100]) from None
    if not 1 <= interval <= MAX_INTERVAL or (count is not None and count < 1):
        raise RecurrenceError(f"INTERVAL must be 1..{MAX_INTERVAL}, COUNT positive")
    if any(not 1 <= m <= 12 for m in bymonth) or any(
        d == 0 or not -31 <= d <= 31 for d in bymonthday
    ):
        raise RecurrenceError("BYMONTH or BYMONTHDAY out of range")
    if any(n is not None and (n == 0 or not -53 <= n <= 53) for n, _ in byday):
        raise RecurrenceError("BYDAY ordinal out of range")
    if any(p == 0 or not -366 <= p <= 366 for p in bysetpos):
        raise RecurrenceError("BYSETPOS out of range")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("COUNT and UNTIL together")
    # RFC 5545 3.3.10: ordinal weekdays only with MONTHLY/YEARLY, no BYMONTHDAY with WEEKLY.
    if freq in ("DAILY", "WEEKLY") and any(n is not None for n, _ in byday):
        raise RecurrenceError("BYDAY ordinals need FREQ=MONTHLY or YEARLY")
    if freq == "WEEKLY" and bymonthday:
        raise RecurrenceError("BYMONTHDAY with FREQ=WEEKLY")
    until = _until(parts["UNTIL"], zone) if "UNTIL" in parts else None
    return Rule(
        value,
        freq,
        interval,
        min(count, MAX_COUNT) if count is not None else None,
        until,
        byday,
        tuple(sorted(set(bymonthday))),
        tuple(sorted(set(bymonth))),
        tuple(sorted(set(bysetpos))),
        wkst,
    )


def _items(value: str | None) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def _byday(item: str) -> tuple[int | None, int]:
    code = item[-2:]
    if code not in _CODES:
        raise ValueError(f"bad BYDAY {item[:20]!r}")
    number = item[:-2]
    return (int(number) if number not in ("", "+", "-") else None), _CODES.index(code)


def _until(value: str, zone: ZoneInfo) -> datetime:
    try:
        if len(value) == 8:
            return datetime.strptime(value, "%Y%m%d").replace(hour=23, minute=59, second=59)
        moment = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
        if value.endswith("Z"):
            return moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise RecurrenceError(f"bad UNTIL {value[:40]!r}") from None
    return moment


# ------------------------------------------------------------------------ series


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a series: its wall-clock start and its real instants.

    ``utc_start``/``utc_end`` are naive UTC (cheap to make and compare, which
    matters when a month of a thousand series is expanded); :attr:`start` and
    :attr:`end` give them as aware datetimes.
    """

    series: Series
    local: datetime
    """Naive wall-clock start in the series' zone."""
    utc_start: datetime
    utc_end: datetime | None

    @property
    def start(self) -> datetime:
        return self.utc_start.replace(tzinfo=UTC)

    @property
    def end(self) -> datetime | None:
        return None if self.utc_end is None else self.utc_end.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """A stored event as far as time goes; ``key`` identifies it to the caller."""

    key: int
    local_start: datetime
    """Naive wall-clock start of the first occurrence."""
    zone: ZoneInfo
    rrule: str | None = None
    duration: timedelta | None = None
    """Wall-clock length of each occurrence; None for a point in time."""
    all_day: bool = False
    exdates: frozenset[datetime] = frozenset()
    """Excluded starts, naive wall-clock."""
    rule: Rule | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.local_start.tzinfo is not None:
            raise ValueError("local_start must be naive wall-clock time")
        if self.rrule:
            object.__setattr__(self, "rule", parse_rule(self.rrule, self.zone))

    # ----------------------------------------------------------------- queries

    def real(self, naive: datetime) -> datetime:
        """The instant (aware, UTC) a wall-clock time of this series means.

        A time skipped in spring means the instant one hour later (fold 0);
        a repeated one in autumn is the first of the two.
        """
        return (naive - _offset(self.zone)(naive)).replace(tzinfo=UTC)

    def occurrences(self, after: datetime, before: datetime) -> list[Occurrence]:
        """Occurrences overlapping ``[after, before)``, in order (see :func:`expand`)."""
        return expand((self,), after, before)

    def _collect(
        self,
        lo: datetime,
        hi: datetime,
        naive_lo: datetime,
        naive_hi: datetime,
        out: list[Occurrence],
    ) -> None:
        """Append occurrences overlapping ``[lo, hi)`` (naive UTC); ``naive_lo``/``naive_hi``
        are the window in this series' wall-clock time, with a day of slack."""
        length = self.duration
        if length is not None and length <= ZERO:
            length = None
        if length is not None:
            naive_lo -= length
        offset = _offset(self.zone)
        exdates = self.exdates
        append = out.append
        for local in self._locals(naive_lo, naive_hi):
            if exdates and local in exdates:
                continue
            start = local - offset(local)
            if start >= hi:
                continue
            if length is None:
                if start >= lo:
                    append(Occurrence(self, local, start, None))
                continue
            end_local = local + length
            end = end_local - offset(end_local)
            if end > lo:
                append(Occurrence(self, local, start, end))

    def last_end(self) -> datetime | None:
        """The end (or start) of the last occurrence as an instant; None if endless."""
        last: datetime | None = self.local_start
        rule = self.rule
        if rule is not None:
            if rule.count is not None:
                end = _count_end(rule, self.local_start)
                last = None if end is None else max(end, self.local_start)
            elif rule.until is not None:
                last = max(rule.until, self.local_start)
            else:
                last = None
        if last is None:
            return None
        if self.duration is not None and self.duration > ZERO:
            last = last + self.duration
        return self.real(last)

    # ----------------------------------------------------------------- generation

    def _locals(self, lo: datetime, hi: datetime) -> list[datetime]:
        """Naive local starts in ``[lo, hi]``, each once (DTSTART first, the rest ascending)."""
        first = self.local_start
        found = [first] if lo <= first <= hi else []
        rule = self.rule
        if rule is None or hi < first:
            return found
        last = rule.until if rule.count is None else _count_end(rule, first)
        if last is not None:
            if last < lo:
                return found
            hi = min(hi, last)
        lo = max(lo, first)
        at = first.time()
        combine = datetime.combine
        for day in _days(rule, first.date(), lo.date(), hi.date(), MAX_PER_SERIES):
            local = combine(day, at)
            if lo <= local <= hi and local != first:  # DTSTART is in already
                found.append(local)
        return found


def expand(series: Iterable[Series], after: datetime, before: datetime) -> list[Occurrence]:
    """Occurrences of many series overlapping ``[after, before)``, ordered by start.

    An occurrence with a length overlaps when it ends after ``after``; a point
    in time when it starts at or after ``after``. Bounds are aware. Equal starts
    keep the order of ``series``. A series that cannot be expanded (a date out
    of range) is logged and left out.
    """
    expansion = _Expansion(after, before)
    for one in series:
        expansion.add(one)
    return expansion.result()


async def expand_async(
    series: Iterable[Series], after: datetime, before: datetime
) -> list[Occurrence]:
    """:func:`expand`, yielding to the event loop every :data:`SLICE_SECONDS` of work,
    so a village with thousands of events never holds up other villages' commands."""
    expansion = _Expansion(after, before)
    deadline = clock.perf_counter() + SLICE_SECONDS
    ends: list[int] = []
    for one in series:
        expansion.add(one)
        ends.append(len(expansion.found))
        if clock.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = clock.perf_counter() + SLICE_SECONDS
    found = expansion.found
    if len(found) <= SORT_AT_ONCE:
        # One stable sort (about a millisecond for a month of a thousand series):
        # equal starts keep the order of `series`, as in expand().
        return expansion.result()
    runs: list[list[Occurrence]] = []
    begin = 0
    for end in ends:
        if end > begin:
            runs.append(sorted(found[begin:end], key=_by_start))
            begin = end
        if clock.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = clock.perf_counter() + SLICE_SECONDS
    merged: list[Occurrence] = []
    # heapq.merge is stable across runs, so equal starts keep the order of `series`.
    for index, occurrence in enumerate(heapq.merge(*runs, key=_by_start)):
        merged.append(occurrence)
        if not index % 1024 and clock.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = clock.perf_counter() + SLICE_SECONDS
    return merged


class _Expansion:
    """One window's expansion, fed series by series."""

    def __init__(self, after: datetime, before: datetime) -> None:
        self.after, self.before = after, before
        self.empty = before <= after
        self.lo = after.astimezone(UTC).replace(tzinfo=None)
        self.hi = before.astimezone(UTC).replace(tzinfo=None)
        self.bounds: dict[ZoneInfo, tuple[datetime, datetime]] = {}
        self.found: list[Occurrence] = []

    def add(self, one: Series) -> None:
        if self.empty:
            return
        try:
            window = self.bounds.get(one.zone)
            if window is None:
                window = (_naive(self.after, one.zone) - DAY, _naive(self.before, one.zone) + DAY)
                self.bounds[one.zone] = window
            one._collect(self.lo, self.hi, window[0], window[1], self.found)
        except (OverflowError, ValueError) as exc:
            log.warning("series %s cannot be expanded: %s", one.key, exc)

    def result(self) -> list[Occurrence]:
        self.found.sort(key=_by_start)
        return self.found


def _offset(zone: ZoneInfo) -> Callable[[datetime], timedelta]:
    """The zone's UTC offset of a naive wall-clock time (fold 0), without building an
    aware datetime: this is the hot path of every expansion. (Typed by a string: a
    subscripted ``Callable`` would be built anew on every call.)"""
    return cast("Callable[[datetime], timedelta]", zone.utcoffset)


_by_start = attrgetter("utc_start")


def _naive(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


@lru_cache(maxsize=4096)
def _count_end(rule: Rule, first: datetime) -> datetime | None:
    """The naive local start of a COUNT rule's last occurrence, found once (cached: one
    datetime per rule and start). None when the rule runs past the search horizon."""
    remaining = rule.count or 1
    at = first.time()
    lo = first.date()
    try:
        horizon = first.date().replace(year=first.year + COUNT_HORIZON_YEARS)
    except ValueError:  # 29 February, or beyond year 9999
        horizon = date(min(first.year + COUNT_HORIZON_YEARS, 9999), 2, 28)
    try:
        while lo <= horizon:
            hi = min(lo + timedelta(days=365), horizon)
            days = _days(rule, first.date(), lo, hi, remaining)
            if len(days) >= remaining:
                return datetime.combine(days[remaining - 1], at)
            remaining -= len(days)
            lo = hi + DAY
    except OverflowError:  # the search reached year 9999
        pass
    return None


# --------------------------------------------------------------------- generators
# Each yields the dates a rule produces in [lo, hi] (lo >= start), at most `limit`,
# ascending. A period (day, week, month, year) is always built whole, so BYSETPOS
# picks from the full set, and only then cut to the window.


def _days(rule: Rule, start: date, lo: date, hi: date, limit: int) -> list[date]:
    if rule.freq == "DAILY":
        return _daily(rule, start, lo, hi, limit)
    if rule.freq == "WEEKLY":
        return _weekly(rule, start, lo, hi, limit)
    if rule.freq == "MONTHLY":
        return _monthly(rule, start, lo, hi, limit)
    return _yearly(rule, start, lo, hi, limit)


def _month_ok(rule: Rule, day: date) -> bool:
    return not rule.bymonth or day.month in rule.bymonth


def _monthday_ok(rule: Rule, day: date) -> bool:
    if not rule.bymonthday:
        return True
    length = calendar.monthrange(day.year, day.month)[1]
    return day.day in rule.bymonthday or day.day - length - 1 in rule.bymonthday


def _setpos(rule: Rule, days: list[date]) -> list[date]:
    """BYSETPOS applied to one period's sorted dates."""
    if not rule.bysetpos or not days:
        return days
    size = len(days)
    picked = {days[p - 1 if p > 0 else p] for p in rule.bysetpos if -size <= p <= size}
    return sorted(picked)


def _daily(rule: Rule, start: date, lo: date, hi: date, limit: int) -> list[date]:
    step = rule.interval
    if rule.bysetpos and not {1, -1} & set(rule.bysetpos):
        return []  # a day's set has one member: only position 1 / -1 selects it
    if not rule.byday and not rule.bymonth and not rule.bymonthday:
        found: list[date] = []
        skip = -(-(lo - start).days // step) * step  # whole periods, rounded up
        day = start + timedelta(days=skip)
        delta = timedelta(days=step)
        while day <= hi and len(found) < limit:
            found.append(day)
            day += delta
        return found
    # With filters, month by month: BYMONTH skips whole months, BYMONTHDAY picks the
    # candidates, so a rare rule (29 February) costs months, not days.
    weekdays = {d for _, d in rule.byday}
    origin, first_day, last_day = start.toordinal(), lo.toordinal(), hi.toordinal()
    picked: list[int] = []
    year, month = lo.year, lo.month
    while (year, month) <= (hi.year, hi.month) and len(picked) < limit:
        if not rule.bymonth or month in rule.bymonth:
            length = calendar.monthrange(year, month)[1]
            base = date(year, month, 1).toordinal() - 1
            if rule.bymonthday:
                days = sorted({d if d > 0 else length + d + 1 for d in rule.bymonthday})
                candidates = [base + d for d in days if 1 <= d <= length]
            else:
                candidates = list(range(base + 1, base + length + 1))
            for ordinal in candidates:
                if (
                    first_day <= ordinal <= last_day
                    and not (ordinal - origin) % step
                    and (not weekdays or (ordinal - 1) % 7 in weekdays)
                ):
                    picked.append(ordinal)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return [date.fromordinal(o) for o in picked[:limit]]


def _weekly(rule: Rule, start: date, lo: date, hi: date, limit: int) -> list[date]:
    wkst = rule.wkst
    offsets = _week_offsets(rule.byday, wkst, start.weekday())
    base = start - timedelta(days=(start.weekday() - wkst) % 7)
    week = lo - timedelta(days=(lo.weekday() - wkst) % 7)
    behind = ((week - base).days // 7) % rule.interval
    if behind:
        week += timedelta(weeks=rule.interval - behind)
    step = timedelta(weeks=rule.interval)
    found: list[date] = []
    if not rule.bysetpos and not rule.bymonth:
        # The common rule (every Monday, every other Tuesday): the week's days as they
        # come; lo >= start, so the window alone decides.
        while week <= hi:
            for offset in offsets:
                day = week + offset
                if lo <= day <= hi:
                    found.append(day)
            week += step
        return found[:limit]
    while week <= hi and len(found) < limit:
        days = [week + offset for offset in offsets]
        # dateutil's (and so most clients') first week begins at DTSTART, not at WKST,
        # before BYSETPOS picks; later weeks are whole.
        days = _setpos(rule, [day for day in days if day >= start and _month_ok(rule, day)])
        found += [day for day in days if lo <= day <= hi]
        week += step
    return found[:limit]


@lru_cache(maxsize=1024)
def _week_offsets(
    byday: tuple[tuple[int | None, int], ...], wkst: int, start_weekday: int
) -> tuple[timedelta, ...]:
    """The days of a week a WEEKLY rule picks, as offsets from the week's first day."""
    days = {(d - wkst) % 7 for _, d in byday} or {(start_weekday - wkst) % 7}
    return tuple(timedelta(days=d) for d in sorted(days))


def _weekday_dates(first: date, last: date, byday: tuple[tuple[int | None, int], ...]) -> set[int]:
    """Ordinals (date.toordinal) of BYDAY matches within [first, last], counted in it."""
    chosen: set[int] = set()
    start, end = first.toordinal(), last.toordinal()
    for number, weekday in byday:
        matches = range(start + (weekday - first.weekday()) % 7, end + 1, 7)
        if number is None:
            chosen.update(matches)
        elif 0 < number <= len(matches):
            chosen.add(matches[number - 1])
        elif number < 0 and -number <= len(matches):
            chosen.add(matches[number])
    return chosen


def _month_days(rule: Rule, year: int, month: int, default_day: int) -> list[date]:
    """Dates of one month the rule selects (BYMONTHDAY and BYDAY intersect)."""
    length = calendar.monthrange(year, month)[1]
    first = date(year, month, 1)
    chosen: set[int] | None = None
    if rule.bymonthday:
        chosen = {d if d > 0 else length + d + 1 for d in rule.bymonthday}
        chosen = {first.toordinal() + d - 1 for d in chosen if 1 <= d <= length}
    if rule.byday:
        by_weekday = _weekday_dates(first, date(year, month, length), rule.byday)
        chosen = by_weekday if chosen is None else chosen & by_weekday
    if chosen is None:
        chosen = {first.toordinal() + default_day - 1} if default_day <= length else set()
    return [date.fromordinal(d) for d in sorted(chosen)]


def _year_days(rule: Rule, year: int, start: date) -> list[date]:
    """Dates of one year the rule selects, before BYSETPOS."""
    if rule.byday and not rule.bymonth:
        # Without BYMONTH, BYDAY (and its ordinals) counts in the whole year.
        chosen = _weekday_dates(date(year, 1, 1), date(year, 12, 31), rule.byday)
        days = [date.fromordinal(d) for d in sorted(chosen)]
        return [day for day in days if _monthday_ok(rule, day)]
    # Without BYMONTH, a BYMONTHDAY applies to every month (as in dateutil).
    months = rule.bymonth or (tuple(range(1, 13)) if rule.bymonthday else (start.month,))
    found: list[date] = []
    for month in months:
        found += _month_days(rule, year, month, start.day)
    return found


def _monthly(rule: Rule, start: date, lo: date, hi: date, limit: int) -> list[date]:
    found: list[date] = []
    base = start.year * 12 + start.month - 1
    index = lo.year * 12 + lo.month - 1
    behind = (index - base) % rule.interval
    if behind:
        index += rule.interval - behind
    end = hi.year * 12 + hi.month - 1
    while index <= end and len(found) < limit:
        year, month = divmod(index, 12)
        month += 1
        if not rule.bymonth or month in rule.bymonth:
            days = _setpos(rule, _month_days(rule, year, month, start.day))
            found += [day for day in days if lo <= day <= hi]
        index += rule.interval
    return found[:limit]


def _yearly(rule: Rule, start: date, lo: date, hi: date, limit: int) -> list[date]:
    found: list[date] = []
    year = lo.year
    behind = (year - start.year) % rule.interval
    if behind:
        year += rule.interval - behind
    while year <= hi.year and len(found) < limit:
        days = _setpos(rule, _year_days(rule, year, start))
        found += [day for day in days if lo <= day <= hi]
        year += rule.interval
    return found[:limit]


def midnight(day: date) -> datetime:
    """The naive start of a local day (all-day events start there)."""
    return datetime.combine(day, time())
