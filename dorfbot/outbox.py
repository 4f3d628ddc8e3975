"""Sends in flight: the bounded window behind :class:`dorfbot.matrix.Matrix`'s sending API.

The sync loop handles one event at a time, but it does not wait for the
homeserver's round trip of each reply: while an event is handled, its sends
are queued here (:class:`EventScope`) and the loop goes on to the next event.
This module owns only the *how* of delivery; what a message looks like is
decided in :mod:`dorfbot.matrix`, which is still the one sending API.

- At most ``limit`` sends are in flight at once (config ``send_window``).
- Order is kept per lane, (room, the person whose event caused the send): one
  person's answers arrive in the order they asked; the bot's own sends (jobs,
  schedules) have a lane per room.
- Exactly once: an event is marked handled together with its sends that are
  not delivered yet (:meth:`SendWindow.persist`, in the same transaction), so
  a crash with sends in flight resends them after the restart with the same
  transaction IDs, which the homeserver deduplicates. An event whose mark did
  not make it is handled again, and its sends get the same IDs again
  (derived from the event).
- ``M_LIMIT_EXCEEDED`` halves the window and pauses new sends for the
  homeserver's ``retry_after_ms`` (matrix-nio retries the limited request
  itself); the window grows back by one per window of deliveries. Nothing is
  dropped; only a send the homeserver refuses for good (no such room, not
  allowed) is given up, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dorfbot.storage import Database, sql_script

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 16

MIGRATIONS = [
    sql_script(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, txn_id TEXT NOT NULL "
        "UNIQUE, room_id TEXT NOT NULL, lane TEXT NOT NULL, event_type TEXT NOT NULL, "
        "content TEXT NOT NULL, cause TEXT, created_at REAL NOT NULL)",
    )
]


class SendFailed(Exception):
    """The homeserver refused a send for good (raised by the delivery function)."""


@dataclass(eq=False)
class Outgoing:
    """One event on its way to the homeserver."""

    txn_id: str
    room_id: str
    lane: str
    event_type: str
    content: dict[str, Any]
    cause: str | None
    future: asyncio.Future[str]
    persisted: bool = False
    """Written to the outbox table (its row is deleted after delivery)."""

    @property
    def lane_key(self) -> tuple[str, str]:
        return (self.room_id, self.lane)


@dataclass(eq=False)
class EventScope:
    """The sends caused by one event while it is handled."""

    cause: str
    lane: str
    outgoing: list[Outgoing] = field(default_factory=list)
    open: bool = True
    count: int = 0

    def next_number(self) -> int:
        self.count += 1
        return self.count


Deliver = Callable[[Outgoing], Awaitable[str]]


class SendWindow:
    """Lanes of queued sends, at most ``limit`` of them in flight."""

    def __init__(self, deliver: Deliver, limit: int = DEFAULT_WINDOW) -> None:
        self._deliver = deliver
        self.limit = max(1, limit)
        self.current = self.limit
        """The window now: ``limit``, or less after ``M_LIMIT_EXCEEDED``."""
        self.db: Database | None = None
        self._lanes: dict[tuple[str, str], deque[Outgoing]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_txn: dict[str, Outgoing] = {}
        self._in_flight = 0
        self._slot_freed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._paused_until = 0.0
        self._successes = 0
        self._delivered_rows: list[str] = []
        self._scope: contextvars.ContextVar[EventScope | None] = contextvars.ContextVar(
            f"dorfbot-scope-{id(self)}", default=None
        )
        self.peak_in_flight = 0
        """The most sends that were in flight at once (for the bench and tests)."""
        self.rate_limited_count = 0
        """How often the homeserver answered ``M_LIMIT_EXCEEDED`` (for logs and tests)."""

    # ------------------------------------------------------------ scopes

    @contextlib.contextmanager
    def scope(self, cause: str, lane: str) -> Iterator[EventScope]:
        """While an event is handled: its sends are queued, not awaited."""
        scope = EventScope(cause, lane)
        token = self._scope.set(scope)
        try:
            yield scope
        finally:
            scope.open = False
            self._scope.reset(token)

    def current_scope(self) -> EventScope | None:
        """The open scope of the event being handled, if any.

        Background work a handler started (a job) inherits the context but runs
        after the event was marked handled; its scope is closed by then, so its
        sends are awaited like any send outside an event.
        """
        scope = self._scope.get()
        return scope if scope is not None and scope.open else None

    # ------------------------------------------------------------ queueing

    def pending(self, txn_id: str) -> Outgoing | None:
        return self._by_txn.get(txn_id)

    def submit(self, out: Outgoing) -> Outgoing:
        """Queue ``out`` in its lane; a send with the same transaction ID is reused."""
        existing = self._by_txn.get(out.txn_id)
        if existing is not None:
            return existing
        self._by_txn[out.txn_id] = out
        self._idle.clear()
        queue = self._lanes.get(out.lane_key)
        if queue is None:
            queue = self._lanes[out.lane_key] = deque()
            task = asyncio.create_task(self._run_lane(out.lane_key, queue), name="dorfbot-send")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append(out)
        return out

    async def _run_lane(self, key: tuple[str, str], queue: deque[Outgoing]) -> None:
        try:
            while queue:
                out = queue[0]
                await self._acquire()
                try:
                    event_id = await self._deliver(out)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("send %s to %s failed for good: %s", out.txn_id, out.room_id, exc)
                    self._finish(out, error=exc)
                else:
                    self._grow()
                    self._finish(out, event_id=event_id)
                finally:
                    self._release()
                queue.popleft()
        finally:
            if self._lanes.get(key) is queue:
                del self._lanes[key]
            if not self._lanes:
                self._idle.set()
                if self._delivered_rows:
                    self._spawn(self.flush())

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as exc:  # forgetting delivered rows is best effort
                log.debug("outbox flush failed: %s", exc)

        task = asyncio.create_task(run(), name="dorfbot-outbox-flush")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(
        self, out: Outgoing, *, event_id: str | None = None, error: Exception | None = None
    ) -> None:
        self._by_txn.pop(out.txn_id, None)
        if out.persisted:
            self._delivered_rows.append(out.txn_id)
        if out.future.done():
            return
        if error is not None:
            out.future.set_exception(error)
            # nobody may be waiting for a queued answer: do not warn about that
            out.future.add_done_callback(_retrieve)
        else:
            out.future.set_result(str(event_id))

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._paused_until - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self._in_flight < self.current:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                return
            self._slot_freed.clear()
            await self._slot_freed.wait()

    def _release(self) -> None:
        self._in_flight -= 1
        self._slot_freed.set()

    # ------------------------------------------------------------ rate limits

    def rate_limited(self, retry_after_ms: int | None) -> None:
        """The homeserver said ``M_LIMIT_EXCEEDED``: halve the window, pause new sends."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.rate_limited_count += 1
        if now >= self._paused_until:  # one halving per pause, not one per refused send
            before = self.current
            self.current = max(1, self.current // 2)
            level = logging.WARNING if self.rate_limited_count == 1 else logging.INFO
            log.log(
                level,
                "the homeserver rate-limits the bot's messages (M_LIMIT_EXCEEDED): sends in "
                "flight %d -> %d. Lift the limit for the bot's account: see "
                "`dorfbot check-config --online`.",
                before,
                self.current,
            )
        self._successes = 0
        pause = (retry_after_ms or 1000) / 1000
        self._paused_until = max(self._paused_until, now + pause)

    def _grow(self) -> None:
        if self.current >= self.limit:
            return
        self._successes += 1
        if self._successes >= self.current:
            self._successes = 0
            self.current += 1

    # ------------------------------------------------------------ persistence

    async def load(self, db: Database) -> int:
        """Attach the database and queue the sends a previous run left undelivered."""
        self.db = db
        rows = await db.fetchall(
            "SELECT txn_id, room_id, lane, event_type, content, cause FROM outbox ORDER BY seq"
        )
        loop = asyncio.get_running_loop()
        for row in rows:
            out = Outgoing(
                txn_id=row["txn_id"],
                room_id=row["room_id"],
                lane=row["lane"],
                event_type=row["event_type"],
                content=json.loads(row["content"]),
                cause=row["cause"],
                future=loop.create_future(),
                persisted=True,
            )
            self.submit(out).future.add_done_callback(_retrieve)
        if rows:
            log.info("resending %d messages left in flight by the last run", len(rows))
        return len(rows)

    def persist_statements(self, scope: EventScope | None) -> list[tuple[str, tuple[Any, ...]]]:
        """SQL that records ``scope``'s undelivered sends and forgets delivered ones.

        The sync loop runs these in the transaction that marks the event
        handled, so the mark and the sends it still owes are stored together.
        """
        statements: list[tuple[str, tuple[Any, ...]]] = []
        now = time.time()
        for out in scope.outgoing if scope else ():
            if out.future.done() or out.persisted:
                continue
            out.persisted = True
            statements.append(
                (
                    "INSERT INTO outbox (txn_id, room_id, lane, event_type, content, "
                    "cause, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        out.txn_id,
                        out.room_id,
                        out.lane,
                        out.event_type,
                        json.dumps(out.content),
                        out.cause,
                        now,
                    ),
                )
            )
        statements.extend(self._delete_statements())
        return statements

    def _delete_statements(self) -> list[tuple[str, tuple[Any, ...]]]:
        done, self._delivered_rows = self._delivered_rows, []
        return [("DELETE FROM outbox WHERE txn_id = ?", (txn,)) for txn in done]

    async def flush(self) -> None:
        """Forget delivered sends in the outbox table now (also done with every mark)."""
        statements = self._delete_statements()
        if statements and self.db is not None:
            await self.db.batch(statements)

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight (at most ``timeout`` s)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(Exception):
                await self.flush()
        return True

    async def close(self) -> None:
        """Stop sending; what is still queued stays in the outbox for the next start."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for out in list(self._by_txn.values()):
            if not out.future.done():
                out.future.cancel()
        self._by_txn.clear()
        self._lanes.clear()
        self._idle.set()


def _retrieve(future: asyncio.Future[str]) -> None:
    if not future.cancelled():
        future.exception()
