"""Recurrence expansion of the calendar plugin: checked against dateutil, DST, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from dorfbot.plugin_loader import bundled_plugins_dir, load_package

plugins_dir = bundled_plugins_dir()
assert plugins_dir is not None
load_package(plugins_dir / "calendar")
from dorfbot_plugin_calendar.recurrence import (  # type: ignore[import-not-found]  # noqa: E402
    RecurrenceError,
    Series,
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


def test_exotic_rules_fall_back_to_dateutil() -> None:
    series = Series(1, datetime(2026, 1, 1, 9), BERLIN, "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1")
    assert series.rule is not None and not series.rule.fast
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
    if freq in ("DAILY", "MONTHLY", "YEARLY") and draw(st.booleans()):
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
    if freq == "WEEKLY" and draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(CODES))}")
    return ";".join(parts)


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
    assert series.rule is not None and series.rule.fast, rule
    lo = start + timedelta(days=offset_days)
    hi = lo + timedelta(days=span_days)
    expected = {d for d in rrulestr(rule, dtstart=start).between(lo, hi, inc=True) if d < hi}
    if lo <= start < hi:
        expected.add(start)
    got = [occ.local for occ in series.occurrences(lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC))]
    assert got == sorted(expected), rule
