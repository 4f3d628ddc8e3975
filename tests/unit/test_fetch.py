"""dorfbot.fetch: only public addresses, checked on every hop; size, time, redirect limits.

The server is a local aiohttp app on loopback, so "public" is simulated by
allowing one loopback network (127.0.0.2) and refusing the rest.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from dorfbot.fetch import (
    AddressPolicy,
    FetchError,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    check_url,
    fetch_public,
)

PUBLIC = AddressPolicy.of(networks=["127.0.0.2/32"])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.178.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a01:203",  # NAT64 of 10.1.2.3
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert AddressPolicy().refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2a00:1450:4001:82b::200e", "1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().refusal(address) is None


def test_operator_switches() -> None:
    intranet = AddressPolicy.of(allow_private=True)
    assert intranet.refusal("10.1.2.3") is None and intranet.refusal("127.0.0.1") is None
    # never, whatever the switch says
    assert intranet.refusal("169.254.169.254") is not None
    assert intranet.refusal("224.0.0.1") is not None
    listed = AddressPolicy.of(networks=["10.1.2.0/24"])
    assert listed.refusal("10.1.2.3") is None and listed.refusal("10.1.3.1") is not None
    with pytest.raises(ValueError):
        AddressPolicy.of(networks=["not a network"])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/a.ics",
        "file:///etc/passwd",
        "http:///a.ics",
        "http://user:pw@example.org/a.ics",
        "http://example.org:99999/a.ics",
        "javascript:alert(1)",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    assert check_url(url) is not None


CALENDAR = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, str]]:
    """(base URL on 127.0.0.2 = "public", base URL on 127.0.0.1 = internal)."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(body=CALENDAR, content_type="text/calendar")

    async def internal(_: web.Request) -> web.Response:
        return web.Response(text="secret admin data")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop?n={int(request.query.get('n', 0)) + 1}")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(1000):
            await resp.write(b"x" * 65536)
        return resp

    bomb_body = gzip.compress(b"\0" * 50_000_000)

    async def bomb(_: web.Request) -> web.Response:
        return web.Response(body=bomb_body, headers={"Content-Encoding": "gzip"})

    async def small_gzip(_: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(CALENDAR), headers={"Content-Encoding": "gzip"})

    async def tarpit(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(600):
            await resp.write(b"B")
            await asyncio.sleep(0.05)
        return resp

    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    for path, handler in [
        ("/ok.ics", ok),
        ("/internal", internal),
        ("/redirect", redirect),
        ("/loop", loop),
        ("/endless", endless),
        ("/bomb", bomb),
        ("/small-gzip", small_gzip),
        ("/tarpit", tarpit),
        ("/missing", missing),
    ]:
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sites = [web.TCPSite(runner, host, 0) for host in ("127.0.0.2", "127.0.0.1")]
    for site in sites:
        await site.start()
    ports = [site._server.sockets[0].getsockname()[1] for site in sites]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.2:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        await runner.cleanup()


async def test_public_calendar_is_fetched(server: tuple[str, str]) -> None:
    public, _ = server
    assert await fetch_public(f"{public}/ok.ics", policy=PUBLIC) == CALENDAR
    assert await fetch_public(f"{public}/small-gzip", policy=PUBLIC) == CALENDAR


async def test_loopback_and_localhost_are_refused(server: tuple[str, str]) -> None:
    public, internal = server
    port = internal.rsplit(":", 1)[1]
    for url in (f"{internal}/internal", f"http://localhost:{port}/internal"):
        with pytest.raises(FetchRefused):
            await fetch_public(url, policy=PUBLIC)
    # the default policy refuses even the "public" test address (it is loopback)
    with pytest.raises(FetchRefused):
        await fetch_public(f"{public}/ok.ics")


async def test_redirect_to_an_internal_address_is_refused(server: tuple[str, str]) -> None:
    public, internal = server
    with pytest.raises(FetchRefused):
        await fetch_public(f"{public}/redirect?to={internal}/internal", policy=PUBLIC)
    # a redirect within the allowed address is followed
    ok = await fetch_public(f"{public}/redirect?to={public}/ok.ics", policy=PUBLIC)
    assert ok == CALENDAR


async def test_redirects_are_limited(server: tuple[str, str]) -> None:
    public, _ = server
    with pytest.raises(FetchRefused, match="redirects"):
        await fetch_public(f"{public}/loop", policy=PUBLIC, max_redirects=3)


async def test_size_is_limited_while_streaming(server: tuple[str, str]) -> None:
    public, _ = server
    started = time.monotonic()
    with pytest.raises(FetchTooLarge):
        await fetch_public(f"{public}/endless", policy=PUBLIC, max_bytes=200_000)
    assert time.monotonic() - started < 5
    tracemalloc.start()
    try:
        with pytest.raises(FetchTooLarge):  # 50 MB of zeros in 50 KB of gzip
            await fetch_public(f"{public}/bomb", policy=PUBLIC, max_bytes=200_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak  # inflated in bounded steps, never whole


async def test_total_time_is_limited(server: tuple[str, str]) -> None:
    """A tarpit that trickles one byte every 50 ms never trips a read timeout."""
    public, _ = server
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        await fetch_public(f"{public}/tarpit", policy=PUBLIC, timeout=1.0)
    assert time.monotonic() - started < 2


async def test_a_status_is_an_error_for_the_log_only(server: tuple[str, str]) -> None:
    public, _ = server
    with pytest.raises(FetchError) as caught:
        await fetch_public(f"{public}/missing", policy=PUBLIC)
    assert "404" in caught.value.reason and not isinstance(caught.value, FetchRefused)
