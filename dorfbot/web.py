"""The HTTP server: ``/healthz``, ``/metrics`` and routes plugins add (iCal feeds)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from dorfbot.config import HttpConfig

if TYPE_CHECKING:
    from dorfbot.bot import Bot

log = logging.getLogger(__name__)

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer:
    """One aiohttp application; plugins call :meth:`add_get` in their ``start``."""

    def __init__(self, config: HttpConfig, bot: Bot) -> None:
        self.config = config
        self.bot = bot
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def add_get(self, path: str, handler: RouteHandler) -> None:
        self.app.router.add_get(path, handler)

    async def start(self) -> None:
        if not self.config.enabled:
            return
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.listen_port)
        await site.start()
        addresses = self._runner.addresses  # the real port when listening on :0
        self.port = int(addresses[0][1]) if addresses else self.config.listen_port
        log.info("HTTP on %s:%s", self.config.listen_host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        last = self.bot.stream.last_sync_at
        lag = None if last is None else round(time.time() - last, 1)
        healthy = last is not None and lag is not None and lag < 120
        return web.json_response(
            {
                "status": "ok" if healthy else "starting" if last is None else "stale",
                "last_sync_seconds_ago": lag,
            },
            status=200 if healthy else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        last = self.bot.stream.last_sync_at
        if last is not None:
            self.bot.metrics.sync_lag.set(time.time() - last)
        return web.Response(
            body=self.bot.metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )
