"""The calendar's parsed events and their expansions, kept while its tables are unchanged.

Every listing, digest, reminder check and public page needs a village's events
as :class:`~.recurrence.Series` and their occurrences in a window; reading a
thousand rows and parsing their times and rules cost as much as expanding
them, and both were done again for every request. :class:`EventCache` keeps,
per village and set of item states:

- the events that are not over yet, parsed once;
- the occurrences of a few whole UTC days around the windows asked lately
  (today to 14 days ahead, a month, today), from which each window is cut.

It asks the database only for the village's calendar version: a number that
triggers on ``calendar_events`` and on the calendar's rows in ``items`` raise
with every insert, change and delete (``store.py``), whoever writes them (the
plugin, the moderation queue, an erasure, an import). An unchanged version
means unchanged events, so what is kept is dropped exactly when it could be
wrong. Inside a database transaction nothing is kept (its writes may still be
rolled back).

Not kept here is what changes without a version bump: RSVP counts are read for
the rows actually shown (:meth:`~.store.EventStore.rsvp_counts`), and time
passing is handled by cutting every window out of the kept days exactly as
:func:`~.recurrence.expand` would produce it.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .recurrence import Occurrence, RecurrenceError, Series, expand_async
from .store import EventStore, StoredEvent

Found = list[tuple[StoredEvent, Occurrence]]

SLACK = timedelta(days=2)
"""How far before the asked window the kept events reach, so that windows
starting a little earlier (today's digest, a catch-up) are served too."""
MAX_SPAN = timedelta(days=64)
"""Longer windows (``!termine 30`` looking a year ahead) are expanded each time."""
SPANS_KEPT = 8
"""Expanded spans kept per village and states (the oldest goes first)."""
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Entry:
    """One parsed event with the instants that bound its occurrences."""

    stored: StoredEvent
    series: Series
    starts_at: float
    last_at: float | None

    def overlaps(self, lo: float, hi: float) -> bool:
        return self.starts_at < hi and (self.last_at is None or self.last_at >= lo)


@dataclass(slots=True)
class _Kept:
    version: int
    since: float
    """Events that were over before this instant were not loaded."""
    entries: tuple[Entry, ...]
    spans: dict[tuple[datetime, datetime], Found] = field(default_factory=dict)


class EventCache:
    """A village's events and occurrences for a window, from memory while nothing changed."""

    def __init__(self, store: EventStore, log: logging.Logger) -> None:
        self.store = store
        self.log = log
        self._kept: dict[tuple[str, tuple[str, ...]], _Kept] = {}
        self.loads = 0
        """How often events were read from the database (tests and the bench look)."""
        self.expansions = 0
        """How often a span was expanded afresh."""

    def clear(self) -> None:
        """Forget everything (the next request reads and expands again)."""
        self._kept.clear()

    async def occurrences(
        self, village: str, after: datetime, before: datetime, states: tuple[str, ...]
    ) -> Found:
        """Every occurrence in ``[after, before)`` of the village's events in ``states``,
        ordered by start (equal starts by event number), as :func:`expand` gives them."""
        if before <= after:
            return []
        lo, hi = _floor_day(after), _floor_day(before)
        if hi < before:
            hi += _DAY
        kept = await self._current(village, after, states)
        if kept is None or hi - lo > MAX_SPAN:
            entries = await self.window(village, after, before, states, kept)
            return await self._expand(entries, after, before)
        span = kept.spans.get((lo, hi))
        if span is None:
            entries = [e for e in kept.entries if e.overlaps(lo.timestamp(), hi.timestamp())]
            span = await self._expand(entries, lo, hi)
            if len(kept.spans) >= SPANS_KEPT:
                del kept.spans[next(iter(kept.spans))]
            kept.spans[(lo, hi)] = span
        return _cut(span, after, before)

    async def window(
        self,
        village: str,
        after: datetime,
        before: datetime,
        states: tuple[str, ...],
        kept: _Kept | None = None,
    ) -> list[Entry]:
        """Events in ``states`` that may have an occurrence in ``[after, before)``,
        in the order of their numbers; events with an unreadable rule are left out."""
        if kept is None:
            kept = await self._current(village, after, states)
        if kept is None:
            return self._parse(await self.store.window(village, after, before, states))
        lo, hi = after.timestamp(), before.timestamp()
        return [entry for entry in kept.entries if entry.overlaps(lo, hi)]

    async def _current(
        self, village: str, after: datetime, states: tuple[str, ...]
    ) -> _Kept | None:
        """The kept events (read again if they changed); None inside a transaction."""
        if self.store.db.in_transaction:
            return None
        version = await self.store.version(village)
        key = (village, states)
        kept = self._kept.get(key)
        if kept is None or kept.version != version or after.timestamp() < kept.since:
            since = after - SLACK
            rows = await self.store.window(village, since, None, states)
            kept = _Kept(version, since.timestamp(), tuple(self._parse(rows)))
            self._kept[key] = kept
            self.loads += 1
        return kept

    async def _expand(self, entries: list[Entry], after: datetime, before: datetime) -> Found:
        self.expansions += 1
        by_id = {entry.stored.item_id: entry.stored for entry in entries}
        found = await expand_async([entry.series for entry in entries], after, before)
        return [(by_id[occ.series.key], occ) for occ in found]

    def _parse(self, rows: list[StoredEvent]) -> list[Entry]:
        entries = []
        for stored in rows:
            try:
                series = stored.series()
            except (RecurrenceError, ValueError) as exc:
                self.log.warning("event %s has an unreadable rule: %s", stored.item_id, exc)
                continue
            entries.append(Entry(stored, series, stored.starts_at, stored.last_at))
        return entries


def _floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _cut(span: Found, after: datetime, before: datetime) -> Found:
    """The occurrences of ``span`` that overlap ``[after, before)``, by the rule of
    :func:`~.recurrence.expand`: one with a length when it ends after ``after``, a
    point in time when it starts at or after it; and it starts before ``before``."""
    lo = after.astimezone(UTC).replace(tzinfo=None)
    hi = before.astimezone(UTC).replace(tzinfo=None)
    end = bisect_left(span, hi, key=lambda pair: pair[1].utc_start)
    return [
        pair
        for pair in span[:end]
        if (pair[1].utc_start >= lo if pair[1].utc_end is None else pair[1].utc_end > lo)
    ]
