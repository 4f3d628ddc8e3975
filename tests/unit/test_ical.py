"""The calendar plugin's iCalendar feed and import, as pure functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dorfbot.plugin_loader import bundled_plugin

bundled_plugin("calendar")
from dorfbot_plugin_calendar.ical import (  # type: ignore[import-not-found]  # noqa: E402
    MAX_TITLE,
    CalendarEvent,
    CalendarFormatError,
    fold,
    parse_calendar,
    render_feed,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)

CHOIR = CalendarEvent(
    uid="dorfbot-dorf-7-1@dorf.test",
    title="Chorprobe; Sopran, Alt\\Tenor",
    start=datetime(2026, 3, 2, 19, 30),
    tz="Europe/Berlin",
    end=datetime(2026, 3, 2, 21, 0),
    rrule="FREQ=WEEKLY;BYDAY=MO",
    exdates=(datetime(2026, 4, 6, 19, 30),),
    description="Bitte Noten mitbringen.\nDanach gemütliches Beisammensein.",
    location="Gemeindehaus, Kirchstraße 1",
    modified=NOW,
)
WASTE = CalendarEvent(
    uid="abfall-2026-03-05@entsorger.example",
    title="Restmüll",
    start=datetime(2026, 3, 5),
    tz="Europe/Berlin",
    end=datetime(2026, 3, 6),
    all_day=True,
    modified=NOW,
)
ONLINE = CalendarEvent(
    uid="utc-1@example.org",
    title="Online-Sprechstunde",
    start=datetime(2026, 3, 10, 17),
    tz="UTC",
    modified=NOW,
)


def feed(*events: CalendarEvent) -> str:
    return render_feed(events, name="Testdorf, Nord", tz="Europe/Berlin", stamp=NOW)


def parsed_events(text: str) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(text)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def test_feed_parses_back_to_the_same_times_and_rules() -> None:
    text = feed(CHOIR, WASTE, ONLINE)
    events = parsed_events(text)
    choir = events[CHOIR.uid]
    assert choir.decoded("DTSTART") == datetime(2026, 3, 2, 19, 30, tzinfo=BERLIN)
    assert choir.decoded("DTEND") == datetime(2026, 3, 2, 21, 0, tzinfo=BERLIN)
    assert choir["RRULE"] == {"FREQ": ["WEEKLY"], "BYDAY": ["MO"]}
    assert choir["EXDATE"].dts[0].dt == datetime(2026, 4, 6, 19, 30, tzinfo=BERLIN)
    assert str(choir["SUMMARY"]) == CHOIR.title
    assert str(choir["DESCRIPTION"]) == CHOIR.description
    assert str(choir["LOCATION"]) == CHOIR.location
    waste = events[WASTE.uid]
    assert waste.decoded("DTSTART") == date(2026, 3, 5)
    assert waste.decoded("DTEND") == date(2026, 3, 6)
    assert events[ONLINE.uid].decoded("DTSTART") == datetime(2026, 3, 10, 17, tzinfo=UTC)
    calendar = icalendar.Calendar.from_ical(text)
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert "\r\nX-WR-CALNAME:Testdorf\\, Nord\r\n" in text  # TEXT, escaped like SUMMARY


def test_feed_is_crlf_and_folded_at_75_octets() -> None:
    long = CalendarEvent(
        uid="x@y",
        title="Äpfel " * 40,
        start=datetime(2026, 3, 2, 10),
        tz="Europe/Berlin",
        modified=NOW,
    )
    text = feed(long)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert max(len(line.encode()) for line in text.split("\r\n")) <= 75
    assert str(parsed_events(text)["x@y"]["SUMMARY"]) == long.title


def test_recurring_event_keeps_wall_clock_time_in_other_clients() -> None:
    """What a phone calendar computes from the feed: 19:30 before and after the DST change."""
    calendar = icalendar.Calendar.from_ical(feed(CHOIR))
    event = calendar.walk("VEVENT")[0]
    from dateutil.rrule import rrulestr

    rule = rrulestr(event["RRULE"].to_ical().decode(), dtstart=event.decoded("DTSTART"))
    starts = rule.between(datetime(2026, 3, 20, tzinfo=BERLIN), datetime(2026, 4, 3, tzinfo=BERLIN))
    assert [s.strftime("%d %H:%M %z") for s in starts] == ["23 19:30 +0100", "30 19:30 +0200"]


def test_round_trip_through_import() -> None:
    result = parse_calendar(feed(CHOIR, WASTE, ONLINE).encode(), zone=BERLIN, now=NOW)
    assert result.skipped == 0 and result.past == 0
    by_uid = {e.uid: e for e in result.events}
    for original in (CHOIR, WASTE, ONLINE):
        assert by_uid[original.uid].fingerprint() == original.fingerprint()


WASTE_CALENDAR = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Entsorger//Abfall//DE\r
BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:STANDARD\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
END:DAYLIGHT\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:bio-2026@entsorger\r
DTSTAMP:20260101T000000Z\r
DTSTART;VALUE=DATE:20260304\r
RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20261231T000000Z\r
EXDATE;VALUE=DATE:20260318\r
SUMMARY:Biotonne\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:markt@gemeinde\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=Europe/Berlin:20260307T080000\r
DTEND;TZID=Europe/Berlin:20260307T120000\r
RRULE:FREQ=MONTHLY;BYDAY=1SA;UNTIL=20261231\r
SUMMARY:Wochenmarkt\r
LOCATION:Dorfplatz\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:markt@gemeinde\r
RECURRENCE-ID;TZID=Europe/Berlin:20260404T080000\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=Europe/Berlin:20260411T080000\r
DTEND;TZID=Europe/Berlin:20260411T120000\r
SUMMARY:Wochenmarkt (verschoben wegen Ostern)\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:markt@gemeinde\r
RECURRENCE-ID;TZID=Europe/Berlin:20260502T080000\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=Europe/Berlin:20260502T080000\r
STATUS:CANCELLED\r
SUMMARY:Wochenmarkt\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260320T190000\r
DURATION:PT2H\r
SUMMARY:Sperrmüll-Anmeldeschluss\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:utc@x\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260320T170000Z\r
SUMMARY:Online\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:old@x\r
DTSTAMP:20250101T000000Z\r
DTSTART;VALUE=DATE:20250105\r
SUMMARY:Vorbei\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:abgesagt@x\r
DTSTAMP:20260101T000000Z\r
DTSTART;VALUE=DATE:20260405\r
STATUS:CANCELLED\r
SUMMARY:Fällt aus\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:nosummary@x\r
DTSTAMP:20260101T000000Z\r
DTSTART;VALUE=DATE:20260405\r
END:VEVENT\r
END:VCALENDAR\r
""".encode()


def parts(rrule: str | None) -> set[str]:
    return set((rrule or "").split(";"))


def test_import_of_a_waste_calendar() -> None:
    result = parse_calendar(WASTE_CALENDAR, zone=BERLIN, now=NOW)
    by_title = {e.title: e for e in result.events}
    assert result.past == 1 and result.skipped == 1  # "Vorbei"; the one without SUMMARY
    bio = by_title["Biotonne"]
    assert bio.all_day and bio.start == datetime(2026, 3, 4) and bio.end == datetime(2026, 3, 5)
    assert parts(bio.rrule) == {"FREQ=WEEKLY", "INTERVAL=2", "UNTIL=20261231"}  # DATE with DATE
    assert bio.exdates == (datetime(2026, 3, 18),)
    market = by_title["Wochenmarkt"]
    assert market.tz == "Europe/Berlin" and market.start == datetime(2026, 3, 7, 8)
    assert parts(market.rrule) == {"FREQ=MONTHLY", "BYDAY=1SA", "UNTIL=20261231T225959Z"}
    # the moved and the cancelled Saturday are excluded from the series ...
    assert market.exdates == (datetime(2026, 4, 4, 8), datetime(2026, 5, 2, 8))
    # ... and the moved one is an event of its own
    moved = by_title["Wochenmarkt (verschoben wegen Ostern)"]
    assert moved.uid == "markt@gemeinde/20260404T080000" and moved.start == datetime(2026, 4, 11, 8)
    floating = by_title["Sperrmüll-Anmeldeschluss"]
    assert floating.tz == "Europe/Berlin" and floating.end == datetime(2026, 3, 20, 21)
    assert floating.uid.startswith("dorfbot-import-")  # no UID: a stable one from the content
    assert by_title["Online"].tz == "UTC"
    assert by_title["Fällt aus"].cancelled
    starts = [
        o.local
        for o in market.series().occurrences(
            datetime(2026, 3, 1, tzinfo=BERLIN), datetime(2026, 7, 1, tzinfo=BERLIN)
        )
    ]
    assert [s.day for s in starts] == [7, 6]  # March, June (April moved, May cancelled)
    again = parse_calendar(WASTE_CALENDAR, zone=BERLIN, now=NOW)
    assert [e.uid for e in again.events] == [e.uid for e in result.events]
    assert floating.uid in {e.uid for e in again.events}


def test_max_events_and_junk() -> None:
    assert len(parse_calendar(WASTE_CALENDAR, zone=BERLIN, now=NOW, max_events=2).events) == 2
    for junk in (b"", b"hello", b"BEGIN:VCARD\r\nEND:VCARD\r\n", b"\xff\xfe\x00"):
        with pytest.raises(CalendarFormatError):
            parse_calendar(junk, zone=BERLIN, now=NOW)


def test_fold_never_splits_a_character() -> None:
    line = "SUMMARY:" + "ü" * 100
    folded = fold(line)
    parts = folded.split("\r\n ")
    assert "".join(parts) == line
    assert all(len(p.encode()) <= 75 for p in parts)


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300))
@example("0" * (MAX_TITLE + 1))  # an import keeps the first MAX_TITLE characters
def test_any_title_survives_the_feed(title: str) -> None:
    cleaned = " ".join(title.split())
    if not cleaned:
        return
    event = CalendarEvent(
        uid="p@x", title=cleaned, start=datetime(2026, 3, 2, 10), tz="Europe/Berlin", modified=NOW
    )
    text = feed(event)
    assert max(len(line.encode()) for line in text.split("\r\n")) <= 75
    back = parse_calendar(text.encode(), zone=BERLIN, now=NOW - timedelta(days=1))
    expected = " ".join("".join(ch for ch in cleaned if ord(ch) >= 32 and ord(ch) != 127).split())
    assert [e.title for e in back.events] == ([expected[:MAX_TITLE]] if expected else [])


def test_hostile_rules_are_counted_as_unsupported_and_left_out() -> None:
    """SECONDLY from long ago, an unknown part and a huge COUNT: refused at once."""

    def event(uid: str, rule: str) -> str:
        return (
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:20000101T000000Z\r\nRRULE:{rule}\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\n"
        )

    data = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//x//EN\r\n"
        + event("secondly", "FREQ=SECONDLY")
        + event("evil", "FREQ=DAILY;X-EVIL=1")
        + event("hourly", "FREQ=HOURLY;COUNT=10000")
        + event("counted", "FREQ=DAILY;COUNT=1000000000")
        + "END:VCALENDAR\r\n"
    ).encode()
    started = datetime.now()
    result = parse_calendar(data, zone=BERLIN, now=NOW)
    assert (datetime.now() - started).total_seconds() < 1
    assert result.unsupported == 3
    assert [e.uid for e in result.events] == ["counted"]
