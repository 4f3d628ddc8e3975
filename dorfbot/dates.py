"""Dates, times and recurrences as residents type them (SPEC section 3, "Dates").

``!termin`` and ``!planen`` share this parser. :func:`parse_when` reads the
leading date (or recurrence) and time of a command's text and returns a
:class:`When` plus the rest of the text (the title). German and English work in
every village; there is no language switch.

Grammar (case-insensitive; spaces, commas and semicolons separate words)::

    when       := one-off | recurrence
    one-off    := ["am"|"on"] date [daytime] time [end]
    recurrence := repeat {modifier} [daytime] time [end] {modifier}
    date       := heute | today | morgen | tomorrow | übermorgen | uebermorgen
                | day after tomorrow | weekday [["den"|"the"] calendar]
                | calendar
    calendar   := 24.12. | 24.12.2026 | 24.12.26 | 2026-12-24 | 2026-12-24T18:00
                | 24. Dezember [2026] | Dec 24 [2026] | 24/12[/2026]
    weekday    := Mo Di Mi Do Fr Sa So, Montag ... Sonntag, Sonnabend,
                  mon tue wed thu fri sat sun, monday ... sunday (trailing dot ok)
    time       := ["um"|"ab"|"gegen"|"von"|"at"|"from"] 18:00 | 18.30 | 18 Uhr
                | 18.30 Uhr | 18h | 18h30 | 6pm | 6:30pm | 6 pm
    end        := 18-20 Uhr | 18:00-20:00 | 18 bis 20 Uhr | 18:00 bis 20:00
                | 10am-2pm | (one-off only) bis <date> <time>
    daytime    := morgens vormittags mittags nachmittags abends (and the nouns
                  Morgen, Abend, ... before the time; English morning/evening ...)
    repeat     := täglich | daily | jeden Tag | every day | werktags | weekdays
                | jeden Montag [und Donnerstag] | every monday | montags | mondays
                | jeden 1. [und 3.] Montag [im Monat] | every first monday
                | jeden letzten Freitag | jeden vorletzten Freitag
                | every other monday | alle 2 Wochen | every 3 days | 14-tägig
                | wöchentlich [am Montag] | monatlich [am 1. Montag | am 15.]
                | jährlich [am 24.12.] | weekly | monthly | yearly | annually
    modifier   := (ab|from|starting) <date> | (bis|until|till) <date>

Decisions on the ambiguous cases (each documented in the tests):

* A time is always required: ``dates.error.missing_time``. There are no
  all-day events from this parser (imported calendars bring their own).
* A bare number is never a time (``morgen 18 Fest``): ``dates.error.ambiguous_time``
  asks "did you mean 18 Uhr?". :func:`parse_time` (the ``bis:`` option) does
  accept a bare hour, since there it can only be a time. A separate ``am`` token
  after a bare hour 1-11 counts as a.m. (which is the same clock time anyway);
  after ``12`` it is ambiguous; after ``18:00`` it stays German "am" (title).
* Weekday names mean the next such day; today counts if the time is still
  ahead, otherwise it is the same weekday next week. ``Sa 24.12.`` checks that
  the date really is a Saturday (``dates.error.weekday_mismatch``).
* ``24.12.`` without a year is this year's date if it is today or later. If it
  passed within the last 60 days it is treated as a slip, not as next year:
  ``dates.error.past_no_year`` suggests writing the year. Older dates are next
  year's. ``29.2.`` is the next 29 February.
* Dates need their final dot: ``24.12`` alone is not a date (it would be easy to
  mistake for a time). ``12/11`` with both parts up to 12 is
  ``dates.error.ambiguous``; with one part above 12 that part is the day.
* One-off times that are not in the future: ``dates.error.past``.
* A recurrence starts at its first occurrence after ``now`` (respecting ``ab``).
  A past ``ab`` date is fine (the series is already running); ``When.start`` is
  still the next occurrence. ``wöchentlich``, ``monatlich``, ``jährlich`` and
  ``alle N Wochen/Monate/Jahre`` need ``ab <datum>`` (or a weekday/day) to know
  which day they repeat on: ``dates.error.missing_start``.
* ``jeden 1. Montag`` is the first Monday of the month, as SPEC says. Only
  ``jeden 2. Montag``/``jeden zweiten Montag`` is genuinely ambiguous in German
  (every other Monday?) and is rejected with ``dates.error.ambiguous_ordinal``
  unless followed by ``im Monat``; ``alle 2 Wochen am Montag`` says the other.
  ``every other monday`` is every second week.
* An end time earlier than the start means the next day (``20-2 Uhr``); an end
  equal to the start is ``dates.error.end_before_start``.
* ``bis <datum>`` ends a recurrence at the end of that local day (UNTIL in UTC).
  After a one-off's time, ``bis <datum>`` must be followed by a time (an end on
  another day); otherwise ``dates.error.missing_time``.
* ``monatlich ab 31.1.`` repeats on the 31st and skips shorter months (RFC 5545);
  ``jährlich ab 29.2.`` only in leap years. ``jeden zweiten Tag``, ``jede zweite
  Woche`` are intervals (every 2 days/weeks).
* Only the first 40 words are looked at and words longer than 40 characters
  never match, so any input is handled in linear time; the title is returned
  whole.
* A local time that does not exist (the skipped hour in spring) keeps its
  wall-clock fields in ``When.start`` (fold 0, i.e. it means the instant one hour
  later); :meth:`When.occurrences` returns real, normalised times. A repeated
  local time (autumn) is the first of the two (fold 0).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrulestr
from dateutil.rrule import rrule as RRule
from dateutil.rrule import weekday as rr_weekday

from dorfbot.text import fold

__all__ = [
    "DateParseError",
    "When",
    "describe_rrule",
    "parse_date",
    "parse_time",
    "parse_when",
]

#: Longest input :func:`parse_time` and :func:`parse_date` look at.
MAX_FIELD_LENGTH = 200
_MAX_TOKENS = 40  # far more than the longest date/time phrase
_MAX_TOKEN_LENGTH = 40  # longer words never match anything
_RECENT_PAST_DAYS = 60
_MIN_YEAR = 1900
_MAX_YEARS_AHEAD = 100
_SEARCH_LIMIT = 5000  # rule occurrences scanned when looking for the first one


def year_in_range(year: int, today: date) -> bool:
    """Whether a written year is one the bot accepts: from 1900 to a century ahead.

    The one range check for every date a person types (one-offs, ``ab``, ``bis``,
    ISO and dotted forms), applied while parsing, so nothing out of range is
    ever stored; it also keeps every later computation far from year 9999.
    """
    return _MIN_YEAR <= year <= today.year + _MAX_YEARS_AHEAD


_FREQ_NAMES = {DAILY: "DAILY", WEEKLY: "WEEKLY", MONTHLY: "MONTHLY", YEARLY: "YEARLY"}
_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

# Lookup tables use folded words: lower case, umlauts as ae/oe/ue, trailing dot removed.
_WEEKDAYS: dict[str, int] = {
    **dict.fromkeys(("mo", "mon", "montag", "monday"), 0),
    **dict.fromkeys(("di", "tue", "tues", "dienstag", "tuesday"), 1),
    **dict.fromkeys(("mi", "wed", "weds", "mittwoch", "wednesday"), 2),
    **dict.fromkeys(("do", "thu", "thur", "thurs", "donnerstag", "thursday"), 3),
    **dict.fromkeys(("fr", "fri", "freitag", "friday"), 4),
    **dict.fromkeys(("sa", "sat", "samstag", "sonnabend", "saturday"), 5),
    **dict.fromkeys(("so", "sun", "sonntag", "sunday"), 6),
}
_WEEKDAY_ADVERBS: dict[str, int] = {
    **dict.fromkeys(("montags", "mondays"), 0),
    **dict.fromkeys(("dienstags", "tuesdays"), 1),
    **dict.fromkeys(("mittwochs", "wednesdays"), 2),
    **dict.fromkeys(("donnerstags", "thursdays"), 3),
    **dict.fromkeys(("freitags", "fridays"), 4),
    **dict.fromkeys(("samstags", "sonnabends", "saturdays"), 5),
    **dict.fromkeys(("sonntags", "sundays"), 6),
}
_RELATIVE = {"heute": 0, "today": 0, "morgen": 1, "tomorrow": 1, "uebermorgen": 2}
_MONTHS: dict[str, int] = {
    **dict.fromkeys(("januar", "jaenner", "jan", "january"), 1),
    **dict.fromkeys(("februar", "feber", "feb", "february"), 2),
    **dict.fromkeys(("maerz", "mrz", "mar", "march"), 3),
    **dict.fromkeys(("april", "apr"), 4),
    **dict.fromkeys(("mai", "may"), 5),
    **dict.fromkeys(("juni", "jun", "june"), 6),
    **dict.fromkeys(("juli", "jul", "july"), 7),
    **dict.fromkeys(("august", "aug"), 8),
    **dict.fromkeys(("september", "sep", "sept"), 9),
    **dict.fromkeys(("oktober", "okt", "october", "oct"), 10),
    **dict.fromkeys(("november", "nov"), 11),
    **dict.fromkeys(("dezember", "dez", "december", "dec"), 12),
}
_ORDINAL_WORDS: dict[str, int] = {
    **dict.fromkeys(("erste", "ersten", "erster", "erstes", "first"), 1),
    **dict.fromkeys(("zweite", "zweiten", "zweiter", "zweites", "second"), 2),
    **dict.fromkeys(("dritte", "dritten", "dritter", "drittes", "third"), 3),
    **dict.fromkeys(("vierte", "vierten", "vierter", "viertes", "fourth"), 4),
    **dict.fromkeys(("fuenfte", "fuenften", "fuenfter", "fuenftes", "fifth"), 5),
    **dict.fromkeys(("letzte", "letzten", "letzter", "letztes", "last"), -1),
    **dict.fromkeys(("vorletzte", "vorletzten", "vorletzter", "penultimate"), -2),
    **dict.fromkeys(("second-to-last", "second-last"), -2),
}
_NUMBER_WORDS: dict[str, int] = {
    "zwei": 2,
    "drei": 3,
    "vier": 4,
    "fuenf": 5,
    "sechs": 6,
    "sieben": 7,
    "acht": 8,
    "neun": 9,
    "zehn": 10,
    "elf": 11,
    "zwoelf": 12,
    "vierzehn": 14,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fourteen": 14,
}
_UNITS: dict[str, Freq] = {
    **dict.fromkeys(("tag", "tage", "tagen", "day", "days"), DAILY),
    **dict.fromkeys(("woche", "wochen", "week", "weeks"), WEEKLY),
    **dict.fromkeys(("monat", "monate", "monaten", "month", "months"), MONTHLY),
    **dict.fromkeys(("jahr", "jahre", "jahren", "year", "years"), YEARLY),
}
_DAILY_WORDS = frozenset({"taeglich", "daily"})
_WORKDAY_WORDS = frozenset({"werktags", "weekdays", "wochentags"})
_WORKDAY_NOUNS = frozenset({"werktag", "weekday", "arbeitstag", "wochentag"})
_WEEKLY_WORDS = frozenset({"woechentlich", "weekly"})
_BIWEEKLY_WORDS = frozenset(
    {"14-taegig", "14taegig", "vierzehntaegig", "zweiwoechentlich", "fortnightly"}
)
_MONTHLY_WORDS = frozenset({"monatlich", "monthly"})
_YEARLY_WORDS = frozenset({"jaehrlich", "yearly", "annually", "annual"})
_EVERY_WORDS = frozenset({"jeden", "jede", "jedes", "jeder", "every", "each"})
_AND_WORDS = frozenset({"und", "and", "&", "sowie", "+"})
_ON_WORDS = frozenset({"am", "on", "an"})
_FROM_WORDS = frozenset({"ab", "from", "starting", "beginning"})
_UNTIL_WORDS = frozenset({"bis", "until", "till", "through", "thru"})
_RANGE_WORDS = frozenset({"-", "bis", "until", "till", "to"})
_TIME_PREFIXES = frozenset({"um", "ab", "gegen", "von", "at", "from", "@"})
_MORNING_WORDS = frozenset(
    {"morgen", "morgens", "frueh", "vormittag", "vormittags", "mittag", "mittags", "morning"}
)
_EVENING_WORDS = frozenset({"nachmittag", "nachmittags", "abend", "abends", "afternoon", "evening"})
# After a time only the adverbs count; "18 Uhr Abend der Begegnung" keeps its title.
_DAYTIME_ADVERBS = frozenset({"morgens", "vormittags", "mittags", "nachmittags", "abends"})
_MONTH_QUALIFIER_NOUNS = frozenset({"monat", "monats", "month"})

_DE_WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DE_MONTHS = (
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
)
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_RE_DOTTED = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.(?:([0-9]{4}|[0-9]{2})\.?)?")
_RE_ISO = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:t([0-9]{1,2}):([0-9]{2}))?")
_RE_SLASH = re.compile(r"([0-9]{1,2})/([0-9]{1,2})(?:/([0-9]{4}|[0-9]{2}))?")
_RE_DAY = re.compile(r"([0-9]{1,2})(?:\.|st|nd|rd|th)?")
_RE_YEAR = re.compile(r"([0-9]{4})\.?")
_RE_NUMBER = re.compile(r"([0-9]{1,2})(?:\.|st|nd|rd|th)?")
_RE_TIME = re.compile(r"([0-9]{1,2})(?:([:.])([0-9]{2}))?(uhr|h|am|pm|a\.m\.|p\.m\.)?")
_RE_TIME_H = re.compile(r"([0-9]{1,2})h([0-9]{2})(?:uhr)?")
_RE_UNTIL = re.compile(r"([0-9]{8})(?:t([0-9]{6})(z?))?")

Freq = Literal[0, 1, 2, 3]  # dateutil's YEARLY, MONTHLY, WEEKLY, DAILY
TermKind = Literal["bare", "h24", "am", "pm"]


class DateParseError(ValueError):
    """A date or time the parser cannot accept, as a message-catalog key.

    ``key`` is a key of ``locales/*/dates.yaml`` (e.g. ``dates.error.past``);
    ``params`` are the values its template uses (all plain strings).
    """

    def __init__(self, key: str, params: Mapping[str, str] | None = None) -> None:
        self.key = key
        self.params: dict[str, str] = dict(params or {})
        super().__init__(f"{key} {self.params}" if self.params else key)


@dataclass(frozen=True)
class When:
    """When something happens: a first start, maybe an RRULE, maybe an end.

    ``start`` is timezone-aware in the village time zone ``tz`` and is the first
    occurrence. ``rrule`` is an RFC 5545 RRULE value without the ``RRULE:``
    prefix; an ``UNTIL`` in it is UTC. Recurrences are expanded over local
    wall-clock times, so a Sunday 10:00 event stays at 10:00 across
    daylight-saving changes. ``end`` (optional) fixes the duration of every
    occurrence. ``tz`` may be left empty when ``start`` carries a ``ZoneInfo``.
    """

    start: datetime
    rrule: str | None = None
    end: datetime | None = None
    tz: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("When.start must be timezone-aware")
        name = self.tz or _zone_name(self.start)
        zone = ZoneInfo(name)
        object.__setattr__(self, "tz", name)
        if self.start.tzinfo is not zone:
            object.__setattr__(self, "start", _in_zone(self.start, zone))
        if self.end is not None:
            if self.end.tzinfo is None or self.end.utcoffset() is None:
                raise ValueError("When.end must be timezone-aware")
            if _utc(self.end) <= _utc(self.start):
                raise ValueError("When.end must be after When.start")
            if self.end.tzinfo is not zone:
                object.__setattr__(self, "end", _in_zone(self.end, zone))
        if self.rrule is not None:
            value = self.rrule.strip()
            if value[:6].upper() == "RRULE:":
                value = value[6:]
            object.__setattr__(self, "rrule", value or None)
            if value:
                self._rule()  # fail early on a rule dateutil cannot read

    @property
    def zone(self) -> ZoneInfo:
        """The village time zone."""
        return ZoneInfo(self.tz)

    @property
    def is_recurring(self) -> bool:
        """Whether this has a recurrence rule."""
        return self.rrule is not None

    @property
    def duration(self) -> timedelta | None:
        """Wall-clock length of each occurrence, if an end is set."""
        if self.end is None:
            return None
        return _naive(self.end) - _naive(self.start)

    def end_for(self, occurrence: datetime) -> datetime | None:
        """The end of the occurrence starting at ``occurrence`` (same wall-clock length)."""
        length = self.duration
        if length is None:
            return None
        return _real(_naive(_in_zone(occurrence, self.zone)) + length, self.zone)

    def with_end_time(self, end: time) -> When:
        """This When with an end at ``end`` o'clock (the ``bis:`` option).

        An end earlier than the start means the next day (an evening running past
        midnight); an end equal to the start raises ``dates.error.end_before_start``.
        """
        naive_start = _naive(self.start)
        naive_end = datetime.combine(naive_start.date(), end)
        if naive_end == naive_start:
            raise DateParseError("dates.error.end_before_start", {"time": _fmt_time(end)})
        if naive_end < naive_start:
            naive_end += timedelta(days=1)
        return When(self.start, self.rrule, _wall(naive_end, self.zone), self.tz)

    def occurrences(
        self, after: datetime, before: datetime, *, limit: int = 1000
    ) -> list[datetime]:
        """Starts with ``after <= start < before``, in order, at most ``limit`` of them.

        Both bounds must be aware. Results are real (normalised) times in the
        village zone: a wall-clock time skipped by a DST change moves one hour
        later, a repeated one is the first of the two.
        """
        lo, hi = _utc(after), _utc(before)
        if hi <= lo or limit <= 0:
            return []
        zone = self.zone
        found: dict[datetime, datetime] = {}
        first = _real(_naive(self.start), zone)
        if lo <= _utc(first) < hi:
            found[_utc(first)] = first
        if self.rrule is not None:
            # Expand in naive local time with a day of slack on each side, then
            # filter on real instants.
            naive_lo = _naive(after.astimezone(zone)) - timedelta(days=1)
            naive_hi = _naive(before.astimezone(zone)) + timedelta(days=1)
            for occ in self._rule().xafter(naive_lo, inc=True):
                if occ > naive_hi or len(found) > limit:
                    break
                real = _real(occ, zone)
                if lo <= _utc(real) < hi:
                    found.setdefault(_utc(real), real)
        return [found[key] for key in sorted(found)][:limit]

    def next_after(self, moment: datetime) -> datetime | None:
        """The first start strictly after ``moment`` (aware), or None if there is none."""
        after = _utc(moment)
        zone = self.zone
        first = _real(_naive(self.start), zone)
        if _utc(first) > after:
            return first
        if self.rrule is None:
            return None
        naive_from = _naive(moment.astimezone(zone)) - timedelta(days=1)
        for occ in islice(
            self._rule().xafter(naive_from, inc=True),
            _SEARCH_LIMIT,
        ):
            real = _real(occ, zone)
            if _utc(real) > after:
                return real
        return None

    def describe(self, lang: str) -> str:
        """Short text for the recurrence ("jeden Montag"), or "" for a one-off."""
        if self.rrule is None:
            return ""
        return describe_rrule(self.rrule, lang, start=self.start)

    def _rule(self) -> RRule:
        assert self.rrule is not None
        parsed = rrulestr(self.rrule, dtstart=_naive(self.start), ignoretz=True, cache=False)
        if not isinstance(parsed, RRule):
            raise ValueError(f"not a single RRULE: {self.rrule!r}")
        until = _until_local(self.rrule, self.zone)
        if until is not None:
            parsed = parsed.replace(until=until)
        return parsed


# --------------------------------------------------------------------------- helpers


def _zone_name(moment: datetime) -> str:
    tzinfo = moment.tzinfo
    if isinstance(tzinfo, ZoneInfo):
        return tzinfo.key
    if moment.utcoffset() == timedelta(0):
        return "UTC"
    raise ValueError("When needs a tz name or a ZoneInfo start")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None, fold=0)


def _wall(naive: datetime, zone: ZoneInfo) -> datetime:
    """Attach the zone to a wall-clock time (fold 0), keeping its fields as they are."""
    return naive.replace(tzinfo=zone, fold=0)


def _real(naive: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock time means, as a normalised time in the zone."""
    return _wall(naive, zone).astimezone(UTC).astimezone(zone)


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.tzinfo is zone:
        return moment
    return moment.astimezone(zone)


def _until_local(rule: str, zone: ZoneInfo) -> datetime | None:
    """The UNTIL of an RRULE value as naive local time (dateutil needs DTSTART's kind)."""
    for part in rule.split(";"):
        name, _, value = part.partition("=")
        if name.strip().upper() != "UNTIL":
            continue
        match = _RE_UNTIL.fullmatch(value.strip().lower())
        if match is None:
            raise ValueError(f"bad UNTIL in {rule!r}")
        day = datetime.strptime(match[1], "%Y%m%d")
        if match[2] is None:
            return day.replace(hour=23, minute=59, second=59)
        moment = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S")
        if match[3]:
            return _naive(moment.replace(tzinfo=UTC).astimezone(zone))
        return moment
    return None


def _show(raw: str) -> str:
    """A user token made safe to quote back: printable and short."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in raw[:31])
    return cleaned if len(raw) <= 30 else cleaned[:30] + "…"


def _fmt_date(day: date) -> str:
    return f"{day.day:02d}.{day.month:02d}.{day.year:04d}"


def _fmt_time(moment: time | datetime) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _err(key: str, **params: str) -> DateParseError:
    return DateParseError(key, params)


def _is_separator(ch: str) -> bool:
    return ch.isspace() or ch in ",;"


@dataclass(frozen=True, slots=True)
class _Tok:
    raw: str
    start: int
    end: int
    low: str  # folded; "" for words too long to mean anything here

    @property
    def word(self) -> str:
        return self.low[:-1] if self.low.endswith((".", ":")) else self.low


def _scan(text: str, limit: int) -> list[_Tok]:
    """The first ``limit`` words of ``text`` with their positions (linear time)."""
    tokens: list[_Tok] = []
    i, n = 0, len(text)
    while len(tokens) < limit:
        while i < n and _is_separator(text[i]):
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not _is_separator(text[j]):
            j += 1
        raw = text[i:j]
        low = fold(raw) if len(raw) <= _MAX_TOKEN_LENGTH else ""
        tokens.append(_Tok(raw, i, j, low))
        i = j
    return tokens


@dataclass(frozen=True, slots=True)
class _Term:
    hour: int
    minute: int
    kind: TermKind


def _term(text: str) -> _Term | None:
    """One clock-time word (``18:00``, ``18 Uhr`` glued, ``6pm``), unvalidated."""
    if not text.isascii():
        return None
    if text.endswith(":"):  # "18 Uhr: Feuerwehrfest"
        text = text[:-1]
    match = _RE_TIME.fullmatch(text)
    if match is not None:
        hour, minute = int(match[1]), int(match[3] or 0)
        suffix = match[4]
        if suffix in ("am", "a.m."):
            return _Term(hour, minute, "am")
        if suffix in ("pm", "p.m."):
            return _Term(hour, minute, "pm")
        if suffix or match[2]:
            return _Term(hour, minute, "h24")
        return _Term(hour, minute, "bare")
    match = _RE_TIME_H.fullmatch(text)
    if match is not None:
        return _Term(int(match[1]), int(match[2]), "h24")
    return None


def _clock(term: _Term) -> time | None:
    """The time a term means, or None if its numbers are out of range."""
    if not 0 <= term.minute <= 59:
        return None
    if term.kind in ("am", "pm"):
        if not 1 <= term.hour <= 12:
            return None
        return time(term.hour % 12 + (12 if term.kind == "pm" else 0), term.minute)
    if not 0 <= term.hour <= 23:
        return None
    return time(term.hour, term.minute)


def _meridiem_before(hour: int, end: time) -> time | None:
    """``hour`` as a.m. or p.m., whichever ends up shortest before ``end``."""
    if not 1 <= hour <= 12:
        return None
    options = [time(hour % 12), time(hour % 12 + 12)]
    end_minutes = end.hour * 60 + end.minute
    return min(options, key=lambda t: (end_minutes - t.hour * 60 - t.minute) % 1440 or 1440)


def _meridiem_after(hour: int, start: time) -> time | None:
    if not 1 <= hour <= 12:
        return None
    options = [time(hour % 12), time(hour % 12 + 12)]
    start_minutes = start.hour * 60 + start.minute
    return min(options, key=lambda t: (t.hour * 60 + t.minute - start_minutes) % 1440 or 1440)


@dataclass
class _TimeSpec:
    start: time
    start_12h: bool
    end: time | None = None
    end_12h: bool = False


@dataclass
class _DateSpec:
    kind: Literal["rel", "wd", "abs", "partial"]
    token: str
    offset: int = 0
    weekday: int = 0
    day: date | None = None
    dm: tuple[int, int] = (1, 1)
    check_weekday: int | None = None
    check_token: str = ""
    inline_time: time | None = None


@dataclass
class _Rec:
    freq: Freq
    token: str
    interval: int = 1
    byday: list[tuple[int | None, int]] = field(default_factory=list)
    bymonthday: list[int] = field(default_factory=list)
    bymonth: int | None = None
    needs_start: bool = False
    from_spec: _DateSpec | None = None
    until_spec: _DateSpec | None = None


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the first words of a text; ``pos`` is backtrackable."""

    def __init__(self, text: str, now: datetime | None, zone: ZoneInfo | None) -> None:
        self.text = text
        self.toks = _scan(text, _MAX_TOKENS)
        self.pos = 0
        self.consumed = 0
        self.zone = zone or ZoneInfo("UTC")
        self.now = (now or datetime(2000, 1, 1, tzinfo=UTC)).astimezone(self.zone)
        self.today = self.now.date()

    # -- cursor

    def peek(self, k: int = 0) -> _Tok | None:
        i = self.pos + k
        return self.toks[i] if i < len(self.toks) else None

    def word(self, k: int = 0) -> str:
        tok = self.peek(k)
        return tok.word if tok is not None else ""

    def low(self, k: int = 0) -> str:
        tok = self.peek(k)
        return tok.low if tok is not None else ""

    def take(self, n: int = 1) -> str:
        """Consume ``n`` words and return their raw text."""
        taken = self.toks[self.pos : self.pos + n]
        self.pos += len(taken)
        if taken:
            self.consumed = taken[-1].end
            return self.text[taken[0].start : taken[-1].end]
        return ""

    def mark(self) -> tuple[int, int]:
        return self.pos, self.consumed

    def reset(self, mark: tuple[int, int]) -> None:
        self.pos, self.consumed = mark

    def raw_since(self, mark: tuple[int, int]) -> str:
        start = self.toks[mark[0]].start if mark[0] < len(self.toks) else len(self.text)
        return self.text[start : self.consumed] if self.pos > mark[0] else ""

    def next_raw(self) -> str:
        tok = self.peek()
        return _show(tok.raw) if tok is not None else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.toks)

    def rest(self) -> str:
        rest = self.text[self.consumed :]
        i = 0
        while True:
            while i < len(rest) and _is_separator(rest[i]):
                i += 1
            # a lone dash or colon between the time and the title
            if (
                i < len(rest)
                and rest[i] in "-–—:"
                and (i + 1 == len(rest) or _is_separator(rest[i + 1]))
            ):
                i += 1
                continue
            break
        return rest[i:].strip()

    # -- entry points

    def parse_when(self) -> When:
        if self.at_end():
            raise _err("dates.error.missing_date", token="")
        rec = self.recurrence()
        if rec is not None:
            return self.finish_recurrence(rec)
        return self.one_off()

    def one_off(self) -> When:
        if self.word() in _ON_WORDS and self.peek(1) is not None:
            self.take()
        spec = self.date_expr()
        if spec is None:
            raise _err("dates.error.missing_date", token=self.next_raw())
        if spec.inline_time is not None:
            times = self.time_end(_TimeSpec(spec.inline_time, False)) or _TimeSpec(
                spec.inline_time, False
            )
        else:
            times = self.required_time()
        day = self.resolve_event_day(spec, times.start)
        start = _wall(datetime.combine(day, times.start), self.zone)
        if _utc(start) <= _utc(self.now):
            raise _err(
                "dates.error.past",
                token=_show(spec.token),
                date=_fmt_date(day),
                iso=day.isoformat(),
                time=_fmt_time(times.start),
            )
        end = self.end_datetime(start, times)
        if end is None:
            end = self.end_by_date(start)
        return When(start, None, end, self.zone.key)

    # -- time

    def required_time(self) -> _TimeSpec:
        """Daytime word, time and optional end; raises if there is no time."""
        evening = self.daytime_before_time()
        times = self.time_spec()
        if times is None:
            tok = self.peek()
            if tok is not None:
                term = _term(tok.low)
                lone = term is not None and term.kind == "bare" and _clock(term) is not None
                if lone or (tok.word in _TIME_PREFIXES and _bare_hour(self.low(1))):
                    raw = tok.raw if lone else self.low(1)
                    raise _err("dates.error.ambiguous_time", token=_show(raw))
                if term is not None and term.kind != "bare":
                    raise _err("dates.error.invalid_time", token=_show(tok.raw))
            raise _err("dates.error.missing_time", token=self.next_raw())
        if self.word() in _DAYTIME_ADVERBS:
            evening = evening or self.word() in _EVENING_WORDS
            self.take()
        if evening:
            times.start = _evening(times.start, times.start_12h)
            if times.end is not None:
                times.end = _evening(times.end, times.end_12h)
        return times

    def daytime_before_time(self) -> bool:
        word = self.word()
        if word in _MORNING_WORDS or word in _EVENING_WORDS:
            mark = self.mark()
            self.take()
            if self.time_spec() is not None:
                self.reset(mark)
                self.take()
                return word in _EVENING_WORDS
            self.reset(mark)
        return False

    def time_spec(self) -> _TimeSpec | None:
        mark = self.mark()
        if self.word() in _TIME_PREFIXES:
            self.take()
        times = self.time_range()
        if times is None:
            self.reset(mark)
        return times

    def time_range(self) -> _TimeSpec | None:
        tok = self.peek()
        if tok is None or not tok.low:
            return None
        if "-" in tok.low:
            left, _, right = tok.low.partition("-")
            a, b = _term(left), _term(right)
            if a is None or b is None:
                return None
            mark = self.mark()
            self.take()
            b = self.suffix(b)
            times = self.combine(a, b, tok.raw, dash=False)
            if times is None:
                self.reset(mark)
            return times
        a = _term(tok.low)
        if a is None:
            return None
        mark = self.mark()
        self.take()
        a = self.suffix(a)
        times = self.time_end(None, first=a, token=tok.raw)
        if times is None:
            self.reset(mark)
        return times

    def time_end(
        self, times: _TimeSpec | None, first: _Term | None = None, token: str = ""
    ) -> _TimeSpec | None:
        """An optional ``- 20 Uhr``/``bis 20:00`` after a start (``times`` or ``first``)."""
        if self.word() in _RANGE_WORDS:
            mark = self.mark()
            dash = self.word() == "-"
            self.take()
            nxt = self.peek()
            b = _term(nxt.low) if nxt is not None else None
            if b is not None:
                self.take()
                b = self.suffix(b)
                if times is not None:
                    start = _Term(times.start.hour, times.start.minute, "h24")
                    combined = self.combine(start, b, token, dash=dash)
                else:
                    assert first is not None
                    combined = self.combine(first, b, token, dash=dash)
                if combined is not None:
                    return combined
            self.reset(mark)
        if times is not None:
            return times
        assert first is not None
        if first.kind == "bare":
            return None
        clock = _clock(first)
        if clock is None:
            raise _err("dates.error.invalid_time", token=_show(token))
        return _TimeSpec(clock, first.kind in ("am", "pm"))

    def suffix(self, term: _Term) -> _Term:
        """Glue a separate ``Uhr``/``h``/``pm``/``am`` word onto a term."""
        if term.kind not in ("bare", "h24"):
            return term
        word, low = self.word(), self.low()
        if word in ("uhr", "h") and term.kind in ("bare", "h24"):
            self.take()
            return _Term(term.hour, term.minute, "h24")
        if low in ("pm", "p.m.", "p.m"):
            self.take()
            return _Term(term.hour, term.minute, "pm")
        if low in ("a.m.", "a.m"):
            self.take()
            return _Term(term.hour, term.minute, "am")
        if low == "am" and term.kind == "bare":
            if 1 <= term.hour <= 11:
                self.take()
                return _Term(term.hour, term.minute, "am")
            if term.hour == 12:
                raise _err("dates.error.ambiguous_time", token=str(term.hour))
        return term

    def combine(self, a: _Term, b: _Term, token: str, *, dash: bool) -> _TimeSpec | None:
        """A start and end term as times; bare parts borrow the other's kind."""
        if b.kind == "bare" and (a.kind == "bare" or dash):
            if a.kind == "bare" and _clock(a) is not None and _clock(b) is not None:
                raise _err("dates.error.ambiguous_time", token=_show(token or str(a.hour)))
            return None
        if a.kind == "bare":
            end = _clock(b)
            if end is None:
                return None
            start = _meridiem_before(a.hour, end) if b.kind in ("am", "pm") else _clock(a)
            if start is None:
                return None
            return _TimeSpec(start, b.kind in ("am", "pm"), end, b.kind in ("am", "pm"))
        start = _clock(a)
        if start is None:
            return None
        if b.kind == "bare":
            end = _meridiem_after(b.hour, start) if a.kind in ("am", "pm") else _clock(b)
        else:
            end = _clock(b)
        if end is None:
            return None
        twelve = a.kind in ("am", "pm")
        return _TimeSpec(start, twelve, end, twelve or b.kind in ("am", "pm"))

    def end_datetime(self, start: datetime, times: _TimeSpec) -> datetime | None:
        if times.end is None:
            return None
        naive_start = _naive(start)
        naive_end = datetime.combine(naive_start.date(), times.end)
        if naive_end == naive_start:
            raise _err("dates.error.end_before_start", time=_fmt_time(times.end))
        if naive_end < naive_start:
            naive_end += timedelta(days=1)
        return _wall(naive_end, self.zone)

    def end_by_date(self, start: datetime) -> datetime | None:
        """``bis 26.12. 16 Uhr`` after a one-off's time: an end on another day."""
        if self.word() not in _UNTIL_WORDS:
            return None
        mark = self.mark()
        self.take()
        spec = self.date_expr()
        if spec is None:
            self.reset(mark)
            return None
        end_time = spec.inline_time
        if end_time is None:
            times = self.time_spec()
            if times is None or times.end is not None:
                raise _err("dates.error.missing_time", token=self.next_raw())
            end_time = times.start
        day = self.resolve_from_day(spec)
        end = _wall(datetime.combine(day, end_time), self.zone)
        if _utc(end) <= _utc(start):
            raise _err("dates.error.end_before_start", time=_fmt_time(end_time))
        return end

    # -- dates

    def date_expr(self) -> _DateSpec | None:
        tok = self.peek()
        if tok is None:
            return None
        word = tok.word
        if word in _RELATIVE:
            return _DateSpec("rel", self.take(), offset=_RELATIVE[word])
        if word == "day" and self.word(1) == "after" and self.word(2) == "tomorrow":
            return _DateSpec("rel", self.take(3), offset=2)
        if word in _WEEKDAYS:
            raw = self.take()
            mark = self.mark()
            if self.word() in ("den", "the"):
                self.take()
            inner = self.calendar_date()
            if inner is not None:
                inner.check_weekday = _WEEKDAYS[word]
                inner.check_token = raw
                return inner
            self.reset(mark)
            return _DateSpec("wd", raw, weekday=_WEEKDAYS[word])
        return self.calendar_date()

    def calendar_date(self) -> _DateSpec | None:
        tok = self.peek()
        if tok is None or not tok.low.isascii():
            return None
        low = tok.low
        if match := _RE_DOTTED.fullmatch(low):
            day, month = int(match[1]), int(match[2])
            year = self.year(match[3], tok.raw) if match[3] else None
            self.take()
            return self.make_date(day, month, year, tok.raw)
        if match := _RE_ISO.fullmatch(low):
            self.take()
            year = self.year(match[1], tok.raw)
            spec = self.make_date(int(match[3]), int(match[2]), year, tok.raw)
            if match[4] is not None:
                clock = _clock(_Term(int(match[4]), int(match[5]), "h24"))
                if clock is None:
                    raise _err("dates.error.invalid_time", token=_show(tok.raw))
                spec.inline_time = clock
            return spec
        if match := _RE_SLASH.fullmatch(low):
            first, second = int(match[1]), int(match[2])
            if first <= 12 and second <= 12 and first != second:
                raise _err(
                    "dates.error.ambiguous",
                    token=_show(tok.raw),
                    a=f"{first}.{second}.",
                    b=f"{second}.{first}.",
                )
            day, month = (second, first) if second > 12 else (first, second)
            year = self.year(match[3], tok.raw) if match[3] else None
            self.take()
            return self.make_date(day, month, year, tok.raw)
        # 24. Dezember [2026] / 24th dec / Dec 24 [2026]
        if (match := _RE_DAY.fullmatch(low)) and self.word(1) in _MONTHS:
            month = _MONTHS[self.word(1)]
            mark = self.mark()
            self.take(2)
            year = self.optional_year()
            return self.make_date(int(match[1]), month, year, self.raw_since(mark))
        if tok.word in _MONTHS and (match := _RE_DAY.fullmatch(self.low(1))):
            month = _MONTHS[tok.word]
            mark = self.mark()
            self.take(2)
            year = self.optional_year()
            return self.make_date(int(match[1]), month, year, self.raw_since(mark))
        return None

    def optional_year(self) -> int | None:
        match = _RE_YEAR.fullmatch(self.low())
        if match is None:
            return None
        raw = self.take()
        return self.year(match[1], raw)

    def year(self, text: str, raw: str) -> int:
        year = int(text)
        if len(text) == 2:
            year += 2000
        if not year_in_range(year, self.today):
            raise _err("dates.error.invalid_date", token=_show(raw))
        return year

    def make_date(self, day: int, month: int, year: int | None, raw: str) -> _DateSpec:
        if not 1 <= month <= 12 or not 1 <= day <= 31:
            raise _err("dates.error.invalid_date", token=_show(raw))
        if year is None:
            if day > (29 if month == 2 else calendar.monthrange(2001, month)[1]):
                raise _err("dates.error.invalid_date", token=_show(raw))
            return _DateSpec("partial", raw, dm=(day, month))
        if day > calendar.monthrange(year, month)[1]:
            raise _err("dates.error.invalid_date", token=_show(raw))
        return _DateSpec("abs", raw, day=date(year, month, day))

    # -- resolving dates

    def this_year(self, dm: tuple[int, int], year: int) -> date | None:
        day, month = dm
        if day > calendar.monthrange(year, month)[1]:
            return None
        return date(year, month, day)

    def next_year_date(self, dm: tuple[int, int], floor: date) -> date:
        """The first date with day and month ``dm`` that is on or after ``floor``."""
        for year in range(floor.year, floor.year + 9):
            found = self.this_year(dm, year)
            if found is not None and found >= floor:
                return found
        raise _err("dates.error.invalid_date", token=f"{dm[0]}.{dm[1]}.")

    def recent_slip(self, spec: _DateSpec, floor: date) -> date | None:
        """This year's date if it passed only recently (a likely slip, not next year)."""
        this = self.this_year(spec.dm, self.today.year)
        if this is None or this >= floor:
            return None
        if (self.today - this).days <= _RECENT_PAST_DAYS:
            return this
        return None

    def check_weekday(self, spec: _DateSpec, day: date) -> date:
        if spec.check_weekday is not None and day.weekday() != spec.check_weekday:
            raise _err(
                "dates.error.weekday_mismatch",
                token=_show(spec.check_token),
                date=_fmt_date(day),
                iso=day.isoformat(),
                weekday_de=_DE_WEEKDAYS[day.weekday()],
                weekday_en=_EN_WEEKDAYS[day.weekday()],
            )
        return day

    def resolve_event_day(self, spec: _DateSpec, at: time | None) -> date:
        """The day of a one-off (or :func:`parse_date`); may raise past_no_year."""
        if spec.kind == "rel":
            return self.today + timedelta(days=spec.offset)
        if spec.kind == "wd":
            day = self.today + timedelta(days=(spec.weekday - self.today.weekday()) % 7)
            if at is not None and day == self.today:
                if _utc(_wall(datetime.combine(day, at), self.zone)) <= _utc(self.now):
                    day += timedelta(days=7)
            return day
        if spec.kind == "abs":
            assert spec.day is not None
            return self.check_weekday(spec, spec.day)
        if self.recent_slip(spec, self.today) is not None:
            upcoming = self.next_year_date(spec.dm, self.today)
            raise _err(
                "dates.error.past_no_year",
                token=_show(spec.token),
                date=_fmt_date(upcoming),
                iso=upcoming.isoformat(),
            )
        return self.check_weekday(spec, self.next_year_date(spec.dm, self.today))

    def resolve_from_day(self, spec: _DateSpec) -> date:
        """An ``ab`` date: a recently passed day/month stays this year."""
        if spec.kind in ("rel", "wd"):
            return self.resolve_event_day(spec, None)
        if spec.kind == "abs":
            assert spec.day is not None
            return self.check_weekday(spec, spec.day)
        slip = self.recent_slip(spec, self.today)
        found = slip or self.next_year_date(spec.dm, self.today)
        return self.check_weekday(spec, found)

    def resolve_until_day(self, spec: _DateSpec, floor: date) -> date:
        if spec.kind in ("rel", "wd"):
            return self.resolve_event_day(spec, None)
        if spec.kind == "abs":
            assert spec.day is not None
            return self.check_weekday(spec, spec.day)
        if self.recent_slip(spec, floor) is not None and floor <= self.today:
            upcoming = self.next_year_date(spec.dm, floor)
            raise _err(
                "dates.error.past_no_year",
                token=_show(spec.token),
                date=_fmt_date(upcoming),
                iso=upcoming.isoformat(),
            )
        return self.check_weekday(spec, self.next_year_date(spec.dm, floor))

    # -- recurrences

    def recurrence(self) -> _Rec | None:
        word = self.word()
        mark = self.mark()
        if word in _DAILY_WORDS:
            return _Rec(DAILY, self.take())
        if word in _WORKDAY_WORDS:
            return _Rec(WEEKLY, self.take(), byday=[(None, d) for d in range(5)])
        if word in _WEEKDAY_ADVERBS:
            days = self.weekday_list(_WEEKDAY_ADVERBS)
            return _Rec(WEEKLY, self.raw_since(mark), byday=[(None, d) for d in days])
        if word in _WEEKLY_WORDS:
            self.take()
            return self.tail(_Rec(WEEKLY, self.raw_since(mark), needs_start=True))
        if word in _BIWEEKLY_WORDS:
            self.take()
            return self.tail(_Rec(WEEKLY, self.raw_since(mark), interval=2, needs_start=True))
        if word in _MONTHLY_WORDS:
            self.take()
            return self.tail(_Rec(MONTHLY, self.raw_since(mark), needs_start=True))
        if word in _YEARLY_WORDS:
            self.take()
            return self.tail(_Rec(YEARLY, self.raw_since(mark), needs_start=True))
        if word == "alle":
            self.take()
            number = self.number()
            if number is not None and self.word() in _UNITS:
                return self.unit_rec(number, mark)
            self.reset(mark)
            return None
        if word in _EVERY_WORDS:
            return self.every(mark)
        return None

    def every(self, mark: tuple[int, int]) -> _Rec:
        self.take()
        word = self.word()
        if word in _UNITS:
            return self.unit_rec(1, mark)
        if word in _WORKDAY_NOUNS:
            self.take()
            return _Rec(WEEKLY, self.raw_since(mark), byday=[(None, d) for d in range(5)])
        if word == "other":
            self.take()
            if self.word() in _UNITS:
                return self.unit_rec(2, mark)
            days = self.weekday_list(_WEEKDAYS)
            if days:
                byday: list[tuple[int | None, int]] = [(None, d) for d in days]
                return _Rec(WEEKLY, self.raw_since(mark), interval=2, byday=byday)
            raise _err("dates.error.missing_date", token=self.next_raw())
        ordinals = self.ordinal_list()
        if ordinals:
            if self.word() in _WEEKDAYS:
                days = self.weekday_list(_WEEKDAYS)
                qualified = self.month_qualifier()
                token = self.raw_since(mark)
                if ordinals == [2] and not qualified:
                    raise _err(
                        "dates.error.ambiguous_ordinal",
                        token=_show(token),
                        weekday_de=_DE_WEEKDAYS[days[0]],
                        weekday_en=_EN_WEEKDAYS[days[0]],
                    )
                return _Rec(MONTHLY, token, byday=self.ordinal_days(ordinals, days, token))
            if self.word() in _UNITS and len(ordinals) == 1 and ordinals[0] >= 1:
                return self.unit_rec(ordinals[0], mark)
            raise _err("dates.error.missing_date", token=_show(self.raw_since(mark)))
        days = self.weekday_list(_WEEKDAYS)
        if days:
            return _Rec(WEEKLY, self.raw_since(mark), byday=[(None, d) for d in days])
        raise _err("dates.error.missing_date", token=_show(self.raw_since(mark)))

    def unit_rec(self, number: int, mark: tuple[int, int]) -> _Rec:
        """``alle N <unit>`` with the unit word next; N >= 1."""
        freq = _UNITS[self.word()]
        self.take()
        if number < 1:
            raise _err("dates.error.invalid_date", token=_show(self.raw_since(mark)))
        token = self.raw_since(mark)
        if freq == DAILY:
            if number % 7 == 0:
                rec = self.tail(_Rec(WEEKLY, token, interval=number // 7, needs_start=True))
                if rec.byday or rec.from_spec is not None:
                    return rec
            return _Rec(DAILY, token, interval=number)
        return self.tail(_Rec(freq, token, interval=number, needs_start=True))

    def tail(self, rec: _Rec) -> _Rec:
        """``am Montag`` / ``am 1. Montag`` / ``am 15.`` / ``am 24.12.`` after a frequency."""
        mark = self.mark()
        has_on = self.word() in _ON_WORDS
        if has_on:
            self.take()
            if self.word() == "the":
                self.take()
        if rec.freq == WEEKLY:
            days = self.weekday_list(_WEEKDAYS) or self.weekday_list(_WEEKDAY_ADVERBS)
            if days:
                rec.byday = [(None, d) for d in days]
                rec.needs_start = False
                return rec
        elif rec.freq == MONTHLY and has_on:
            spec = self.calendar_date()
            if spec is not None:
                rec.from_spec = spec
                return rec
            ordinals = self.ordinal_list()
            if ordinals and self.word() in _WEEKDAYS:
                days = self.weekday_list(_WEEKDAYS)
                self.month_qualifier()
                rec.byday = self.ordinal_days(ordinals, days, self.raw_since(mark))
                rec.needs_start = False
                return rec
            if ordinals:
                said_day = self.word() in ("tag", "day")
                if said_day:
                    self.take()
                    self.month_qualifier()
                # "am letzten" alone is not yet a day; "am letzten Tag" is
                if all(1 <= n <= 31 or (n == -1 and said_day) for n in ordinals):
                    rec.bymonthday = list(dict.fromkeys(ordinals))
                    rec.needs_start = False
                    return rec
                raise _err("dates.error.invalid_date", token=_show(self.raw_since(mark)))
        elif rec.freq == YEARLY:
            spec = self.calendar_date()
            if spec is not None:
                rec.from_spec = spec
                return rec
        self.reset(mark)
        return rec

    def ordinal_days(
        self, ordinals: list[int], days: list[int], token: str
    ) -> list[tuple[int | None, int]]:
        if not all(1 <= n <= 5 or n in (-1, -2) for n in ordinals):
            raise _err("dates.error.invalid_date", token=_show(token))
        return list(dict.fromkeys((n, d) for n in ordinals for d in days))

    def number(self) -> int | None:
        """A count: ``2``, ``zwei``, ``two``."""
        word = self.word()
        if word in _NUMBER_WORDS:
            self.take()
            return _NUMBER_WORDS[word]
        if self.low().isascii() and re.fullmatch(r"[0-9]{1,2}", self.low()):
            return int(self.take())
        return None

    def ordinal_list(self) -> list[int]:
        """``1. und 3.``, ``ersten``, ``last``, ``2nd``; a plain count (``2``) only first.

        Later items need an ordinal form, so ``am 15. 18 Uhr`` stops before the time.
        """
        found: list[int] = []
        value = _ordinal_value(self.low(), self.word(), first=True)
        while value is not None:
            found.append(value)
            self.take()
            if self.word() in _AND_WORDS:
                following = _ordinal_value(self.low(1), self.word(1), first=False)
                if following is not None:
                    self.take()
            value = _ordinal_value(self.low(), self.word(), first=False)
        return found

    def weekday_list(self, table: Mapping[str, int]) -> list[int]:
        days: list[int] = []
        while self.word() in table:
            day = table[self.word()]
            if day not in days:
                days.append(day)
            self.take()
            if self.word() in _AND_WORDS and self.word(1) in table:
                self.take()
        return days

    def month_qualifier(self) -> bool:
        """``im Monat``, ``des Monats``, ``of the month``, ``each month`` ..."""
        first, second, third = self.word(), self.word(1), self.word(2)
        if first in ("im", "des", "pro", "jeden", "jedes", "each", "every", "a", "per"):
            if second in _MONTH_QUALIFIER_NOUNS:
                self.take(2)
                return True
        if first in ("of", "in") and second in ("the", "each", "every"):
            if third in _MONTH_QUALIFIER_NOUNS:
                self.take(3)
                return True
        return False

    def modifiers(self, rec: _Rec) -> None:
        """Any ``ab <datum>`` and ``bis <datum>``, each at most once."""
        while True:
            word = self.word()
            mark = self.mark()
            if word in _FROM_WORDS and rec.from_spec is None:
                self.take()
                spec = self.date_expr()
                if spec is not None:
                    rec.from_spec = spec
                    continue
                self.reset(mark)
            if word in _UNTIL_WORDS and rec.until_spec is None:
                self.take()
                spec = self.date_expr()
                if spec is not None:
                    rec.until_spec = spec
                    continue
                self.reset(mark)
            return

    def finish_recurrence(self, rec: _Rec) -> When:
        self.modifiers(rec)
        times = self.required_time()
        self.modifiers(rec)
        zone = self.zone
        from_day = self.resolve_from_day(rec.from_spec) if rec.from_spec else None
        if rec.needs_start and from_day is None and not rec.byday and not rec.bymonthday:
            raise _err("dates.error.missing_start", token=_show(rec.token))
        if from_day is not None:
            if rec.freq == WEEKLY and not rec.byday:
                rec.byday = [(None, from_day.weekday())]
            elif rec.freq == MONTHLY and not rec.byday and not rec.bymonthday:
                rec.bymonthday = [from_day.day]
            elif rec.freq == YEARLY and rec.bymonth is None:
                rec.bymonth = from_day.month
                rec.bymonthday = [from_day.day]
        floor = max(from_day or self.today, self.today)
        until_day = None
        if rec.until_spec is not None:
            until_day = self.resolve_until_day(rec.until_spec, floor)
            if until_day < floor or (from_day is not None and until_day < from_day):
                raise _err(
                    "dates.error.until_before_start",
                    token=_show(rec.until_spec.token),
                    date=_fmt_date(until_day),
                    iso=until_day.isoformat(),
                )
        until = datetime.combine(until_day, time(23, 59, 59)) if until_day else None
        at = times.start
        anchor: datetime | None
        if from_day is None:
            anchor = self.first_after_now(_build_rule(rec, datetime.combine(self.today, at)))
        elif rec.interval == 1:
            anchor = datetime.combine(max(from_day, self.today), at)
        else:
            first = next(iter(_build_rule(rec, datetime.combine(from_day, at), count=1)), None)
            anchor = None if first is None else _skip_ahead(first, rec, self.today)
        if anchor is None:
            raise _err("dates.error.no_occurrence", token=_show(rec.token))
        rule = _build_rule(rec, anchor, interval=rec.interval, until=until)
        start = self.first_after_now(rule)
        if start is None:
            if until_day is not None:
                raise _err(
                    "dates.error.until_before_start",
                    token=_show(rec.until_spec.token if rec.until_spec else ""),
                    date=_fmt_date(until_day),
                    iso=until_day.isoformat(),
                )
            raise _err("dates.error.no_occurrence", token=_show(rec.token))
        aware = _wall(start, zone)
        rule_text = _rule_text(rec, until, zone)
        return When(aware, rule_text, self.end_datetime(aware, times), zone.key)

    def first_after_now(self, rule: RRule) -> datetime | None:
        now = _utc(self.now)
        for occ in islice(rule, _SEARCH_LIMIT):
            if _utc(_wall(occ, self.zone)) > now:
                return occ
        return None


def _ordinal_value(low: str, word: str, *, first: bool) -> int | None:
    if word in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[word]
    if first and word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if not low.isascii():
        return None
    match = _RE_NUMBER.fullmatch(low)
    if match is None or (not first and low.isdigit()):
        return None
    return int(match[1])


def _bare_hour(low: str) -> bool:
    term = _term(low) if low else None
    return term is not None and term.kind == "bare" and _clock(term) is not None


def _evening(moment: time, twelve_hour: bool) -> time:
    if not twelve_hour and 1 <= moment.hour <= 11:
        return moment.replace(hour=moment.hour + 12)
    return moment


def _build_rule(
    rec: _Rec,
    dtstart: datetime,
    *,
    interval: int = 1,
    until: datetime | None = None,
    count: int | None = None,
) -> RRule:
    return RRule(
        rec.freq,
        dtstart=dtstart,
        interval=interval,
        until=until,
        count=count,
        byweekday=[rr_weekday(d, n) for n, d in rec.byday] or None,
        bymonthday=rec.bymonthday or None,
        bymonth=rec.bymonth,
        cache=False,
    )


def _rule_text(rec: _Rec, until: datetime | None, zone: ZoneInfo) -> str:
    parts = [f"FREQ={_FREQ_NAMES[rec.freq]}"]
    if rec.interval > 1:
        parts.append(f"INTERVAL={rec.interval}")
    if rec.bymonth is not None:
        parts.append(f"BYMONTH={rec.bymonth}")
    if rec.bymonthday:
        parts.append("BYMONTHDAY=" + ",".join(str(n) for n in rec.bymonthday))
    if rec.byday:
        days = (f"{n:+d}{_DAY_CODES[d]}" if n else _DAY_CODES[d] for n, d in rec.byday)
        parts.append("BYDAY=" + ",".join(days))
    if until is not None:
        parts.append("UNTIL=" + _wall(until, zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
    return ";".join(parts)


def _skip_ahead(first: datetime, rec: _Rec, today: date) -> datetime:
    """Move a series' anchor close to today by whole periods, keeping its phase."""
    freq, interval = rec.freq, rec.interval
    if first.date() >= today:
        return first
    if freq == DAILY:
        periods = (today - first.date()).days // interval
        return first + timedelta(days=periods * interval)
    if freq == WEEKLY:
        periods = (today - first.date()).days // (7 * interval)
        return first + timedelta(weeks=periods * interval)
    if freq == MONTHLY:
        months = (today.year - first.year) * 12 + today.month - first.month
        periods = months // interval
        if periods == 0:
            return first
        year, month = divmod(first.year * 12 + first.month - 1 + periods * interval, 12)
        return first.replace(year=year, month=month + 1, day=1)
    periods = (today.year - first.year) // interval
    if periods == 0:
        return first
    return first.replace(year=first.year + periods * interval, month=1, day=1)


# --------------------------------------------------------------------------- public API


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def parse_when(text: str, *, now: datetime, tz: ZoneInfo) -> tuple[When, str]:
    """Read the leading date-or-recurrence and time of ``text``.

    Returns the :class:`When` (in ``tz``) and the rest of the text (the title,
    stripped). ``now`` must be aware. Raises :class:`DateParseError` for
    anything it cannot accept, and nothing else for any input text. Only the
    first words are looked at, so this is linear in the length of ``text``.
    """
    _check_now(now)
    parser = _Parser(text, now, tz)
    try:
        when = parser.parse_when()
    except OverflowError as exc:  # dates beyond year 9999 when now is near it
        raise _err("dates.error.invalid_date", token=_show(text[:30])) from exc
    return when, parser.rest()


def parse_time(text: str) -> time:
    """A clock time on its own (the ``bis:`` option): ``20:00``, ``20 Uhr``, ``8pm``, ``20``.

    A bare hour is accepted here, since the option can only mean a time.
    Raises :class:`DateParseError` (``dates.error.missing_time`` /
    ``dates.error.invalid_time``).
    """
    stripped = text.strip()
    if not stripped or all(_is_separator(ch) for ch in stripped):
        raise _err("dates.error.missing_time", token="")
    if len(stripped) > MAX_FIELD_LENGTH:
        raise _err("dates.error.invalid_time", token=_show(stripped))
    parser = _Parser(stripped, None, None)
    if parser.word() in _TIME_PREFIXES:
        parser.take()
    tok = parser.peek()
    term = _term(tok.low) if tok is not None else None
    result: time | None = None
    twelve = False
    if term is not None and tok is not None:
        parser.take()
        term = parser.suffix(term)
        result = _clock(term)
        twelve = term.kind in ("am", "pm")
    if result is not None and parser.word() in _DAYTIME_ADVERBS:
        if parser.word() in _EVENING_WORDS:
            result = _evening(result, twelve)
        parser.take()
    if result is None or not parser.at_end():
        raise _err("dates.error.invalid_time", token=_show(stripped))
    return result


def parse_date(text: str, *, now: datetime, tz: ZoneInfo) -> date:
    """A date on its own (``24.12.``, ``morgen``, ``Sa``, ``2026-12-24``).

    Same rules as in :func:`parse_when`: weekdays count today, a day without a
    year is the next one (a recent slip raises ``dates.error.past_no_year``) and
    a past date raises ``dates.error.past``.
    """
    _check_now(now)
    stripped = text.strip()
    if not stripped:
        raise _err("dates.error.missing_date", token="")
    if len(stripped) > MAX_FIELD_LENGTH:
        raise _err("dates.error.invalid_date", token=_show(stripped))
    parser = _Parser(stripped, now, tz)
    try:
        spec = parser.date_expr()
        if spec is None or not parser.at_end():
            raise _err("dates.error.invalid_date", token=_show(stripped))
        day = parser.resolve_event_day(spec, None)
    except OverflowError as exc:
        raise _err("dates.error.invalid_date", token=_show(stripped)) from exc
    if day < parser.today:
        raise _err(
            "dates.error.past_date",
            token=_show(stripped),
            date=_fmt_date(day),
            iso=day.isoformat(),
        )
    return day


# --------------------------------------------------------------------------- describing


def _join(items: list[str], lang: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    conj = " und " if lang == "de" else " and "
    return ", ".join(items[:-1]) + conj + items[-1]


def _en_ordinal(n: int) -> str:
    words = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}
    if n in words:
        return words[n]
    if n == -2:
        return "second-to-last"
    return _en_number(n)


def _en_number(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _de_ordinal(n: int) -> str:
    return {-1: "letzten", -2: "vorletzten"}.get(n, f"{n}.")


def _parse_byday(value: str) -> list[tuple[int | None, int]] | None:
    days: list[tuple[int | None, int]] = []
    for item in value.split(","):
        match = re.fullmatch(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)", item.strip().upper())
        if match is None:
            return None
        days.append((int(match[1]) if match[1] else None, _DAY_CODES.index(match[2])))
    return days


def _parse_ints(value: str) -> list[int] | None:
    try:
        return [int(item) for item in value.split(",")]
    except ValueError:
        return None


def describe_rrule(rrule: str, lang: str, *, start: datetime | None = None) -> str:
    """A short human text for an RRULE, e.g. "jeden 1. Montag im Monat" or "every Monday".

    ``lang`` is "de" or "en" (anything else gets German). ``start`` (the
    series' first start) fills in rules that rely on DTSTART and turns UNTIL
    into a local date. Never raises; unknown rules read "wiederkehrend"/"recurring".
    """
    de = lang != "en"
    lang = "de" if de else "en"
    generic = "wiederkehrend" if de else "recurring"
    if not isinstance(rrule, str) or len(rrule) > 1000:
        return generic
    text = rrule.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if name.strip():
            parts[name.strip().upper()] = value.strip()
    freq = parts.get("FREQ", "").upper()
    try:
        interval = int(parts.get("INTERVAL", "1") or "1")
    except ValueError:
        return generic
    byday = _parse_byday(parts["BYDAY"]) if "BYDAY" in parts else []
    monthdays = _parse_ints(parts["BYMONTHDAY"]) if "BYMONTHDAY" in parts else []
    months = _parse_ints(parts["BYMONTH"]) if "BYMONTH" in parts else []
    if byday is None or monthdays is None or months is None or interval < 1:
        return generic
    if any(not 1 <= m <= 12 for m in months) or any(not 1 <= abs(d) <= 31 for d in monthdays):
        return generic
    if start is not None and start.tzinfo is not None:
        if freq == "WEEKLY" and not byday:
            byday = [(None, start.weekday())]
        if freq == "MONTHLY" and not byday and not monthdays:
            monthdays = [start.day]
        if freq == "YEARLY" and not months and not byday:
            months, monthdays = [start.month], monthdays or [start.day]
    names = _DE_WEEKDAYS if de else _EN_WEEKDAYS
    if freq == "DAILY" and not byday:
        if interval == 1:
            out = "täglich" if de else "daily"
        else:
            out = f"alle {interval} Tage" if de else f"every {interval} days"
    elif freq in ("DAILY", "WEEKLY") and byday and all(n is None for n, _ in byday):
        days = sorted(d for _, d in byday)
        if days == [0, 1, 2, 3, 4] and interval == 1:
            out = "werktags" if de else "on weekdays"
        elif interval == 1:
            out = ("jeden " if de else "every ") + _join([names[d] for d in days], lang)
        elif de:
            out = f"alle {interval} Wochen am " + _join([names[d] for d in days], "de")
        elif interval == 2:
            out = "every other " + _join([names[d] for d in days], "en")
        else:
            out = f"every {interval} weeks on " + _join([names[d] for d in days], "en")
    elif freq == "WEEKLY" and not byday:
        out = (
            ("wöchentlich" if de else "weekly")
            if interval == 1
            else (f"alle {interval} Wochen" if de else f"every {interval} weeks")
        )
    elif freq == "MONTHLY" and byday and all(n is not None for n, _ in byday):
        if len({d for _, d in byday}) == 1:
            ords = [n for n, _ in byday if n is not None]
            if de:
                phrase = _join([_de_ordinal(n) for n in ords], "de") + " " + names[byday[0][1]]
            else:
                phrase = _join([_en_ordinal(n) for n in ords], "en") + " " + names[byday[0][1]]
        else:
            items = [
                (_de_ordinal(n) if de else _en_ordinal(n)) + " " + names[d]
                for n, d in byday
                if n is not None
            ]
            phrase = _join(items, lang)
        if interval == 1:
            out = f"jeden {phrase} im Monat" if de else f"every {phrase} of the month"
        else:
            out = (
                f"alle {interval} Monate am {phrase}"
                if de
                else f"every {interval} months on the {phrase}"
            )
    elif freq == "MONTHLY" and monthdays and not byday:
        if de:
            days_text = _join(["letzten Tag" if d == -1 else f"{d}." for d in monthdays], "de")
            prefix = "monatlich" if interval == 1 else f"alle {interval} Monate"
            out = f"{prefix} am {days_text}"
        else:
            days_text = _join(["last day" if d == -1 else _en_number(d) for d in monthdays], "en")
            prefix = "monthly" if interval == 1 else f"every {interval} months"
            out = f"{prefix} on the {days_text}"
    elif freq == "MONTHLY" and not byday:
        out = (
            ("monatlich" if de else "monthly")
            if interval == 1
            else (f"alle {interval} Monate" if de else f"every {interval} months")
        )
    elif freq == "YEARLY" and len(months) == 1 and len(monthdays) == 1 and not byday:
        day, month = monthdays[0], months[0]
        if de:
            when = f"am {day}. {_DE_MONTHS[month - 1]}"
            out = f"jährlich {when}" if interval == 1 else f"alle {interval} Jahre {when}"
        else:
            when = f"on {_EN_MONTHS[month - 1]} {day}"
            out = f"every year {when}" if interval == 1 else f"every {interval} years {when}"
    elif freq == "YEARLY" and not byday and not months:
        out = (
            ("jährlich" if de else "yearly")
            if interval == 1
            else (f"alle {interval} Jahre" if de else f"every {interval} years")
        )
    else:
        return generic
    return out + _describe_end(parts, de, start)


def _describe_end(parts: Mapping[str, str], de: bool, start: datetime | None) -> str:
    if "COUNT" in parts:
        count = parts["COUNT"]
        if count.isdigit() and len(count) < 6:
            return f" ({count}-mal)" if de else f" ({count} times)"
        return ""
    if "UNTIL" not in parts:
        return ""
    zone = start.tzinfo if start is not None and isinstance(start.tzinfo, ZoneInfo) else None
    try:
        until = _until_local(f"UNTIL={parts['UNTIL']}", zone or ZoneInfo("UTC"))
    except ValueError:
        return ""
    if until is None:
        return ""
    day = until.date()
    if de:
        return f" bis {_fmt_date(day)}"
    return f" until {day.day} {_EN_MONTHS[day.month - 1]} {day.year}"
