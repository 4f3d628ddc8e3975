"""Property tests for the date parser: no input crashes it, valid input keeps its time."""

from __future__ import annotations

import itertools
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dorfbot.dates import (
    DateParseError,
    When,
    describe_rrule,
    parse_date,
    parse_time,
    parse_when,
)

ZONES = [
    "Europe/Berlin",
    "Europe/Vienna",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "UTC",
]
BERLIN = ZoneInfo("Europe/Berlin")
FIXED_NOW = datetime(2026, 11, 25, 10, 0, tzinfo=BERLIN)

# Real words of the grammar, so random "sentences" reach deep into the parser.
VOCAB = [
    "heute", "morgen", "übermorgen", "uebermorgen", "today", "tomorrow", "day", "after",
    "Mo", "Di", "Mi", "Do", "Fr", "Sa", "So", "Mo.", "Montag", "Sonntag", "Sonnabend",
    "monday", "sun", "montags", "sundays", "werktags", "weekday", "jeden", "jede", "every",
    "each", "other", "alle", "täglich", "taeglich", "daily", "wöchentlich", "weekly",
    "14-tägig", "monatlich", "monthly", "jährlich", "yearly", "annually", "ab", "bis",
    "from", "until", "am", "an", "on", "the", "den", "um", "at", "von", "gegen", "im",
    "des", "of", "Monat", "Monats", "month", "Tag", "Tage", "Woche", "Wochen", "weeks",
    "Jahre", "und", "and", "&", "-", "–", ":", "1.", "2.", "3.", "5.", "7.", "15.", "31.",
    "ersten", "zweiten", "letzten", "vorletzten", "first", "second", "last", "2nd", "zwei",
    "two", "14", "0", "12", "18", "24", "99", "2026", "Uhr", "uhr", "h", "pm", "am", "a.m.",
    "abends", "Abend", "früh", "morgens", "18:00", "18.30", "18.30.", "6pm", "12am",
    "6:30pm", "18h", "18h30", "24:00", "25:61", "18-20", "20-2", "10am-2pm", "18:00-20:00",
    "24.12.", "24.12.2026", "24.12.26", "1.1.", "29.2.", "31.02.", "24.12", "2026-12-24",
    "2027-03-28T02:30", "2026-13-45", "12/11", "24/12/2026", "Dezember", "Dez.", "Dec",
    "may", "Mai", "31.12.9999", "0.0.", "Feuerwehrfest", "Yoga", ",", ";", "\n", "\x00",
    "ß", "İ", "ǅ", "١٨", "１８", "\u200b", "😀",
]  # fmt: skip

TITLES = ["Feuerwehrfest", "Yoga", "Gemeinderat", "Flohmarkt", "Market", "Christmette"]

DE_WEEKDAYS = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
DE_SHORT = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]
EN_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
EN_SHORT = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_CODES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
DE_MONTHS = [
    "Januar", "Februar", "März", "April", "Mai", "Juni",
    "Juli", "August", "September", "Oktober", "November", "Dezember",
]  # fmt: skip
EN_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip

zones = st.sampled_from(ZONES).map(ZoneInfo)


@st.composite
def nows(draw: st.DrawFn) -> datetime:
    """An aware 'now' between 2025 and 2035 in one of the zones."""
    zone = draw(zones)
    naive = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2035, 12, 31)))
    return naive.replace(tzinfo=zone)


def check_result(text: str, now: datetime, zone: ZoneInfo, when: When, rest: str) -> None:
    """Invariants of every successful parse."""
    assert when.start.tzinfo is not None
    assert when.tz == zone.key
    assert when.start.astimezone(UTC) > now.astimezone(UTC)
    assert rest == rest.strip()
    assert rest in text
    if when.end is not None:
        assert when.end.astimezone(UTC) > when.start.astimezone(UTC)
    if when.rrule is not None:
        assert when.rrule.startswith("FREQ=")
        first = when.next_after(now)
        assert first is not None
        assert first == when.start.astimezone(UTC).astimezone(zone)
        assert isinstance(describe_rrule(when.rrule, "de", start=when.start), str)
        assert isinstance(when.describe("en"), str)


def parse_or_error(text: str, now: datetime, zone: ZoneInfo) -> None:
    try:
        when, rest = parse_when(text, now=now, tz=zone)
    except DateParseError as error:
        assert error.key.startswith("dates.error.")
        assert all(isinstance(v, str) and len(v) <= 40 for v in error.params.values())
        return
    check_result(text, now, zone, when, rest)


# --------------------------------------------------------------------------- anything goes


@settings(max_examples=300, deadline=1000)
@given(text=st.text(), now=nows())
def test_arbitrary_text_only_raises_date_parse_error(text: str, now: datetime) -> None:
    parse_or_error(text, now, ZoneInfo(now.tzinfo.key))  # type: ignore[union-attr]


@settings(max_examples=300, deadline=1000)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Zs", "Nd", "P", "Ll"])),
)
def test_control_characters_and_digits(text: str) -> None:
    parse_or_error(text, FIXED_NOW, BERLIN)


@settings(max_examples=500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.one_of(st.sampled_from(VOCAB), st.text(max_size=4)), max_size=12),
    seps=st.lists(st.sampled_from([" ", "  ", ", ", "\t", ",", " - "]), min_size=12, max_size=12),
    now=nows(),
)
def test_word_soup_only_raises_date_parse_error(
    words: list[str], seps: list[str], now: datetime
) -> None:
    text = "".join(w + s for w, s in zip(words, seps, strict=False))
    parse_or_error(text, now, ZoneInfo(now.tzinfo.key))  # type: ignore[union-attr]


@settings(max_examples=200, deadline=1000)
@given(text=st.one_of(st.text(), st.lists(st.sampled_from(VOCAB), max_size=6).map(" ".join)))
def test_parse_time_parse_date_and_describe_never_crash(text: str) -> None:
    try:
        result = parse_time(text)
        assert isinstance(result, time)
    except DateParseError:
        pass
    try:
        day = parse_date(text, now=FIXED_NOW, tz=BERLIN)
        assert day >= FIXED_NOW.date()
    except DateParseError:
        pass
    assert isinstance(describe_rrule(text, "de"), str)
    assert isinstance(describe_rrule(text, "en"), str)


LONG_INPUTS = [
    "x" * 65536,
    "1" * 65536,
    " " * 65536,
    "\x00" * 65536,
    "morgen 18 Uhr " + "x" * 65536,
    "morgen " + "1" * 65536,
    "jeden " * 11000,
    "Mo und " * 10000,
    "1. und " * 10000,
    "bis ab " * 10000,
    "18-" * 20000,
    "24.12." * 10000,
    "(" * 65536,
    "a" * 30 + "!" * 65536,
    "ü" * 65536,
    "🎉" * 20000,
]


@pytest.mark.parametrize("text", LONG_INPUTS, ids=range(len(LONG_INPUTS)))
def test_long_inputs_are_fast_and_safe(text: str) -> None:
    started = clock.perf_counter()
    parse_or_error(text, FIXED_NOW, BERLIN)
    for function in (parse_time, lambda t: parse_date(t, now=FIXED_NOW, tz=BERLIN)):
        try:
            function(text)
        except DateParseError:
            pass
    describe_rrule(text, "de")
    assert clock.perf_counter() - started < 1.0


def test_title_of_a_long_text_is_kept_whole() -> None:
    title = "Fest " + "x" * 65536
    when, rest = parse_when("morgen 18 Uhr " + title, now=FIXED_NOW, tz=BERLIN)
    assert rest == title
    assert when.start == datetime(2026, 11, 26, 18, tzinfo=BERLIN)


# --------------------------------------------------------------------------- valid grammar


@st.composite
def clock_times(draw: st.DrawFn) -> tuple[str, int, int]:
    """A time written in one of the accepted ways, with the hour and minute it means."""
    hour = draw(st.integers(0, 23))
    minute = draw(st.sampled_from([0, 0, 5, 15, 30, 45, 59]))
    forms = [f"{hour:02d}:{minute:02d}", f"{hour}:{minute:02d}", f"{hour}.{minute:02d}"]
    forms += [f"{hour}:{minute:02d} Uhr", f"{hour}.{minute:02d} Uhr", f"{hour}h{minute:02d}"]
    forms += [f"um {hour}:{minute:02d}", f"at {hour}:{minute:02d}"]
    if minute == 0:
        forms += [f"{hour} Uhr", f"{hour}Uhr", f"{hour}h", f"um {hour} Uhr", f"ab {hour} Uhr"]
    h12 = hour % 12 or 12
    meridiem = "am" if hour < 12 else "pm"
    forms += [f"{h12}:{minute:02d}{meridiem}"]
    if meridiem == "pm":
        forms += [f"{h12}:{minute:02d} pm"]
    if minute == 0:
        forms += [f"{h12}{meridiem}"]
        # a separate "am" only counts after a bare hour 1-11 (German "am" = "at the")
        if meridiem == "pm" or 1 <= h12 <= 11:
            forms += [f"{h12} {meridiem}"]
    return draw(st.sampled_from(forms)), hour, minute


titles = st.builds(
    lambda word, tail: (word + tail).strip(),
    st.sampled_from(TITLES),
    st.one_of(st.just(""), st.text().map(lambda t: " " + t)),
)


def wall(moment: datetime) -> tuple[date, int, int]:
    return moment.date(), moment.hour, moment.minute


@st.composite
def future_dates(draw: st.DrawFn, now: datetime) -> tuple[str, date]:
    """A future date written in one of the accepted ways, and the date it means."""
    today = now.date()
    target = today + timedelta(days=draw(st.integers(1, 700)))
    d, m, y = target.day, target.month, target.year
    forms = [
        f"{d:02d}.{m:02d}.{y}",
        f"{d}.{m}.{y}",
        f"{d}.{m}.{y % 100:02d}",
        f"{y}-{m:02d}-{d:02d}",
        f"{d}. {DE_MONTHS[m - 1]} {y}",
        f"{EN_MONTHS[m - 1]} {d} {y}",
        f"am {d}.{m}.{y}",
        f"{DE_WEEKDAYS[target.weekday()]}, den {d}.{m}.{y}",
        f"{EN_SHORT[target.weekday()]} {y}-{m:02d}-{d:02d}",
    ]
    if (target - today).days <= 300:  # without a year only where the year is obvious
        forms += [f"{d}.{m}.", f"{d:02d}.{m:02d}.", f"{d}. {DE_MONTHS[m - 1]}"]
    if d > 12 and (target - today).days <= 300:
        forms += [f"{d}/{m}", f"{m}/{d}"]
    if target == today + timedelta(days=1):
        forms += ["morgen", "tomorrow", "Morgen"]
    if target == today + timedelta(days=2):
        forms += ["übermorgen", "uebermorgen"]
    return draw(st.sampled_from(forms)), target


@settings(max_examples=400, deadline=1000)
@given(data=st.data(), now=nows(), written=clock_times(), title=titles)
def test_valid_one_off_keeps_date_time_and_title(
    data: st.DataObject, now: datetime, written: tuple[str, int, int], title: str
) -> None:
    zone = ZoneInfo(now.tzinfo.key)  # type: ignore[union-attr]
    date_text, target = data.draw(future_dates(now))
    time_text, hour, minute = written
    sep = data.draw(st.sampled_from([" ", ", ", "  "]))
    text = f"{date_text}{sep}{time_text} {title}"
    when, rest = parse_when(text, now=now, tz=zone)
    assert wall(when.start) == (target, hour, minute)
    assert rest == title
    assert when.rrule is None
    check_result(text, now, zone, when, rest)


@settings(max_examples=200, deadline=1000)
@given(
    now=nows(),
    written=clock_times(),
    title=titles,
    weekday=st.integers(0, 6),
    form=st.sampled_from([DE_WEEKDAYS, DE_SHORT, EN_WEEKDAYS, EN_SHORT]),
)
def test_weekday_is_the_next_one_with_that_time_ahead(
    now: datetime, written: tuple[str, int, int], title: str, weekday: int, form: list[str]
) -> None:
    zone = ZoneInfo(now.tzinfo.key)  # type: ignore[union-attr]
    time_text, hour, minute = written
    when, rest = parse_when(f"{form[weekday]} {time_text} {title}", now=now, tz=zone)
    assert (when.start.weekday(), when.start.hour, when.start.minute) == (weekday, hour, minute)
    assert rest == title
    days_ahead = (when.start.date() - now.date()).days
    assert 0 <= days_ahead <= 7
    check_result(f"{form[weekday]} {time_text} {title}", now, zone, when, rest)


def exists(day: date, hour: int, minute: int, zone: ZoneInfo) -> bool:
    """Whether this wall-clock time exists in the zone (not skipped by a DST change)."""
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment.replace(
        tzinfo=None
    )


@settings(max_examples=200, deadline=2000)
@given(
    now=nows(),
    written=clock_times(),
    title=titles,
    weekday=st.integers(0, 6),
    prefix=st.sampled_from(["jeden {de}", "every {en}", "jeden {short}", "{de}s"]),
)
def test_weekly_recurrence_keeps_wall_clock_time_for_two_years(
    now: datetime, written: tuple[str, int, int], title: str, weekday: int, prefix: str
) -> None:
    zone = ZoneInfo(now.tzinfo.key)  # type: ignore[union-attr]
    time_text, hour, minute = written
    head = prefix.format(de=DE_WEEKDAYS[weekday], en=EN_WEEKDAYS[weekday], short=DE_SHORT[weekday])
    text = f"{head} {time_text} {title}"
    when, rest = parse_when(text, now=now, tz=zone)
    assert when.rrule == f"FREQ=WEEKLY;BYDAY={DAY_CODES[weekday]}"
    assert (when.start.weekday(), when.start.hour, when.start.minute) == (weekday, hour, minute)
    assert rest == title
    check_result(text, now, zone, when, rest)
    starts = when.occurrences(now, now + timedelta(days=730))
    assert len(starts) in (104, 105)
    for previous, current in itertools.pairwise(starts):
        assert (current.date() - previous.date()).days == 7
    for start in starts:
        assert start.weekday() == weekday
        if exists(start.date(), hour, minute, zone):
            assert (start.hour, start.minute) == (hour, minute)
        else:  # skipped by the spring change: moved forward, never backward
            assert start.astimezone(UTC) > datetime(
                start.year, start.month, start.day, hour, minute, tzinfo=UTC
            ) - timedelta(days=1)


@settings(max_examples=150, deadline=2000)
@given(
    now=nows(),
    written=clock_times(),
    weekday=st.integers(0, 6),
    nth=st.sampled_from([(1, "1."), (1, "ersten"), (3, "3."), (4, "vierten"), (-1, "letzten")]),
)
def test_nth_weekday_of_month(
    now: datetime, written: tuple[str, int, int], weekday: int, nth: tuple[int, str]
) -> None:
    zone = ZoneInfo(now.tzinfo.key)  # type: ignore[union-attr]
    time_text, hour, minute = written
    number, word = nth
    when, rest = parse_when(
        f"jeden {word} {DE_WEEKDAYS[weekday]} {time_text} Rat", now=now, tz=zone
    )
    assert when.rrule == f"FREQ=MONTHLY;BYDAY={number:+d}{DAY_CODES[weekday]}"
    assert rest == "Rat"
    starts = [when.start, *when.occurrences(now, now + timedelta(days=400))[1:]]
    assert len(starts) >= 12
    for start in starts:
        assert start.weekday() == weekday
        if exists(start.date(), hour, minute, zone):
            assert (start.hour, start.minute) == (hour, minute)
        if number > 0:
            assert (start.day - 1) // 7 == number - 1
        else:
            assert (start + timedelta(days=7)).month != start.month


@settings(max_examples=150, deadline=2000)
@given(now=nows(), written=clock_times(), data=st.data())
def test_until_is_inclusive_and_final(
    now: datetime, written: tuple[str, int, int], data: st.DataObject
) -> None:
    zone = ZoneInfo(now.tzinfo.key)  # type: ignore[union-attr]
    time_text, hour, minute = written
    until = now.date() + timedelta(days=data.draw(st.integers(8, 400)))
    text = f"täglich bis {until.isoformat()} {time_text} Glocken"
    when, _ = parse_when(text, now=now, tz=zone)
    starts = when.occurrences(now, now + timedelta(days=800))
    assert starts[-1].date() == until
    if exists(until, hour, minute, zone):
        assert (starts[-1].hour, starts[-1].minute) == (hour, minute)
    assert when.next_after(starts[-1]) is None


@settings(max_examples=100, deadline=1000)
@given(now=nows(), written=clock_times(), title=titles)
def test_time_round_trips_through_parse_time(
    now: datetime, written: tuple[str, int, int], title: str
) -> None:
    time_text, hour, minute = written
    assume(not time_text.startswith(("um ", "at ", "ab ")))
    assert parse_time(time_text) == time(hour, minute)
