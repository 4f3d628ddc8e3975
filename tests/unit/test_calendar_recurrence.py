"""Recurrence expansion of the calendar plugin: checked against dateutil, DST, limits."""

from __future__ import annotations

import asyncio
import calendar
import gc
import tracemalloc
from datetime import UTC, datetime, time, timedelta
from time import thread_time
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dorfbot.plugin_loader import bundled_plugins_dir, load_package

plugins_dir = bundled_plugins_dir()
assert plugins_dir is not None
load_package(plugins_dir / "calendar")
from dorfbot_plugin_calendar.recurrence import (  # type: ignore[import-not-found]  # noqa: E402
    COUNT_HORIZON_YEARS,
    MAX_PER_SERIES,
    RecurrenceError,
    Series,
    UnsupportedRule,
    expand,
    expand_async,
    parse_rule,
)

BERLIN = ZoneInfo("Europe/Berlin")
CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def starts(series: Series, after: datetime, before: datetime) -> list[datetime]:
    return [occ.start.astimezone(series.zone) for occ in series.occurrences(after, before)]


def test_weekly_keeps_wall_clock_time_across_dst() -> None:
    series = Series(1, datetime(2026, 3, 1, 10, 0), BERLIN, "FREQ=WEEKLY;BYDAY=SU")
    found = starts(series, datetime(2026, 3, 1, tzinfo=BERLIN), datetime(2026, 11, 2, tzinfo=UTC))
    assert all((s.hour, s.minute) == (10, 0) for s in found)
    offsets = {s.utcoffset() for s in found}
    assert offsets == {timedelta(hours=1), timedelta(hours=2)}
    assert len(found) == 36


def test_skipped_spring_time_moves_one_hour_later() -> None:
    series = Series(1, datetime(2026, 3, 22, 2, 30), BERLIN, "FREQ=WEEKLY")
    found = starts(
        series, datetime(2026, 3, 28, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN)
    )
    assert [(s.day, s.hour, s.minute) for s in found] == [(29, 3, 30)]


def test_one_off_with_duration_overlapping_window() -> None:
    series = Series(1, datetime(2026, 5, 1, 20), BERLIN, duration=timedelta(hours=3))
    inside = datetime(2026, 5, 1, 22, tzinfo=BERLIN)
    assert len(series.occurrences(inside, inside + timedelta(hours=1))) == 1
    after_end = datetime(2026, 5, 1, 23, tzinfo=BERLIN)
    assert series.occurrences(after_end, after_end + timedelta(hours=1)) == []
    point = Series(2, datetime(2026, 5, 1, 20), BERLIN)
    assert point.occurrences(inside, inside + timedelta(hours=1)) == []


def test_until_count_and_exdates() -> None:
    until = Series(1, datetime(2026, 1, 5, 18), BERLIN, "FREQ=WEEKLY;UNTIL=20260126T170000Z")
    year = (datetime(2026, 1, 1, tzinfo=BERLIN), datetime(2027, 1, 1, tzinfo=BERLIN))
    assert [s.day for s in starts(until, *year)] == [5, 12, 19, 26]
    count = Series(2, datetime(2026, 1, 5, 18), BERLIN, "FREQ=DAILY;COUNT=3")
    assert [s.day for s in starts(count, *year)] == [5, 6, 7]
    assert count.last_end() == datetime(2026, 1, 7, 17, tzinfo=UTC)
    ex = Series(
        3,
        datetime(2026, 1, 5, 18),
        BERLIN,
        "FREQ=DAILY;COUNT=3",
        exdates=frozenset({datetime(2026, 1, 6, 18)}),
    )
    assert [s.day for s in starts(ex, *year)] == [5, 7]
    assert Series(4, datetime(2026, 1, 5, 18), BERLIN, "FREQ=DAILY").last_end() is None


def test_all_day_event_covers_its_day() -> None:
    series = Series(
        1,
        datetime(2026, 6, 3),
        BERLIN,
        "FREQ=WEEKLY;INTERVAL=2",
        duration=timedelta(days=1),
        all_day=True,
    )
    noon = datetime(2026, 6, 17, 12, tzinfo=BERLIN)
    found = series.occurrences(noon, noon + timedelta(hours=1))
    assert [occ.local for occ in found] == [datetime(2026, 6, 17)]


def test_old_series_expands_without_walking_from_the_start() -> None:
    series = Series(1, datetime(1990, 1, 1, 9), BERLIN, "FREQ=DAILY")
    window = (datetime(2026, 7, 1, tzinfo=BERLIN), datetime(2026, 8, 1, tzinfo=BERLIN))
    assert len(starts(series, *window)) == 31


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;BYDAY=1MO",
        "FREQ=WEEKLY;BYMONTHDAY=3",
        "FREQ=DAILY;INTERVAL=100000000000",
        "FREQ=MONTHLY;BYSETPOS=0;BYDAY=MO",
        "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=FORTNIGHTLY",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;UNTIL=tomorrow",
        "FREQ=MONTHLY;BYMONTHDAY=40",
        "",
    ],
)
def test_bad_rules_are_refused(rule: str) -> None:
    with pytest.raises(RecurrenceError):
        parse_rule(rule, BERLIN)


def test_bysetpos_picks_from_the_whole_month() -> None:
    series = Series(1, datetime(2026, 1, 1, 9), BERLIN, "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1")
    found = starts(series, datetime(2026, 1, 1, tzinfo=BERLIN), datetime(2026, 4, 1, tzinfo=BERLIN))
    assert [(s.month, s.day) for s in found] == [(1, 1), (1, 27), (2, 24), (3, 31)]


# ------------------------------------------------------------------- property test

byday_plain = st.lists(st.sampled_from(CODES), min_size=1, max_size=3, unique=True)
byday_ordinal = st.lists(
    st.tuples(st.sampled_from([1, 2, 3, 4, -1, -2]), st.sampled_from(CODES)),
    min_size=1,
    max_size=2,
    unique=True,
)


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 4))}")
    if freq in ("DAILY", "WEEKLY") and draw(st.booleans()):
        parts.append("BYDAY=" + ",".join(draw(byday_plain)))
    if freq in ("MONTHLY", "YEARLY") and draw(st.booleans()):
        if draw(st.booleans()):
            parts.append("BYDAY=" + ",".join(f"{n}{d}" for n, d in draw(byday_ordinal)))
        else:
            parts.append("BYDAY=" + ",".join(draw(byday_plain)))
        if freq == "YEARLY":
            parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    ordinal = any(p.startswith("BYDAY=") and any(c.isdigit() for c in p) for p in parts)
    if freq in ("DAILY", "MONTHLY", "YEARLY") and not ordinal and draw(st.booleans()):
        days = draw(
            st.lists(
                st.sampled_from([1, 15, 28, 29, 30, 31, -1, -3]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        )
        parts.append("BYMONTHDAY=" + ",".join(map(str, days)))
    if freq != "YEARLY" and draw(st.booleans()):
        months = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))
        parts.append("BYMONTH=" + ",".join(map(str, months)))
    if freq == "YEARLY" and draw(st.booleans()):
        parts = [p for p in parts if not p.startswith("BYMONTH=")]  # BYDAY counts in the year
        if not any(p.startswith(("BYDAY=", "BYMONTHDAY=")) for p in parts) and draw(st.booleans()):
            parts.append(f"BYDAY={draw(st.sampled_from([20, -1, 1, 53]))}MO")
    if freq == "WEEKLY" and draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(CODES))}")
    plain = any(p.startswith("BYDAY=") for p in parts) and not ordinal
    if (freq == "DAILY" or plain) and draw(st.integers(0, 3)) == 0:
        # Positions that can exist in every period: dateutil walks to year 9999 looking
        # for a rule that never matches, so impossible rules are not drawn.
        wide = freq in ("MONTHLY", "YEARLY") and not any("BYMONTHDAY" in p for p in parts)
        choices = [1, 2, -1, -2, 3] if wide else [1, -1]
        positions = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=2))
        parts.append("BYSETPOS=" + ",".join(map(str, positions)))
    assume(_can_match(parts))
    return ";".join(parts)


def _can_match(parts: list[str]) -> bool:
    """Whether BYMONTH and BYMONTHDAY leave any day (e.g. not 31 February)."""
    values = dict(p.split("=", 1) for p in parts)
    months = [int(m) for m in values["BYMONTH"].split(",")] if "BYMONTH" in values else []
    if "BYMONTHDAY" not in values:
        return True
    lengths = [calendar.monthrange(2024, m)[1] for m in months or range(1, 13)]
    days = [int(d) for d in values["BYMONTHDAY"].split(",")]
    return any(abs(d) <= length for d in days for length in lengths)


@settings(max_examples=200, deadline=None)
@given(
    rule=rules(),
    start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)),
    offset_days=st.integers(-40, 2000),
    span_days=st.integers(1, 120),
)
def test_fast_path_matches_dateutil(
    rule: str, start: datetime, offset_days: int, span_days: int
) -> None:
    start = start.replace(second=0, microsecond=0)
    series = Series(1, start, ZoneInfo("UTC"), rule)
    lo = start + timedelta(days=offset_days)
    hi = lo + timedelta(days=span_days)
    # UNTIL stops dateutil at the window; a rule that never matches would walk to 9999.
    reference = rrulestr(rule, dtstart=start).replace(until=hi)  # type: ignore[union-attr]
    expected = {d for d in reference.between(lo, hi, inc=True) if d < hi}
    if lo <= start < hi:
        expected.add(start)
    got = [occ.local for occ in series.occurrences(lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC))]
    assert got == sorted(expected), rule


@settings(max_examples=60, deadline=None)
@given(
    rule=rules(),
    count=st.integers(1, 400),
    start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)),
    offset_days=st.integers(-40, 3000),
    span_days=st.integers(1, 400),
)
def test_count_matches_dateutil(
    rule: str, count: int, start: datetime, offset_days: int, span_days: int
) -> None:
    rule = f"{rule};COUNT={count}"
    start = start.replace(second=0, microsecond=0)
    series = Series(1, start, ZoneInfo("UTC"), rule)
    lo = start + timedelta(days=offset_days)
    hi = lo + timedelta(days=span_days)
    # dateutil walks until year 9999 for a rule that never matches; ours searches
    # COUNT_HORIZON_YEARS, so compare within that horizon.
    horizon = datetime.combine(
        start.date().replace(year=start.year + COUNT_HORIZON_YEARS), time.max
    )
    open_rule = rule.rsplit(";COUNT=", 1)[0]
    reference = rrulestr(open_rule, dtstart=start).replace(until=horizon)  # type: ignore[union-attr]
    counted = list(reference)[:count]
    complete = len(counted) == count
    expected = {d for d in counted if lo <= d < hi}
    if lo <= start < hi:
        expected.add(start)
    got = [occ.local for occ in series.occurrences(lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC))]
    assert got == sorted(expected), rule
    last = max([start, *counted])
    assert series.last_end() == (last.replace(tzinfo=UTC) if complete else None), rule


# ------------------------------------------------------------------- hostile rules


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;INTERVAL=1",
        "FREQ=HOURLY;COUNT=5",
        "FREQ=DAILY;X-EVIL=1",
        "FREQ=DAILY;BYHOUR=1,2,3",
        "FREQ=YEARLY;BYWEEKNO=20",
        "FREQ=YEARLY;BYYEARDAY=100",
    ],
)
def test_unsupported_rules_are_refused(rule: str) -> None:
    with pytest.raises(UnsupportedRule):
        Series(1, datetime(2026, 1, 1, 9), BERLIN, rule)


def test_old_series_costs_the_window_not_its_age() -> None:
    """A daily rule from year 1 and a COUNT rule far in the past: the expansion of a
    month is a few milliseconds, however far back DTSTART lies."""
    window = (datetime(2026, 7, 1, tzinfo=BERLIN), datetime(2026, 8, 1, tzinfo=BERLIN))
    old = [
        Series(1, datetime(1, 1, 1, 9), BERLIN, "FREQ=DAILY"),
        Series(2, datetime(1900, 1, 1, 9), BERLIN, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU"),
        Series(3, datetime(1990, 1, 1, 9), BERLIN, "FREQ=MONTHLY;BYDAY=-1FR;BYSETPOS=1"),
    ]
    started = thread_time()  # CPU time: a busy machine's pauses are not the expander's
    found = expand(old, *window)
    assert thread_time() - started < 0.05
    assert len([o for o in found if o.series.key == 1]) == 31


def test_huge_count_is_bounded_in_time_and_memory() -> None:
    """COUNT=10^9 neither runs for seconds nor keeps a list of starts (one datetime
    per rule is cached); its end is searched COUNT_HORIZON_YEARS ahead at most."""
    rule = "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;COUNT=1000000000"
    year = (datetime(2026, 1, 1, tzinfo=BERLIN), datetime(2027, 1, 1, tzinfo=BERLIN))

    def run(offset: int) -> Series:
        for key in range(50):  # distinct starts: no cache hits
            start = datetime(2026, 1, 1, 9) + timedelta(minutes=offset + key)
            series = Series(key, start, BERLIN, rule)
            series.last_end()
            series.occurrences(*year)
        return series

    started = thread_time()
    series = run(0)
    elapsed = thread_time() - started
    assert elapsed < 50 * 0.02, elapsed
    assert series.last_end() is None  # runs past the horizon: treated as endless
    tracemalloc.start()
    run(1000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000, peak


def test_one_series_contributes_a_bounded_number_of_occurrences() -> None:
    series = Series(1, datetime(2026, 1, 1, 9), BERLIN, "FREQ=DAILY")
    found = series.occurrences(
        datetime(2026, 1, 1, tzinfo=BERLIN), datetime(2126, 1, 1, tzinfo=BERLIN)
    )
    assert len(found) == MAX_PER_SERIES


def test_a_series_that_overflows_is_left_out_not_raised() -> None:
    good = Series(1, datetime(2026, 1, 1, 9), BERLIN, "FREQ=DAILY")
    edge = Series(2, datetime(9999, 12, 25, 9), BERLIN, "FREQ=WEEKLY;INTERVAL=2")
    found = expand(
        [edge, good], datetime(9999, 12, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    )
    assert {o.series.key for o in found} <= {1, 2}


async def test_async_expansion_yields_to_the_loop() -> None:
    """Expanding many series gives other tasks a turn every few milliseconds."""
    series = [Series(key, datetime(2020, 1, 1, 9), BERLIN, "FREQ=DAILY") for key in range(400)]
    window = (datetime(2026, 1, 1, tzinfo=BERLIN), datetime(2027, 1, 1, tzinfo=BERLIN))
    gaps: list[float] = []
    stop = False

    # Gaps in this thread's CPU time, not wall time: on a busy machine the OS may
    # pause the whole process, which is no failure to yield.
    async def ticker() -> None:
        last = thread_time()
        while not stop:
            await asyncio.sleep(0)
            now = thread_time()
            gaps.append(now - last)
            last = now

    # A full garbage collection of this many objects pauses any Python program for
    # tens of milliseconds; it is not the expander's doing, so it is kept out.
    gc.disable()
    try:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        found = await expand_async(series, *window)
        stop = True
        await task
    finally:
        gc.enable()
    assert len(found) == 400 * 365
    assert found == expand(series, *window)
    assert len(gaps) > 10
    assert max(gaps) < 0.05, max(gaps)
