"""Small pure helpers of the calendar plugin: numbers, local days, digest times."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from dorfbot.config import VillageConfig
from dorfbot.plugin_loader import bundled_plugin

bundled_plugin("calendar")
from dorfbot_plugin_calendar import (  # type: ignore[import-not-found]  # noqa: E402
    day_bounds,
    digest_due,
)

VILLAGE = VillageConfig(id="musterdorf", name="Musterdorf", digest_time="7:05")


def test_local_days_are_23_or_25_hours_at_dst_changes() -> None:
    for day, hours in ((date(2026, 3, 29), 23), (date(2026, 10, 25), 25)):
        start, end = day_bounds(VILLAGE, day)
        assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)


def test_digest_is_due_at_local_time() -> None:
    due = digest_due(VILLAGE, date(2026, 7, 1))
    assert (due.hour, due.minute, due.utcoffset()) == (7, 5, timedelta(hours=2))
