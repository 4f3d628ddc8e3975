"""Fetching a document from a public web address, safely (``!import <url>``).

A URL an organizer types is untrusted: it may name (or redirect to) the
homeserver's admin API on loopback, a router on the LAN or a cloud metadata
service. :func:`fetch_public` therefore

- accepts only ``http``/``https`` URLs with a host name and no user info;
- checks every address the connection is actually made to, in the socket
  factory aiohttp calls for each connection attempt (after DNS, so a name
  that resolves to an internal address, or changes its answer between two
  lookups, is caught too), and refuses loopback, private, link-local,
  shared (CGNAT), multicast, reserved and unspecified addresses and the cloud
  metadata services, unless :class:`AddressPolicy` allows them;
- follows redirects itself (at most ``max_redirects``), checking each target;
- stops reading at ``max_bytes`` (streamed, counted after decompression, which
  is done here in bounded steps) and at ``timeout`` seconds for everything,
  redirects included;
- raises :class:`FetchError` with a ``reason`` for the log; what the asker
  is told must stay generic (never the status or the address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud metadata services (AWS, ECS, Alibaba, AWS IPv6): never fetched, whatever the policy."""

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 65536


class FetchError(Exception):
    """The document could not be fetched; ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchRefused(FetchError):
    """The URL or an address it leads to is not allowed."""


class FetchTooLarge(FetchError):
    """The document is larger than allowed."""


class FetchTimeout(FetchError):
    """The whole fetch took longer than allowed."""


class _RefusedAddress(OSError):
    """Raised in the socket factory; aiohttp reports it as a connection error."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be connected to.

    By default only public (globally routable) unicast addresses.
    ``allow_private`` also allows loopback, private, link-local, shared and
    reserved ones (an intranet calendar); ``allow_networks`` allows listed
    networks only. Multicast, unspecified and metadata addresses are refused
    always.
    """

    allow_private: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_private: bool = False, networks: Iterable[str] = ()) -> AddressPolicy:
        """From config values; raises ValueError for a network that is not one."""
        return cls(
            bool(allow_private),
            tuple(ipaddress.ip_network(str(n), strict=False) for n in networks),
        )

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be connected to, or None if it may."""
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"not an IP address: {address!r}"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = self.refusal(str(embedded))
            return None if reason is None else f"{ip} embeds {embedded}: {reason}"
        if ip in METADATA:
            return f"{ip} is a metadata service"
        if ip.is_multicast or ip.is_unspecified:
            return f"{ip} is multicast or unspecified"
        if any(ip in net for net in self.allow_networks if net.version == ip.version):
            return None
        if ip.is_global and not (ip.is_reserved or ip.is_private or ip.is_link_local):
            return None
        if self.allow_private:
            return None
        return f"{ip} is not a public address"


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, NAT64 or Teredo IPv6 address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass
class _Guard:
    """The socket factory aiohttp calls for every connection attempt."""

    policy: AddressPolicy
    refused: list[str] = field(default_factory=list)

    def __call__(self, addr_info: Any) -> socket.socket:
        family, kind, proto, _, address = addr_info
        reason = self.policy.refusal(str(address[0]))
        if reason is not None:
            self.refused.append(reason)
            raise _RefusedAddress(reason)
        return socket.socket(family=family, type=kind, proto=proto)


def check_url(url: str) -> str | None:
    """Why ``url`` is not an address we fetch (scheme, host, user info), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "malformed URL"
    if parts.scheme.lower() not in ("http", "https"):
        return f"scheme {parts.scheme[:10]!r} is not http(s)"
    if not parts.hostname:
        return "no host"
    if parts.username is not None or parts.password is not None:
        return "user info in URL"
    if port == 0:
        return "port 0"
    return None


class _Body:
    """Reads a response body with a size limit, decompressing gzip/deflate in steps."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self.inflate: Any = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self.inflate = zlib.decompressobj(wbits=47)  # gzip or zlib, detected
        else:
            raise FetchError(f"content encoding {encoding[:20]!r}")

    def feed(self, chunk: bytes) -> None:
        if self.inflate is None:
            self._add(chunk)
            return
        try:
            while chunk:
                room = self.limit - len(self.data) + 1
                self._add(self.inflate.decompress(chunk, room))
                chunk = self.inflate.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(f"bad compressed body: {exc}") from None

    def _add(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > self.limit:
            raise FetchTooLarge(f"more than {self.limit} bytes")

    def finish(self) -> bytes:
        if self.inflate is not None:
            try:
                self._add(self.inflate.flush())
            except zlib.error as exc:
                raise FetchError(f"bad compressed body: {exc}") from None
        return bytes(self.data)


async def fetch_public(
    url: str,
    *,
    policy: AddressPolicy | None = None,
    max_bytes: int = 2_000_000,
    timeout: float = 20.0,
    max_redirects: int = 3,
    accept: str = "*/*",
) -> bytes:
    """GET ``url`` and return its body, within the limits above.

    Raises :class:`FetchRefused`, :class:`FetchTooLarge`, :class:`FetchTimeout`
    or :class:`FetchError` (status not 200, connection failed, ...).
    """
    guard = _Guard(policy or AddressPolicy())
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(url, guard, max_bytes, max_redirects, accept)
    except TimeoutError:
        raise FetchTimeout(f"no complete answer within {timeout:g} s") from None


async def _fetch(url: str, guard: _Guard, max_bytes: int, max_redirects: int, accept: str) -> bytes:
    connector = aiohttp.TCPConnector(socket_factory=guard, use_dns_cache=False, limit=1)
    headers = {"Accept": accept, "Accept-Encoding": "gzip, deflate"}
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, trust_env=False
    ) as session:
        for _ in range(max_redirects + 1):
            problem = check_url(url)
            if problem is not None:
                raise FetchRefused(problem)
            try:
                async with session.get(url, headers=headers, allow_redirects=False) as resp:
                    if resp.status in REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchError(f"redirect {resp.status} without Location")
                        url = urljoin(url, location)
                        continue
                    if resp.status != 200:
                        raise FetchError(f"HTTP status {resp.status}")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise FetchTooLarge(f"Content-Length {resp.content_length}")
                    body = _Body(resp.headers.get("Content-Encoding", ""), max_bytes)
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        body.feed(chunk)
                    return body.finish()
            except aiohttp.ClientError as exc:
                if guard.refused:
                    raise FetchRefused(guard.refused[-1]) from None
                raise FetchError(f"{type(exc).__name__}: {exc}"[:300]) from None
        raise FetchRefused(f"more than {max_redirects} redirects")
