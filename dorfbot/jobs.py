"""Background jobs: long work of one command off the command loop.

The sync loop hands commands to their handlers one at a time, so a handler
that waits on the network (a slow ``!import`` URL, a tarpit) would hold up the
answers of every village. Such a handler starts a job instead and returns at
once; the job does the work concurrently and reports back to the asker itself.

- :meth:`Jobs.start` runs a coroutine as a task, at most ``limit`` at a time
  (further jobs wait for a slot; the caller can check :attr:`Jobs.full` first
  and refuse).
- A job that raises is logged and counted in ``dorfbot_errors_total``; its
  ``on_error`` (e.g. "that did not work" to the asker) is called.
- :meth:`Jobs.stop` (at shutdown) cancels what still runs and waits for it.

Jobs are not persisted: one cut off by a shutdown is lost, and its command is
not answered again after the restart (it was handled). Keep them for work the
asker can simply repeat, such as an import (idempotent by UID).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

ErrorHandler = Callable[[BaseException], Awaitable[None]]


class Jobs:
    """The bot's background jobs (``bot.jobs``)."""

    def __init__(self, *, limit: int = 4, on_failure: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_failure = on_failure
        self._stopping = False

    @property
    def running(self) -> int:
        """Jobs started and not finished (including those waiting for a slot)."""
        return len(self._tasks)

    @property
    def full(self) -> bool:
        """Whether a new job would have to wait for a slot."""
        return self.running >= self.limit

    def start(
        self,
        name: str,
        work: Coroutine[Any, Any, None],
        *,
        on_error: ErrorHandler | None = None,
    ) -> asyncio.Task[None]:
        """Run ``work`` in the background; returns its task (tests may await it)."""
        if self._stopping:
            work.close()
            raise RuntimeError("the bot is stopping")
        task = asyncio.create_task(self._run(name, work, on_error), name=f"dorfbot-job-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(
        self, name: str, work: Coroutine[Any, Any, None], on_error: ErrorHandler | None
    ) -> None:
        try:
            async with self._slots:
                await work
        except asyncio.CancelledError:
            log.info("job %s cancelled", name)
            raise
        except Exception as exc:
            log.exception("job %s failed", name)
            if self._on_failure is not None:
                self._on_failure()
            if on_error is not None:
                try:
                    await on_error(exc)
                except Exception:
                    log.exception("reporting the failure of job %s failed", name)
        finally:
            work.close()  # never awaited if cancelled while waiting for a slot

    async def wait(self) -> None:
        """Until every job started so far has finished (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel the jobs still running and wait (at most ``timeout``) for them to end."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            log.info("cancelling %d background job(s)", len(tasks))
            await asyncio.wait(tasks, timeout=timeout)
