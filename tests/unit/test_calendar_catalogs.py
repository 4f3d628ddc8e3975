"""The calendar plugin's catalogs: same keys and placeholders in German and English."""

from __future__ import annotations

import string
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dorfbot.i18n import CORE_LOCALES, Catalogs
from dorfbot.plugin_loader import bundled_plugin, locales_dir

CalendarPlugin = bundled_plugin("calendar")
from dorfbot_plugin_calendar.recurrence import Series  # type: ignore[import-not-found]  # noqa: E402
from dorfbot_plugin_calendar.texts import Formatter  # type: ignore[import-not-found]  # noqa: E402


def catalogs() -> Catalogs:
    found = Catalogs()
    found.add_dir(CORE_LOCALES)
    found.add_dir(locales_dir(CalendarPlugin))
    return found


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    plugin_only = Catalogs()
    plugin_only.add_dir(locales_dir(CalendarPlugin))
    de, en = plugin_only.by_language["de"], plugin_only.by_language["en"]
    assert de.keys() == en.keys()
    date_fields = {"weekday", "weekday_short", "day", "day_num", "month", "month_name", "year"}
    for key in de.keys():
        de_names, en_names = placeholders(de.get(key) or ""), placeholders(en.get(key) or "")
        if key.startswith("calendar.fmt.date"):  # word order differs, fields are all given
            assert de_names <= date_fields and en_names <= date_fields, key
        else:
            assert de_names == en_names, key


def test_every_command_has_help_and_usage() -> None:
    specs = CalendarPlugin().command_specs()
    assert {s.name for s in specs} == {"termin", "termine", "absagen", "kalender", "import"}
    found = catalogs()
    for lang in ("de", "en"):
        t = found.translator(lang)
        for spec in specs:
            assert t.has(spec.help_key) and t.has(spec.usage_key), (lang, spec.name)


def test_dates_read_naturally() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    found = catalogs()
    series = Series(1, datetime(2026, 12, 24, 18), berlin, duration=timedelta(hours=2))
    occ = series.occurrences(
        datetime(2026, 12, 1, tzinfo=berlin), datetime(2027, 1, 1, tzinfo=berlin)
    )[0]
    assert Formatter(found.translator("de"), berlin).when(occ) == (
        "Donnerstag, 24.12.2026, 18:00 bis 20:00 Uhr"
    )
    assert Formatter(found.translator("en"), berlin).when(occ) == (
        "Thursday, 24 December 2026, 18:00 to 20:00"
    )
    all_day = Series(2, datetime(2026, 12, 24), berlin, duration=timedelta(days=1), all_day=True)
    occ = all_day.occurrences(
        datetime(2026, 12, 24, 12, tzinfo=berlin), datetime(2026, 12, 25, tzinfo=berlin)
    )[0]
    assert Formatter(found.translator("de"), berlin).time_of(occ) == "ganztägig"
