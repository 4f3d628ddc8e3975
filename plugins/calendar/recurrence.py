"""Expanding stored events into occurrences, fast and in local wall-clock time.

An event is a :class:`Series`: a wall-clock start in its time zone, an
optional RFC 5545 RRULE, EXDATEs and a wall-clock length. Occurrences are
generated as naive local times and only then turned into instants, so a
Sunday 10:00 service stays at 10:00 across daylight-saving changes.

Listing a month of a thousand recurring events must stay in the tens of
milliseconds, so the common rules (FREQ=DAILY/WEEKLY/MONTHLY/YEARLY with
INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, WKST, UNTIL) are generated directly for
the asked window instead of iterating from DTSTART. Rules with COUNT are
expanded once (they are finite) and cached; anything more exotic (BYSETPOS,
BYWEEKNO, ...) goes to :mod:`dateutil`. ``tests/unit/test_calendar_recurrence.py``
checks the fast path against dateutil.

Like :class:`dorfbot.dates.When`, DTSTART itself is always the first
occurrence (RFC 5545 counts it even when the rule would not produce it).
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule as RRule
from dateutil.rrule import rrulestr

DAY = timedelta(days=1)
MAX_COUNT = 10_000
"""Rules with a larger COUNT are cut there (a weekly event for 190 years)."""

_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_FAST_PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
)


class RecurrenceError(ValueError):
    """An RRULE this module cannot read."""


@dataclass(frozen=True, slots=True)
class Rule:
    """An RRULE value split into the parts the fast path understands."""

    text: str
    freq: str
    interval: int = 1
    count: int | None = None
    until: datetime | None = None
    """Naive local time (inclusive); a date-only UNTIL is the end of that day."""
    byday: tuple[tuple[int | None, int], ...] = ()
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    wkst: int = 0
    fast: bool = True


@lru_cache(maxsize=4096)
def parse_rule(text: str, zone: ZoneInfo) -> Rule:
    """Read an RRULE value (with or without the ``RRULE:`` prefix); cached, rules repeat."""
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
            raise RecurrenceError(f"bad RRULE part {part!r}")
        parts[name] = item.strip().upper()
    freq = parts.get("FREQ", "")
    fast = freq in _FREQS and set(parts) <= _FAST_PARTS
    if freq not in (*_FREQS, "HOURLY", "MINUTELY", "SECONDLY"):
        raise RecurrenceError(f"unknown FREQ {freq!r}")
    try:
        interval = int(parts.get("INTERVAL", "1") or "1")
        count = int(parts["COUNT"]) if "COUNT" in parts else None
        byday = tuple(_byday(item) for item in _items(parts.get("BYDAY")))
        bymonthday = tuple(int(item) for item in _items(parts.get("BYMONTHDAY")))
        bymonth = tuple(int(item) for item in _items(parts.get("BYMONTH")))
        wkst = _CODES.index(parts.get("WKST", "MO"))
    except ValueError as exc:
        raise RecurrenceError(str(exc)) from None
    if interval < 1 or (count is not None and count < 1):
        raise RecurrenceError("INTERVAL and COUNT must be positive")
    if any(not 1 <= m <= 12 for m in bymonth) or any(
        d == 0 or not -31 <= d <= 31 for d in bymonthday
    ):
        raise RecurrenceError("BYMONTH or BYMONTHDAY out of range")
    if any(n is not None and (n == 0 or not -53 <= n <= 53) for n, _ in byday):
        raise RecurrenceError("BYDAY ordinal out of range")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("COUNT and UNTIL together")
    until = _until(parts["UNTIL"], zone) if "UNTIL" in parts else None
    # Ordinal weekdays only make sense per month (or per year without BYMONTH,
    # which dateutil handles); BYMONTHDAY is not allowed with WEEKLY.
    if any(n is not None for n, _ in byday) and (
        freq in ("DAILY", "WEEKLY") or (freq == "YEARLY" and not bymonth)
    ):
        fast = False
    if freq == "WEEKLY" and bymonthday:
        fast = False
    if freq == "YEARLY" and byday and not bymonth:
        fast = False
    return Rule(value, freq, interval, count, until, byday, bymonthday, bymonth, wkst, fast)


def _items(value: str | None) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def _byday(item: str) -> tuple[int | None, int]:
    code = item[-2:]
    if code not in _CODES:
        raise ValueError(f"bad BYDAY {item!r}")
    number = item[:-2]
    return (int(number) if number not in ("", "+", "-") else None), _CODES.index(code)


def _until(value: str, zone: ZoneInfo) -> datetime:
    try:
        if len(value) == 8:
            return datetime.strptime(value, "%Y%m%d").replace(hour=23, minute=59, second=59)
        moment = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise RecurrenceError(f"bad UNTIL {value!r}") from None
    if value.endswith("Z"):
        return moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
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
        if length is not None and length <= timedelta(0):
            length = None
        if length is not None:
            naive_lo -= length
        offset = _offset(self.zone)
        exdates = self.exdates
        seen: set[datetime] = set()
        for local in self._locals(naive_lo, naive_hi):
            if local in seen or (exdates and local in exdates):
                continue
            seen.add(local)
            start = local - offset(local)
            if start >= hi:
                continue
            if length is None:
                if start >= lo:
                    out.append(Occurrence(self, local, start, None))
                continue
            end_local = local + length
            end = end_local - offset(end_local)
            if end > lo:
                out.append(Occurrence(self, local, start, end))

    def last_end(self) -> datetime | None:
        """The end (or start) of the last occurrence as an instant; None if endless."""
        last: datetime | None = self.local_start
        rule = self.rule
        if rule is not None:
            if rule.count is not None:
                starts = _counted(rule.text, self.local_start)
                last = max(starts[-1], self.local_start) if starts else self.local_start
            elif rule.until is not None:
                last = max(rule.until, self.local_start)
            else:
                last = None
        if last is None:
            return None
        if self.duration is not None and self.duration > timedelta(0):
            last = last + self.duration
        return self.real(last)

    # ----------------------------------------------------------------- generation

    def _locals(self, lo: datetime, hi: datetime) -> list[datetime]:
        """Naive local starts in ``[lo, hi]`` (unordered, may repeat DTSTART)."""
        first = self.local_start
        found = [first] if lo <= first <= hi else []
        rule = self.rule
        if rule is None or hi < first or (rule.until is not None and rule.until < lo):
            return found
        if rule.count is not None:
            starts = _counted(rule.text, first)
            index = bisect.bisect_left(starts, lo)
            end = bisect.bisect_right(starts, hi)
            return found + starts[index:end]
        if rule.until is not None and rule.until < hi:
            hi = rule.until
        lo = max(lo, first)
        if not rule.fast:
            return found + list(_dateutil_rule(rule.text, first).between(lo, hi, inc=True))
        at = first.time()
        combine = datetime.combine
        for day in _days(rule, first.date(), lo.date(), hi.date()):
            local = combine(day, at)
            if lo <= local <= hi:
                found.append(local)
        return found


def expand(series: Iterable[Series], after: datetime, before: datetime) -> list[Occurrence]:
    """Occurrences of many series overlapping ``[after, before)``, ordered by start.

    An occurrence with a length overlaps when it ends after ``after``; a point
    in time when it starts at or after ``after``. Bounds are aware. Equal starts
    keep the order of ``series``.
    """
    if before <= after:
        return []
    lo = after.astimezone(UTC).replace(tzinfo=None)
    hi = before.astimezone(UTC).replace(tzinfo=None)
    bounds: dict[ZoneInfo, tuple[datetime, datetime]] = {}
    found: list[Occurrence] = []
    for one in series:
        window = bounds.get(one.zone)
        if window is None:
            window = (_naive(after, one.zone) - DAY, _naive(before, one.zone) + DAY)
            bounds[one.zone] = window
        one._collect(lo, hi, window[0], window[1], found)
    found.sort(key=_by_start)
    return found


def _offset(zone: ZoneInfo) -> Callable[[datetime], timedelta]:
    """The zone's UTC offset of a naive wall-clock time (fold 0), without building an
    aware datetime: this is the hot path of every expansion."""
    return cast(Callable[[datetime], timedelta], zone.utcoffset)


def _by_start(occurrence: Occurrence) -> datetime:
    return occurrence.utc_start


def _naive(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


@lru_cache(maxsize=512)
def _dateutil_rule(text: str, dtstart: datetime) -> RRule:
    parsed = rrulestr(text, dtstart=dtstart, ignoretz=True, cache=True)
    if not isinstance(parsed, RRule):
        raise RecurrenceError(f"not a single RRULE: {text!r}")
    until = next((p for p in text.upper().split(";") if p.startswith("UNTIL=")), None)
    if until is not None and until.endswith("Z"):
        # dateutil compares a UTC UNTIL with naive local starts; callers pass
        # the local UNTIL through Rule.until and cut there instead.
        parsed = parsed.replace(until=None)
    return parsed


@lru_cache(maxsize=4096)
def _counted(text: str, dtstart: datetime) -> list[datetime]:
    """Every start of a rule with COUNT (finite), computed once."""
    parsed = rrulestr(text, dtstart=dtstart, ignoretz=True, cache=False)
    if not isinstance(parsed, RRule):
        raise RecurrenceError(f"not a single RRULE: {text!r}")
    starts: list[datetime] = []
    for local in parsed:
        starts.append(local)
        if len(starts) >= MAX_COUNT:
            break
    return starts


# --------------------------------------------------------------------- fast path


def _days(rule: Rule, start: date, lo: date, hi: date) -> list[date]:
    """Dates the rule produces in ``[lo, hi]`` (``lo >= start``)."""
    if rule.freq == "DAILY":
        return _daily(rule, start, lo, hi)
    if rule.freq == "WEEKLY":
        return _weekly(rule, start, lo, hi)
    if rule.freq == "MONTHLY":
        return _monthly(rule, start, lo, hi)
    return _yearly(rule, start, lo, hi)


def _month_ok(rule: Rule, day: date) -> bool:
    return not rule.bymonth or day.month in rule.bymonth


def _monthday_ok(rule: Rule, day: date) -> bool:
    if not rule.bymonthday:
        return True
    length = calendar.monthrange(day.year, day.month)[1]
    return day.day in rule.bymonthday or day.day - length - 1 in rule.bymonthday


def _daily(rule: Rule, start: date, lo: date, hi: date) -> list[date]:
    found: list[date] = []
    step = rule.interval
    skip = -(-(lo - start).days // step) * step  # whole periods, rounded up
    day = start + timedelta(days=skip)
    weekdays = {d for _, d in rule.byday}
    delta = timedelta(days=step)
    if not weekdays and not rule.bymonth and not rule.bymonthday:
        while day <= hi:
            found.append(day)
            day += delta
        return found
    while day <= hi:
        if (
            (not weekdays or day.weekday() in weekdays)
            and _month_ok(rule, day)
            and _monthday_ok(rule, day)
        ):
            found.append(day)
        day += delta
    return found


def _weekly(rule: Rule, start: date, lo: date, hi: date) -> list[date]:
    found: list[date] = []
    wkst = rule.wkst
    offsets = sorted({(d - wkst) % 7 for _, d in rule.byday} or {(start.weekday() - wkst) % 7})
    base = start - timedelta(days=(start.weekday() - wkst) % 7)
    week = lo - timedelta(days=(lo.weekday() - wkst) % 7)
    behind = ((week - base).days // 7) % rule.interval
    if behind:
        week += timedelta(weeks=rule.interval - behind)
    step = timedelta(weeks=rule.interval)
    while week <= hi:
        for offset in offsets:
            day = week + timedelta(days=offset)
            if lo <= day <= hi and _month_ok(rule, day):
                found.append(day)
        week += step
    return found


def _month_days(rule: Rule, year: int, month: int, default_day: int) -> list[int]:
    """Days of one month the rule selects (BYMONTHDAY and BYDAY intersect)."""
    length = calendar.monthrange(year, month)[1]
    chosen: set[int] | None = None
    if rule.bymonthday:
        chosen = {d if d > 0 else length + d + 1 for d in rule.bymonthday}
        chosen = {d for d in chosen if 1 <= d <= length}
    if rule.byday:
        first_weekday = calendar.weekday(year, month, 1)
        by_weekday: set[int] = set()
        for number, weekday in rule.byday:
            first = 1 + (weekday - first_weekday) % 7
            matches = list(range(first, length + 1, 7))
            if number is None:
                by_weekday.update(matches)
            elif number > 0 and number <= len(matches):
                by_weekday.add(matches[number - 1])
            elif number < 0 and -number <= len(matches):
                by_weekday.add(matches[number])
        chosen = by_weekday if chosen is None else chosen & by_weekday
    if chosen is None:
        chosen = {default_day} if default_day <= length else set()
    return sorted(chosen)


def _monthly(rule: Rule, start: date, lo: date, hi: date) -> list[date]:
    found: list[date] = []
    base = start.year * 12 + start.month - 1
    index = lo.year * 12 + lo.month - 1
    behind = (index - base) % rule.interval
    if behind:
        index += rule.interval - behind
    end = hi.year * 12 + hi.month - 1
    while index <= end:
        year, month = divmod(index, 12)
        month += 1
        if not rule.bymonth or month in rule.bymonth:
            for number in _month_days(rule, year, month, start.day):
                day = date(year, month, number)
                if lo <= day <= hi:
                    found.append(day)
        index += rule.interval
    return found


def _yearly(rule: Rule, start: date, lo: date, hi: date) -> list[date]:
    found: list[date] = []
    year = lo.year
    behind = (year - start.year) % rule.interval
    if behind:
        year += rule.interval - behind
    # Without BYMONTH, a BYMONTHDAY applies to every month (as in dateutil).
    months = rule.bymonth or (tuple(range(1, 13)) if rule.bymonthday else (start.month,))
    while year <= hi.year:
        for month in sorted(months):
            for number in _month_days(rule, year, month, start.day):
                day = date(year, month, number)
                if lo <= day <= hi:
                    found.append(day)
        year += rule.interval
    return found


def midnight(day: date) -> datetime:
    """The naive start of a local day (all-day events start there)."""
    return datetime.combine(day, time())
