"""Clocks for the benchmarks: when replies arrive at the residents' clients, and statistics.

:class:`TimedResident` is the test suite's :class:`~dorfbot.testing.resident.Resident`
with one addition: every event its sync records is also handed to a shared
:class:`Arrivals`, which stamps it with ``time.perf_counter()``. A reply counts
once per reply event, whichever resident saw it first, so a burst can be timed
from one observer in every room.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dorfbot.testing.resident import Resident, reply_target

EventHook = Callable[[str, dict[str, Any], float], None]


@dataclass
class Arrivals:
    """Reply arrival times, keyed by the event replied to; plus extra event hooks."""

    replies: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    hooks: list[EventHook] = field(default_factory=list)

    def record(self, room_id: str, source: dict[str, Any], now: float) -> None:
        event_id = source.get("event_id")
        if not isinstance(event_id, str) or event_id in self._seen:
            return
        self._seen.add(event_id)
        target = reply_target(source)
        if target is not None:
            self.replies.setdefault(target, []).append((now, event_id))
        for hook in self.hooks:
            hook(room_id, source, now)

    def first(self, target: str) -> float | None:
        got = self.replies.get(target)
        return got[0][0] if got else None

    def count(self, target: str) -> int:
        return len(self.replies.get(target, ()))

    async def wait(
        self,
        targets: Iterable[str],
        timeout: float,
        *,
        poll: float = 0.002,
        quiet: float | None = None,
    ) -> bool:
        """Until every target has a reply (True), ``timeout`` passes, or (with
        ``quiet``) no new reply arrived for that many seconds (False)."""
        wanted = set(targets)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_count, last_change = -1, loop.time()
        while True:
            answered = sum(1 for t in wanted if t in self.replies)
            if answered == len(wanted):
                return True
            now = loop.time()
            if answered != last_count:
                last_count, last_change = answered, now
            if now > deadline or (quiet is not None and now - last_change > quiet):
                return False
            await asyncio.sleep(poll)


class TimedResident(Resident):
    """A resident whose recorded events are also stamped in an :class:`Arrivals`."""

    arrivals: Arrivals

    def _record(self, room_id: str, sources: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        for source in sources:
            self.arrivals.record(room_id, source, now)
        super()._record(room_id, sources)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """n, p50, p95, p99, mean, min, max of durations, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 3),
        "p95": round(percentile(ms, 95), 3),
        "p99": round(percentile(ms, 99), 3),
        "mean": round(statistics.fmean(ms), 3),
        "min": round(min(ms), 3),
        "max": round(max(ms), 3),
    }


@dataclass
class Clock:
    """Wall and CPU time (every thread of this process) of repeated steps."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def summary(self) -> dict[str, Any]:
        return {**summary_ms(self.wall), "cpu": summary_ms(self.cpu)}
