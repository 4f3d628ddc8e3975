"""When scheduled items are due: pure functions over :class:`dorfbot.dates.When`.

Times are stored in UTC as fixed-width ISO strings (they sort as text); an
item's rule is stored as its first local wall-clock start, time zone and RRULE,
so recurring items keep their local time across daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dorfbot.dates import When

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: A scheduled send this much after its time gets the "(verspätet)" note.
LATE_AFTER = timedelta(seconds=60)


def to_iso(moment: datetime) -> str:
    """An aware moment as a UTC ISO string (whole seconds)."""
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


def from_iso(text: str) -> datetime:
    """The aware UTC moment of :func:`to_iso`'s string."""
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=UTC)


def local_start(when: When) -> str:
    """The wall-clock start of ``when`` (no offset), as stored."""
    return when.start.replace(tzinfo=None).isoformat(timespec="seconds")


def rebuild(start_local: str, tz: str, rrule: str | None) -> When:
    """The :class:`When` of a stored item."""
    zone = ZoneInfo(tz)
    return When(datetime.fromisoformat(start_local).replace(tzinfo=zone), rrule or None, tz=tz)


@dataclass(frozen=True)
class DuePlan:
    """What to do with an item whose next run has come."""

    fire: datetime | None
    """The occurrence to send now (the latest one within the grace period)."""
    late: bool
    """Whether ``fire`` is sent noticeably after its time."""
    skipped: tuple[datetime, ...]
    """Missed occurrences that are not sent (older than the grace period, or superseded)."""
    skipped_more: bool
    """More occurrences were skipped than listed (a very long downtime)."""
    next_run: datetime | None
    """The next occurrence after now; None when the item is finished."""


def plan_due(
    when: When,
    next_run: datetime,
    now: datetime,
    grace: timedelta,
    *,
    late_after: timedelta = LATE_AFTER,
) -> DuePlan:
    """Decide about an item due at ``next_run`` (<= ``now``).

    Every occurrence from ``next_run`` up to ``now`` was missed or is due now.
    The latest one no older than ``grace`` is sent (late, if it is more than
    ``late_after`` old); all others are skipped, so an item is never sent
    twice in a row after a downtime.
    """
    if next_run > now:
        return DuePlan(None, False, (), False, next_run)
    edge = now + timedelta(microseconds=1)
    recent = when.occurrences(max(next_run, now - grace), edge)
    fire = recent[-1] if recent else None
    older: list[datetime] = []
    if next_run < now - grace:
        older = when.occurrences(next_run, min(now - grace, edge), limit=50)
    skipped = tuple(older + recent[:-1])
    following = when.next_after(max(now, fire) if fire else now)
    return DuePlan(
        fire=fire,
        late=fire is not None and now - fire > late_after,
        skipped=skipped,
        skipped_more=len(older) >= 50,
        next_run=following,
    )
