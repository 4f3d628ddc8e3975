"""Date and time parsing (SPEC section 3, "Dates"): table-driven, German and English.

``NOW`` is Wednesday 2026-11-25 10:00 in Europe/Berlin unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from dorfbot.dates import (
    DateParseError,
    When,
    describe_rrule,
    parse_date,
    parse_time,
    parse_when,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=BERLIN)  # a Wednesday
LOCALES = Path(__file__).resolve().parents[2] / "dorfbot" / "locales"


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN)


def parse(text: str, now: datetime = NOW) -> tuple[When, str]:
    return parse_when(text, now=now, tz=BERLIN)


def error_of(text: str, now: datetime = NOW) -> DateParseError:
    with pytest.raises(DateParseError) as info:
        parse(text, now)
    return info.value


# --------------------------------------------------------------------------- one-off dates

ONE_OFF = [
    # the examples
    ("morgen 18 Uhr Feuerwehrfest", local(2026, 11, 26, 18), "Feuerwehrfest"),
    ("24.12. 18.30 Christmette", local(2026, 12, 24, 18, 30), "Christmette"),
    ("Sa 10 Uhr Flohmarkt", local(2026, 11, 28, 10), "Flohmarkt"),
    ("2026-12-24 18:00 x", local(2026, 12, 24, 18), "x"),
    # relative days
    ("heute 18 Uhr Treffen", local(2026, 11, 25, 18), "Treffen"),
    ("HEUTE 18:00 Treffen", local(2026, 11, 25, 18), "Treffen"),
    ("übermorgen 7:30 Markt", local(2026, 11, 27, 7, 30), "Markt"),
    ("uebermorgen 7:30 Markt", local(2026, 11, 27, 7, 30), "Markt"),
    ("Übermorgen 7.30 Uhr Markt", local(2026, 11, 27, 7, 30), "Markt"),
    ("today 6pm Meeting", local(2026, 11, 25, 18), "Meeting"),
    ("tomorrow 6:30pm Meeting", local(2026, 11, 26, 18, 30), "Meeting"),
    ("day after tomorrow 9am x", local(2026, 11, 27, 9), "x"),
    # weekdays: the next one; today counts while the time is ahead
    ("Mo 18 Uhr x", local(2026, 11, 30, 18), "x"),
    ("Mo. 18 Uhr x", local(2026, 11, 30, 18), "x"),
    ("Montag 18 Uhr x", local(2026, 11, 30, 18), "x"),
    ("Di 18 Uhr x", local(2026, 12, 1, 18), "x"),
    ("Mi 12:00 x", local(2026, 11, 25, 12), "x"),
    ("Mi 8 Uhr x", local(2026, 12, 2, 8), "x"),
    ("Mittwoch 10 Uhr x", local(2026, 12, 2, 10), "x"),
    ("Do 18 Uhr x", local(2026, 11, 26, 18), "x"),
    ("Fr 18 Uhr x", local(2026, 11, 27, 18), "x"),
    ("Sonnabend 10 Uhr x", local(2026, 11, 28, 10), "x"),
    ("So 10 Uhr x", local(2026, 11, 29, 10), "x"),
    ("Sonntag 10 Uhr x", local(2026, 11, 29, 10), "x"),
    ("monday 9am x", local(2026, 11, 30, 9), "x"),
    ("Tue 9:00 x", local(2026, 12, 1, 9), "x"),
    ("thurs 9:00 x", local(2026, 11, 26, 9), "x"),
    ("saturday 10am x", local(2026, 11, 28, 10), "x"),
    ("am Samstag 10 Uhr Flohmarkt", local(2026, 11, 28, 10), "Flohmarkt"),
    ("Samstag, den 28.11. ab 14 Uhr Basar", local(2026, 11, 28, 14), "Basar"),
    ("Do 24.12. 18 Uhr x", local(2026, 12, 24, 18), "x"),
    # calendar dates
    ("24.12.2026 18:00 x", local(2026, 12, 24, 18), "x"),
    ("24.12.26 18:00 x", local(2026, 12, 24, 18), "x"),
    ("1.1. 0:30 Neujahr", local(2027, 1, 1, 0, 30), "Neujahr"),
    ("15.1. 18 Uhr x", local(2027, 1, 15, 18), "x"),
    ("29.2. 10 Uhr Schaltjahr", local(2028, 2, 29, 10), "Schaltjahr"),
    ("2027-03-28 10:00 x", local(2027, 3, 28, 10), "x"),
    ("2026-12-24T18:00 Weihnachten", local(2026, 12, 24, 18), "Weihnachten"),
    ("am 24.12. um 18 Uhr x", local(2026, 12, 24, 18), "x"),
    ("24. Dezember 18 Uhr x", local(2026, 12, 24, 18), "x"),
    ("24. Dez. 2027 18 Uhr x", local(2027, 12, 24, 18), "x"),
    ("1. Mai 10 Uhr Maibaum", local(2027, 5, 1, 10), "Maibaum"),
    ("Dec 24 6pm x", local(2026, 12, 24, 18), "x"),
    ("December 24 2026 6pm x", local(2026, 12, 24, 18), "x"),
    ("24th december 6pm x", local(2026, 12, 24, 18), "x"),
    ("24/12 18:00 x", local(2026, 12, 24, 18), "x"),
    ("12/24/2026 18:00 x", local(2026, 12, 24, 18), "x"),
    # time formats
    ("morgen 18h x", local(2026, 11, 26, 18), "x"),
    ("morgen 18h30 x", local(2026, 11, 26, 18, 30), "x"),
    ("morgen 18Uhr x", local(2026, 11, 26, 18), "x"),
    ("morgen 18.30 Uhr x", local(2026, 11, 26, 18, 30), "x"),
    ("morgen 18:30 Uhr x", local(2026, 11, 26, 18, 30), "x"),
    ("morgen 6 pm x", local(2026, 11, 26, 18), "x"),
    ("morgen 6p.m. x", local(2026, 11, 26, 18), "x"),
    ("morgen 12am x", local(2026, 11, 26, 0), "x"),
    ("morgen 12pm x", local(2026, 11, 26, 12), "x"),
    ("morgen 0:00 x", local(2026, 11, 26, 0), "x"),
    ("morgen um 18 Uhr Probe", local(2026, 11, 26, 18), "Probe"),
    ("morgen ab 18 Uhr Grillen", local(2026, 11, 26, 18), "Grillen"),
    ("tomorrow at 6pm x", local(2026, 11, 26, 18), "x"),
    # daytime words
    ("heute Abend 8 Uhr Kino", local(2026, 11, 25, 20), "Kino"),
    ("morgen 8 Uhr abends Essen", local(2026, 11, 26, 20), "Essen"),
    ("morgen früh 7 Uhr Wanderung", local(2026, 11, 26, 7), "Wanderung"),
    ("Montag morgen 9 Uhr x", local(2026, 11, 30, 9), "x"),
    ("morgen 18 Uhr Abend der Begegnung", local(2026, 11, 26, 18), "Abend der Begegnung"),
    # separators and the title
    ("Mo, 18 Uhr, Treffen", local(2026, 11, 30, 18), "Treffen"),
    ("  morgen   18 Uhr   Treffen  ", local(2026, 11, 26, 18), "Treffen"),
    ("morgen 18 Uhr: Fest", local(2026, 11, 26, 18), "Fest"),
    ("morgen 18 Uhr - Fest", local(2026, 11, 26, 18), "Fest"),
    ("morgen 18 Uhr -20% auf alles", local(2026, 11, 26, 18), "-20% auf alles"),
    ("morgen 18:00 am Dorfplatz", local(2026, 11, 26, 18), "am Dorfplatz"),
    ("morgen 18 Uhr bis später", local(2026, 11, 26, 18), "bis später"),
    ("morgen 18 Uhr", local(2026, 11, 26, 18), ""),
    ("morgen 18 Uhr Fest\nzweite Zeile", local(2026, 11, 26, 18), "Fest\nzweite Zeile"),
]


@pytest.mark.parametrize(("text", "start", "title"), ONE_OFF)
def test_one_off_dates(text: str, start: datetime, title: str) -> None:
    when, rest = parse(text)
    assert when.start == start
    assert when.start.tzinfo is BERLIN
    assert when.rrule is None
    assert when.end is None
    assert rest == title


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("morgen 18-20 Uhr x", local(2026, 11, 26, 18), local(2026, 11, 26, 20)),
        ("morgen 18 bis 20 Uhr x", local(2026, 11, 26, 18), local(2026, 11, 26, 20)),
        ("morgen 18:00-20:30 x", local(2026, 11, 26, 18), local(2026, 11, 26, 20, 30)),
        ("morgen 18:00 - 20:00 x", local(2026, 11, 26, 18), local(2026, 11, 26, 20)),
        ("morgen 18 Uhr bis 20 Uhr x", local(2026, 11, 26, 18), local(2026, 11, 26, 20)),
        ("morgen von 18 bis 20 Uhr x", local(2026, 11, 26, 18), local(2026, 11, 26, 20)),
        ("morgen 20-2 Uhr Party", local(2026, 11, 26, 20), local(2026, 11, 27, 2)),
        ("morgen 10am-2pm x", local(2026, 11, 26, 10), local(2026, 11, 26, 14)),
        ("morgen 10-11am x", local(2026, 11, 26, 10), local(2026, 11, 26, 11)),
        ("morgen 6-9pm x", local(2026, 11, 26, 18), local(2026, 11, 26, 21)),
        ("tomorrow 6pm to 9pm x", local(2026, 11, 26, 18), local(2026, 11, 26, 21)),
        ("heute abend 7-9 Uhr x", local(2026, 11, 25, 19), local(2026, 11, 25, 21)),
        (
            "27.12. 10 Uhr bis 28.12. 16 Uhr Ausstellung",
            local(2026, 12, 27, 10),
            local(2026, 12, 28, 16),
        ),
    ],
)
def test_inline_end_times(text: str, start: datetime, end: datetime) -> None:
    when, rest = parse(text)
    assert (when.start, when.end) == (start, end)
    assert rest in ("x", "Party", "Ausstellung")
    assert when.duration == end.replace(tzinfo=None) - start.replace(tzinfo=None)


def test_no_match_for_title_is_consumed_as_end() -> None:
    # "- 2" is not an end: a dash needs an explicit time after it
    when, rest = parse("morgen 18 Uhr - 2 Kinder gesucht")
    assert when.end is None
    assert rest == "2 Kinder gesucht"


# --------------------------------------------------------------------------- recurrences

RECURRING = [
    # the examples
    ("jeden 1. Montag 19:30 Gemeinderat", local(2026, 12, 7, 19, 30), "FREQ=MONTHLY;BYDAY=+1MO"),
    (
        "wöchentlich ab 2.12. bis 31.3.2027 10:00 Yoga",
        local(2026, 12, 2, 10),
        # 31.3.2027 23:59:59 is summer time (+02:00) in Berlin
        "FREQ=WEEKLY;BYDAY=WE;UNTIL=20270331T215959Z",
    ),
    ("every monday 9am Market", local(2026, 11, 30, 9), "FREQ=WEEKLY;BYDAY=MO"),
    # daily
    ("täglich 7 Uhr Glocken", local(2026, 11, 26, 7), "FREQ=DAILY"),
    ("taeglich 12 Uhr Glocken", local(2026, 11, 25, 12), "FREQ=DAILY"),
    ("Täglich 12 Uhr Glocken", local(2026, 11, 25, 12), "FREQ=DAILY"),
    ("daily 8:00 Glocken", local(2026, 11, 26, 8), "FREQ=DAILY"),
    ("every day 8:00 Glocken", local(2026, 11, 26, 8), "FREQ=DAILY"),
    ("jeden Tag 8 Uhr Glocken", local(2026, 11, 26, 8), "FREQ=DAILY"),
    ("täglich ab 1.12. 8 Uhr Glocken", local(2026, 12, 1, 8), "FREQ=DAILY"),
    ("alle 3 Tage 8 Uhr Glocken", local(2026, 11, 26, 8), "FREQ=DAILY;INTERVAL=3"),
    ("every 3 days 8:00 Glocken", local(2026, 11, 26, 8), "FREQ=DAILY;INTERVAL=3"),
    ("jeden zweiten Tag 8 Uhr Glocken", local(2026, 11, 26, 8), "FREQ=DAILY;INTERVAL=2"),
    # weekly on named days
    ("jeden Montag 19 Uhr Chor", local(2026, 11, 30, 19), "FREQ=WEEKLY;BYDAY=MO"),
    ("jeden Mo 19 Uhr Chor", local(2026, 11, 30, 19), "FREQ=WEEKLY;BYDAY=MO"),
    ("montags 19 Uhr Chor", local(2026, 11, 30, 19), "FREQ=WEEKLY;BYDAY=MO"),
    ("jeden Mittwoch 12 Uhr Chor", local(2026, 11, 25, 12), "FREQ=WEEKLY;BYDAY=WE"),
    ("jeden Mittwoch 9 Uhr Chor", local(2026, 12, 2, 9), "FREQ=WEEKLY;BYDAY=WE"),
    ("jeden Sonntag 10 Uhr Gottesdienst", local(2026, 11, 29, 10), "FREQ=WEEKLY;BYDAY=SU"),
    ("every sunday 10am Chor", local(2026, 11, 29, 10), "FREQ=WEEKLY;BYDAY=SU"),
    ("sundays 10am Chor", local(2026, 11, 29, 10), "FREQ=WEEKLY;BYDAY=SU"),
    ("jeden Mo und Do 18 Uhr Chor", local(2026, 11, 26, 18), "FREQ=WEEKLY;BYDAY=MO,TH"),
    ("jeden Mo, Do 18 Uhr Chor", local(2026, 11, 26, 18), "FREQ=WEEKLY;BYDAY=MO,TH"),
    ("montags und donnerstags 18 Uhr Chor", local(2026, 11, 26, 18), "FREQ=WEEKLY;BYDAY=MO,TH"),
    ("every mon & thu 6pm Chor", local(2026, 11, 26, 18), "FREQ=WEEKLY;BYDAY=MO,TH"),
    ("werktags 8 Uhr Chor", local(2026, 11, 26, 8), "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
    ("every weekday 8:00 Chor", local(2026, 11, 26, 8), "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
    ("jeden Montag ab 7.12. 19 Uhr Chor", local(2026, 12, 7, 19), "FREQ=WEEKLY;BYDAY=MO"),
    ("jeden Montag ab 1.1.2026 19 Uhr Chor", local(2026, 11, 30, 19), "FREQ=WEEKLY;BYDAY=MO"),
    ("jeden Montag um 19 Uhr Chor", local(2026, 11, 30, 19), "FREQ=WEEKLY;BYDAY=MO"),
    ("jeden Montag ab 19 Uhr Chor", local(2026, 11, 30, 19), "FREQ=WEEKLY;BYDAY=MO"),
    (
        "jeden Montag bis 31.3. 19 Uhr Chor",
        local(2026, 11, 30, 19),
        "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270331T215959Z",
    ),
    (
        "jeden Montag 19 Uhr bis 1.2.2027 Chor",
        local(2026, 11, 30, 19),
        "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270201T225959Z",
    ),
    (
        "every monday until 2027-02-01 7pm Chor",
        local(2026, 11, 30, 19),
        "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270201T225959Z",
    ),
    # weekly with a start date
    ("wöchentlich ab 2.12. 10 Uhr Yoga", local(2026, 12, 2, 10), "FREQ=WEEKLY;BYDAY=WE"),
    ("woechentlich ab 2.12. 10 Uhr Yoga", local(2026, 12, 2, 10), "FREQ=WEEKLY;BYDAY=WE"),
    ("weekly from 2026-12-02 10:00 Yoga", local(2026, 12, 2, 10), "FREQ=WEEKLY;BYDAY=WE"),
    ("wöchentlich am Freitag 10 Uhr Yoga", local(2026, 11, 27, 10), "FREQ=WEEKLY;BYDAY=FR"),
    ("jede Woche am Sonntag 10 Uhr Yoga", local(2026, 11, 29, 10), "FREQ=WEEKLY;BYDAY=SU"),
    # every other week
    ("every other monday 9am Yoga", local(2026, 11, 30, 9), "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"),
    (
        "alle 2 Wochen ab 2.12. 10 Uhr Yoga",
        local(2026, 12, 2, 10),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
    ),
    (
        "alle zwei Wochen am Montag 10 Uhr Yoga",
        local(2026, 11, 30, 10),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
    ),
    (
        "alle 14 Tage montags 10 Uhr Yoga",
        local(2026, 11, 30, 10),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
    ),
    ("14-tägig ab 4.12. 10 Uhr Yoga", local(2026, 12, 4, 10), "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
    (
        # the series started on Thursday 1 January; its phase is kept: 3 Dec, not 26 Nov
        "alle 2 Wochen ab 1.1.2026 19 Uhr Yoga",
        local(2026, 12, 3, 19),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH",
    ),
    # monthly
    ("jeden ersten Montag 19:30 Rat", local(2026, 12, 7, 19, 30), "FREQ=MONTHLY;BYDAY=+1MO"),
    ("every first monday 7:30pm Rat", local(2026, 12, 7, 19, 30), "FREQ=MONTHLY;BYDAY=+1MO"),
    (
        "every first monday of the month 7:30pm Rat",
        local(2026, 12, 7, 19, 30),
        "FREQ=MONTHLY;BYDAY=+1MO",
    ),
    ("jeden 1. Montag im Monat 19:30 Rat", local(2026, 12, 7, 19, 30), "FREQ=MONTHLY;BYDAY=+1MO"),
    ("jeden 2. Montag im Monat 19 Uhr Rat", local(2026, 12, 14, 19), "FREQ=MONTHLY;BYDAY=+2MO"),
    ("jeden letzten Freitag 20 Uhr Stammtisch", local(2026, 11, 27, 20), "FREQ=MONTHLY;BYDAY=-1FR"),
    ("every last friday 8pm Stammtisch", local(2026, 11, 27, 20), "FREQ=MONTHLY;BYDAY=-1FR"),
    ("jeden vorletzten Freitag 20 Uhr Rat", local(2026, 12, 18, 20), "FREQ=MONTHLY;BYDAY=-2FR"),
    (
        "jeden 1. und 3. Mittwoch 15 Uhr Seniorenkaffee",
        local(2026, 12, 2, 15),
        "FREQ=MONTHLY;BYDAY=+1WE,+3WE",
    ),
    ("monatlich ab 15.12. 18 Uhr Rat", local(2026, 12, 15, 18), "FREQ=MONTHLY;BYMONTHDAY=15"),
    ("monthly from 2026-12-15 6pm Rat", local(2026, 12, 15, 18), "FREQ=MONTHLY;BYMONTHDAY=15"),
    ("monatlich am 15. 18 Uhr Rat", local(2026, 12, 15, 18), "FREQ=MONTHLY;BYMONTHDAY=15"),
    ("monatlich am letzten Tag 18 Uhr Rat", local(2026, 11, 30, 18), "FREQ=MONTHLY;BYMONTHDAY=-1"),
    ("monatlich am 1. Montag 18 Uhr Rat", local(2026, 12, 7, 18), "FREQ=MONTHLY;BYDAY=+1MO"),
    (
        "alle 3 Monate ab 15.1.2026 19 Uhr Rat",
        local(2027, 1, 15, 19),
        "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15",
    ),
    # yearly
    (
        "jährlich ab 24.12. 18 Uhr Christmette",
        local(2026, 12, 24, 18),
        "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
    ),
    (
        "jaehrlich am 24.12. 18 Uhr Christmette",
        local(2026, 12, 24, 18),
        "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
    ),
    ("yearly from 1 May 10am Maibaum", local(2027, 5, 1, 10), "FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=1"),
    (
        "annually from may 1 10am Maibaum",
        local(2027, 5, 1, 10),
        "FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=1",
    ),
    (
        "alle 2 Jahre ab 24.12.2020 18 Uhr Christmette",
        local(2026, 12, 24, 18),
        "FREQ=YEARLY;INTERVAL=2;BYMONTH=12;BYMONTHDAY=24",
    ),
]


@pytest.mark.parametrize(("text", "start", "rule"), RECURRING)
def test_recurrences(text: str, start: datetime, rule: str) -> None:
    when, rest = parse(text)
    assert when.start == start
    assert when.rrule == rule
    assert rest in ("Gemeinderat", "Yoga", "Market", "Glocken", "Chor", "Gottesdienst") or rest in (
        "Rat",
        "Stammtisch",
        "Seniorenkaffee",
        "Christmette",
        "Maibaum",
    )
    # the start is the first occurrence after now
    assert when.next_after(NOW) == start
    assert when.occurrences(NOW, start + timedelta(seconds=1)) == [start]


def test_recurrence_with_end_time() -> None:
    when, rest = parse("jeden Mo und Do 18-20 Uhr Training")
    assert (when.start, when.end, rest) == (
        local(2026, 11, 26, 18),
        local(2026, 11, 26, 20),
        "Training",
    )
    starts = when.occurrences(local(2026, 11, 30, 0), local(2026, 12, 4, 0))
    assert starts == [local(2026, 11, 30, 18), local(2026, 12, 3, 18)]
    assert [when.end_for(s) for s in starts] == [local(2026, 11, 30, 20), local(2026, 12, 3, 20)]


# --------------------------------------------------------------------------- DST

LAST_SUNDAY_MARCH_2027 = date(2027, 3, 28)
LAST_SUNDAY_OCTOBER_2027 = date(2027, 10, 31)


@pytest.mark.parametrize(
    ("now", "switch", "before_offset", "after_offset"),
    [
        (NOW, LAST_SUNDAY_MARCH_2027, 1, 2),
        (NOW, LAST_SUNDAY_OCTOBER_2027, 2, 1),
        (local(2027, 3, 10, 12), LAST_SUNDAY_MARCH_2027, 1, 2),
        (local(2027, 10, 10, 12), LAST_SUNDAY_OCTOBER_2027, 2, 1),
        (local(2026, 10, 7, 12), date(2026, 10, 25), 2, 1),
    ],
    ids=["march-2027", "october-2027", "start-near-march", "start-near-october", "october-2026"],
)
def test_weekly_sunday_keeps_ten_o_clock_across_dst(
    now: datetime, switch: date, before_offset: int, after_offset: int
) -> None:
    when, _ = parse("jeden Sonntag 10 Uhr Gottesdienst", now)
    assert when.start < datetime.combine(switch - timedelta(days=7), time(), BERLIN)
    window = when.occurrences(
        datetime.combine(switch - timedelta(days=14), time(), BERLIN),
        datetime.combine(switch + timedelta(days=15), time(), BERLIN),
    )
    assert [o.date() for o in window] == [switch + timedelta(days=7 * k) for k in range(-2, 3)]
    assert all((o.hour, o.minute) == (10, 0) for o in window)
    offsets = [o.utcoffset() for o in window]
    assert offsets[:2] == [timedelta(hours=before_offset)] * 2
    assert offsets[2:] == [timedelta(hours=after_offset)] * 3
    # and therefore different UTC hours on each side of the switch
    assert window[1].astimezone(UTC).hour != window[2].astimezone(UTC).hour


def test_dst_week_next_after_and_one_off_on_switch_day() -> None:
    when, _ = parse("jeden Sonntag 10 Uhr Gottesdienst")
    assert when.next_after(local(2027, 3, 27, 12)) == local(2027, 3, 28, 10)
    assert when.next_after(local(2027, 3, 28, 10)) == local(2027, 4, 4, 10)
    one_off, _ = parse("28.3.2027 10 Uhr x")
    assert one_off.start.utcoffset() == timedelta(hours=2)
    assert one_off.start.astimezone(UTC).hour == 8


def test_nonexistent_and_repeated_local_times() -> None:
    when, _ = parse("jeden Sonntag 2:30 Uhr Nachtwanderung")
    spring = when.occurrences(local(2027, 3, 21, 0), local(2027, 4, 5, 0))
    # 02:30 does not exist on 28 March: that one is an hour later, the others stay 02:30
    assert [(o.day, o.hour, o.minute) for o in spring] == [(21, 2, 30), (28, 3, 30), (4, 2, 30)]
    autumn = when.occurrences(local(2027, 10, 24, 0), local(2027, 11, 8, 0))
    assert [(o.day, o.hour) for o in autumn] == [(24, 2), (31, 2), (7, 2)]
    # 02:30 happens twice on 31 October: the first (summer time) one is meant
    assert autumn[1].utcoffset() == timedelta(hours=2)
    assert autumn[1].fold == 0


# --------------------------------------------------------------------------- expansion


def test_first_monday_expands_to_first_mondays() -> None:
    when, _ = parse("jeden 1. Montag 19:30 Gemeinderat")
    starts = when.occurrences(NOW, local(2027, 7, 1, 0))
    assert [s.date() for s in starts] == [
        date(2026, 12, 7),
        date(2027, 1, 4),
        date(2027, 2, 1),
        date(2027, 3, 1),
        date(2027, 4, 5),
        date(2027, 5, 3),
        date(2027, 6, 7),
    ]
    assert all(s.weekday() == 0 and s.day <= 7 and (s.hour, s.minute) == (19, 30) for s in starts)


def test_last_friday_expands_to_last_fridays() -> None:
    when, _ = parse("jeden letzten Freitag 20 Uhr Stammtisch")
    starts = when.occurrences(NOW, local(2027, 3, 1, 0))
    assert [s.date() for s in starts] == [
        date(2026, 11, 27),
        date(2026, 12, 25),
        date(2027, 1, 29),
        date(2027, 2, 26),
    ]


def test_until_bounds_occurrences() -> None:
    when, _ = parse("wöchentlich ab 2.12. bis 31.3.2027 10:00 Yoga")
    starts = when.occurrences(NOW, local(2028, 1, 1, 0))
    assert starts[0] == local(2026, 12, 2, 10)
    assert starts[-1] == local(2027, 3, 31, 10)  # the UNTIL day itself is included
    assert len(starts) == 18
    assert all(s.weekday() == 2 for s in starts)
    assert when.next_after(local(2027, 3, 31, 10)) is None


def test_occurrences_window_is_half_open_and_limited() -> None:
    when, _ = parse("täglich 7 Uhr Glocken")
    starts = when.occurrences(local(2026, 12, 1, 7), local(2026, 12, 3, 7))
    assert starts == [local(2026, 12, 1, 7), local(2026, 12, 2, 7)]
    assert len(when.occurrences(NOW, local(2030, 1, 1, 0), limit=5)) == 5
    assert when.occurrences(local(2026, 12, 3, 0), local(2026, 12, 1, 0)) == []


def test_one_off_occurrences_and_next_after() -> None:
    when, _ = parse("morgen 18 Uhr x")
    assert when.occurrences(NOW, local(2026, 12, 1, 0)) == [local(2026, 11, 26, 18)]
    assert when.occurrences(local(2026, 11, 27, 0), local(2026, 12, 1, 0)) == []
    assert when.next_after(NOW) == local(2026, 11, 26, 18)
    assert when.next_after(local(2026, 11, 26, 18)) is None


def test_occurrences_accept_other_time_zones_for_bounds() -> None:
    when, _ = parse("jeden Sonntag 10 Uhr x")
    utc_bounds = when.occurrences(datetime(2026, 11, 29, 9, 0, tzinfo=UTC), NOW + timedelta(days=8))
    assert utc_bounds == [local(2026, 11, 29, 10)]
    assert when.occurrences(datetime(2026, 11, 29, 9, 1, tzinfo=UTC), NOW + timedelta(days=8)) == []


def test_when_from_storage_and_imported_rules() -> None:
    # e.g. read back from the database in UTC, with the village zone beside it
    stored = When(
        datetime(2026, 12, 7, 18, 30, tzinfo=UTC), "FREQ=MONTHLY;BYDAY=+1MO", tz="Europe/Berlin"
    )
    assert stored.start == local(2026, 12, 7, 19, 30)
    assert stored.occurrences(NOW, local(2027, 2, 2, 0))[-1] == local(2027, 2, 1, 19, 30)
    # an UNTIL given as a date and an RRULE: prefix, as in imported calendars
    imported = When(local(2026, 12, 1, 7), "RRULE:FREQ=WEEKLY;UNTIL=20261215")
    assert imported.rrule == "FREQ=WEEKLY;UNTIL=20261215"
    assert [o.day for o in imported.occurrences(NOW, local(2027, 1, 1, 0))] == [1, 8, 15]
    # a DTSTART not matching its rule still counts as the first occurrence (RFC 5545)
    odd = When(local(2026, 12, 2, 7), "FREQ=WEEKLY;BYDAY=MO;COUNT=2")
    assert [o.day for o in odd.occurrences(NOW, local(2027, 1, 1, 0))] == [2, 7, 14]
    with pytest.raises(ValueError):
        When(datetime(2026, 12, 1, 7), None)  # naive
    with pytest.raises(ValueError):
        When(local(2026, 12, 1, 7), "FREQ=SOMETIMES")


def test_with_end_time_for_the_bis_option() -> None:
    when, _ = parse("morgen 18 Uhr Fest")
    assert when.with_end_time(time(20)).end == local(2026, 11, 26, 20)
    assert when.with_end_time(time(1)).end == local(2026, 11, 27, 1)  # past midnight
    with pytest.raises(DateParseError) as info:
        when.with_end_time(time(18))
    assert info.value.key == "dates.error.end_before_start"
    weekly, _ = parse("jeden Montag 19 Uhr Chor")
    ended = weekly.with_end_time(parse_time("21 Uhr"))
    assert ended.rrule == weekly.rrule and ended.duration == timedelta(hours=2)


# --------------------------------------------------------------------------- errors

ERRORS = [
    ("heute 8 Uhr Frühstück", "dates.error.past", {"date": "25.11.2026", "time": "08:00"}),
    ("heute 10 Uhr x", "dates.error.past", {"time": "10:00"}),
    ("24.12.2025 18 Uhr x", "dates.error.past", {"date": "24.12.2025"}),
    ("2026-11-01 18:00 x", "dates.error.past", {"iso": "2026-11-01"}),
    ("24.11. 18 Uhr x", "dates.error.past_no_year", {"token": "24.11.", "date": "24.11.2027"}),
    ("31.02. 18 Uhr x", "dates.error.invalid_date", {"token": "31.02."}),
    ("31.4.2027 18 Uhr x", "dates.error.invalid_date", {"token": "31.4.2027"}),
    ("29.02.2027 10 Uhr x", "dates.error.invalid_date", {"token": "29.02.2027"}),
    ("32.1. 18 Uhr x", "dates.error.invalid_date", {"token": "32.1."}),
    ("1.13. 18 Uhr x", "dates.error.invalid_date", {"token": "1.13."}),
    ("2026-13-01 18:00 x", "dates.error.invalid_date", {"token": "2026-13-01"}),
    ("24.12.3000 18 Uhr x", "dates.error.invalid_date", {"token": "24.12.3000"}),
    ("morgen Feuerwehrfest", "dates.error.missing_time", {"token": "Feuerwehrfest"}),
    ("morgen", "dates.error.missing_time", {"token": ""}),
    ("jeden Montag Chor", "dates.error.missing_time", {"token": "Chor"}),
    ("morgen 18 Feuerwehrfest", "dates.error.ambiguous_time", {"token": "18"}),
    ("morgen um 18 Feuerwehrfest", "dates.error.ambiguous_time", {"token": "18"}),
    ("morgen 18-20 Feuerwehrfest", "dates.error.ambiguous_time", {"token": "18-20"}),
    ("morgen 12 am Rathaus", "dates.error.ambiguous_time", {"token": "12"}),
    ("morgen 25:00 x", "dates.error.invalid_time", {"token": "25:00"}),
    ("morgen 18.75 x", "dates.error.invalid_time", {"token": "18.75"}),
    ("morgen 13pm x", "dates.error.invalid_time", {"token": "13pm"}),
    ("Feuerwehrfest morgen 18 Uhr", "dates.error.missing_date", {"token": "Feuerwehrfest"}),
    ("18 Uhr Feuerwehrfest", "dates.error.missing_date", {"token": "18"}),
    ("24.12 18 Uhr x", "dates.error.missing_date", {"token": "24.12"}),
    ("", "dates.error.missing_date", {"token": ""}),
    ("   ", "dates.error.missing_date", {"token": ""}),
    ("12/11 18 Uhr x", "dates.error.ambiguous", {"token": "12/11", "a": "12.11.", "b": "11.12."}),
    (
        "Sa 24.12. 18 Uhr x",
        "dates.error.weekday_mismatch",
        {"token": "Sa", "date": "24.12.2026", "weekday_de": "Donnerstag", "weekday_en": "Thursday"},
    ),
    (
        "jeden 2. Montag 19 Uhr Rat",
        "dates.error.ambiguous_ordinal",
        {"token": "jeden 2. Montag", "weekday_de": "Montag"},
    ),
    ("every second monday 7pm x", "dates.error.ambiguous_ordinal", {"weekday_en": "Monday"}),
    ("jeden 7. Montag 19 Uhr x", "dates.error.invalid_date", {"token": "jeden 7. Montag"}),
    ("wöchentlich 18 Uhr Yoga", "dates.error.missing_start", {"token": "wöchentlich"}),
    ("monatlich 18 Uhr Rat", "dates.error.missing_start", {"token": "monatlich"}),
    ("jährlich 18 Uhr Fest", "dates.error.missing_start", {"token": "jährlich"}),
    ("alle 2 Wochen 18 Uhr Yoga", "dates.error.missing_start", {"token": "alle 2 Wochen"}),
    (
        "jeden Montag bis 1.11.2026 19 Uhr x",
        "dates.error.until_before_start",
        {"date": "01.11.2026"},
    ),
    ("jeden Montag bis 20.11. 19 Uhr x", "dates.error.past_no_year", {"date": "20.11.2027"}),
    ("wöchentlich ab 9.12. bis 3.12.2026 10 Uhr x", "dates.error.until_before_start", {}),
    ("morgen 10:00 - 10:00 x", "dates.error.end_before_start", {"time": "10:00"}),
    ("jeden Fest 19 Uhr", "dates.error.missing_date", {"token": "jeden"}),
]


@pytest.mark.parametrize(("text", "key", "params"), ERRORS)
def test_errors(text: str, key: str, params: dict[str, str]) -> None:
    error = error_of(text)
    assert error.key == key
    assert params.items() <= error.params.items()
    assert isinstance(error, ValueError)


def test_error_tokens_are_shown_safely() -> None:
    error = error_of("31.02.\x00 18 Uhr")
    assert error.key == "dates.error.missing_date"
    assert error.params["token"] == "31.02.?"
    long_word = "x" * 5000
    error = error_of(f"morgen {long_word}")
    assert error.key == "dates.error.missing_time"
    assert len(error.params["token"]) <= 31


def test_every_error_key_has_catalog_entries_in_both_languages() -> None:
    used: set[str] = {key for _, key, _ in ERRORS} | {
        "dates.error.no_occurrence",
        "dates.error.past_date",
    }
    for lang in ("de", "en"):
        catalog = yaml.safe_load((LOCALES / lang / "dates.yaml").read_text(encoding="utf-8"))
        assert used <= set(catalog), lang
        assert all(isinstance(v, str) and v.strip() for v in catalog.values())
    de = yaml.safe_load((LOCALES / "de" / "dates.yaml").read_text(encoding="utf-8"))
    en = yaml.safe_load((LOCALES / "en" / "dates.yaml").read_text(encoding="utf-8"))
    assert set(de) == set(en)
    assert (
        "Beispiel: <code>!termin morgen 18 Uhr Laternenumzug</code>"
        in de["dates.error.missing_time"]
    )


def test_catalog_placeholders_are_all_provided() -> None:
    import string

    de = yaml.safe_load((LOCALES / "de" / "dates.yaml").read_text(encoding="utf-8"))
    en = yaml.safe_load((LOCALES / "en" / "dates.yaml").read_text(encoding="utf-8"))
    for text, key, _ in ERRORS:
        error = error_of(text)
        for catalog in (de, en):
            names = {name for _, name, _, _ in string.Formatter().parse(catalog[key]) if name}
            assert names <= set(error.params), (key, names - set(error.params))


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_when("morgen 18 Uhr", now=datetime(2026, 11, 25, 10), tz=BERLIN)


def test_other_time_zone_and_now_given_in_utc() -> None:
    new_york = ZoneInfo("America/New_York")
    when, _ = parse_when(
        "tomorrow 6pm x", now=datetime(2026, 11, 25, 3, 0, tzinfo=UTC), tz=new_york
    )
    # 03:00 UTC is still 24 November in New York
    assert when.start == datetime(2026, 11, 25, 18, 0, tzinfo=new_york)
    assert when.tz == "America/New_York"


# ------------------------------------------------------------------ parse_time / parse_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20:00", time(20)),
        ("20 Uhr", time(20)),
        ("20Uhr", time(20)),
        ("20.30", time(20, 30)),
        ("20.30 Uhr", time(20, 30)),
        ("20h", time(20)),
        ("20h15", time(20, 15)),
        ("20", time(20)),
        ("8pm", time(20)),
        ("8:30 pm", time(20, 30)),
        ("8 Uhr abends", time(20)),
        ("um 20 Uhr", time(20)),
        (" 0:00 ", time(0)),
    ],
)
def test_parse_time(text: str, expected: time) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "dates.error.missing_time"),
        ("  ", "dates.error.missing_time"),
        ("24:00", "dates.error.invalid_time"),
        ("20:61", "dates.error.invalid_time"),
        ("abends", "dates.error.invalid_time"),
        ("20 Uhr Fest", "dates.error.invalid_time"),
        ("20-22", "dates.error.invalid_time"),
        ("1" * 1000, "dates.error.invalid_time"),
    ],
)
def test_parse_time_errors(text: str, key: str) -> None:
    with pytest.raises(DateParseError) as info:
        parse_time(text)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("heute", date(2026, 11, 25)),
        ("Mi", date(2026, 11, 25)),  # without a time, today's weekday is today
        ("Sa", date(2026, 11, 28)),
        ("24.12.", date(2026, 12, 24)),
        ("15.1.", date(2027, 1, 15)),
        ("2027-03-28", date(2027, 3, 28)),
        ("Sonntag, 28.3.2027", date(2027, 3, 28)),
    ],
)
def test_parse_date(text: str, expected: date) -> None:
    assert parse_date(text, now=NOW, tz=BERLIN) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("gestern", "dates.error.invalid_date"),
        ("24.12. 18 Uhr", "dates.error.invalid_date"),
        ("1.11.2026", "dates.error.past_date"),
        ("20.11.", "dates.error.past_no_year"),
        ("30.2.", "dates.error.invalid_date"),
        ("", "dates.error.missing_date"),
    ],
)
def test_parse_date_errors(text: str, key: str) -> None:
    with pytest.raises(DateParseError) as info:
        parse_date(text, now=NOW, tz=BERLIN)
    assert info.value.key == key


# --------------------------------------------------------------------------- describe_rrule


@pytest.mark.parametrize(
    ("rule", "de", "en"),
    [
        ("FREQ=DAILY", "täglich", "daily"),
        ("FREQ=DAILY;INTERVAL=3", "alle 3 Tage", "every 3 days"),
        ("FREQ=WEEKLY;BYDAY=MO", "jeden Montag", "every Monday"),
        ("FREQ=WEEKLY;BYDAY=MO,TH", "jeden Montag und Donnerstag", "every Monday and Thursday"),
        (
            "FREQ=WEEKLY;BYDAY=MO,WE,FR",
            "jeden Montag, Mittwoch und Freitag",
            "every Monday, Wednesday and Friday",
        ),
        ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "werktags", "on weekdays"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "alle 2 Wochen am Montag", "every other Monday"),
        ("FREQ=WEEKLY", "wöchentlich", "weekly"),
        ("FREQ=MONTHLY;BYDAY=+1MO", "jeden 1. Montag im Monat", "every first Monday of the month"),
        ("FREQ=MONTHLY;BYDAY=1MO", "jeden 1. Montag im Monat", "every first Monday of the month"),
        (
            "FREQ=MONTHLY;BYDAY=-1FR",
            "jeden letzten Freitag im Monat",
            "every last Friday of the month",
        ),
        (
            "FREQ=MONTHLY;BYDAY=+1WE,+3WE",
            "jeden 1. und 3. Mittwoch im Monat",
            "every first and third Wednesday of the month",
        ),
        ("FREQ=MONTHLY;BYMONTHDAY=15", "monatlich am 15.", "monthly on the 15th"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", "monatlich am letzten Tag", "monthly on the last day"),
        ("FREQ=MONTHLY", "monatlich", "monthly"),
        (
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
            "jährlich am 24. Dezember",
            "every year on December 24",
        ),
        (
            "FREQ=WEEKLY;BYDAY=WE;UNTIL=20270331T215959Z",
            "jeden Mittwoch bis 31.03.2027",
            "every Wednesday until 31 March 2027",
        ),
        ("FREQ=WEEKLY;BYDAY=SU;COUNT=4", "jeden Sonntag (4-mal)", "every Sunday (4 times)"),
        ("FREQ=HOURLY", "wiederkehrend", "recurring"),
        ("garbage;;==", "wiederkehrend", "recurring"),
        ("FREQ=WEEKLY;BYDAY=XX", "wiederkehrend", "recurring"),
    ],
)
def test_describe_rrule(rule: str, de: str, en: str) -> None:
    assert describe_rrule(rule, "de") == de
    assert describe_rrule(rule, "en") == en
    assert describe_rrule(rule, "fr") == de  # unknown languages fall back to German


def test_describe_uses_start_for_implicit_parts() -> None:
    start = local(2026, 12, 2, 10)  # a Wednesday
    assert describe_rrule("FREQ=WEEKLY", "de", start=start) == "jeden Mittwoch"
    assert describe_rrule("FREQ=MONTHLY", "en", start=start) == "monthly on the 2nd"
    assert describe_rrule("FREQ=YEARLY", "de", start=start) == "jährlich am 2. Dezember"
    when, _ = parse("wöchentlich ab 2.12. bis 31.3.2027 10:00 Yoga")
    assert when.describe("de") == "jeden Mittwoch bis 31.03.2027"
    assert when.describe("en") == "every Wednesday until 31 March 2027"
    one_off, _ = parse("morgen 18 Uhr x")
    assert one_off.describe("de") == ""
