"""A scripted Matrix user ("resident") for tests and benchmarks.

:class:`Resident` wraps a real :class:`nio.AsyncClient` logged in to a
:class:`~dorfbot.testing.homeserver.Homeserver`. It syncs in the background,
records every timeline event of every joined room (as raw event dicts), joins
rooms it is invited to, and offers small helpers to send messages and wait for
the bot's answers::

    alice = await Resident.create(hs, "alice")
    room_id = await alice.create_room(name="Dorfplatz", invite=[bot_user_id])
    reply = await alice.command(room_id, "!help")
    assert "market" in reply["content"]["body"]
    await alice.close()

Encrypted rooms work too: decrypted events are recorded in their clear form
(see :meth:`Resident.was_encrypted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    MessageDirection,
    RoomPreset,
    SyncResponse,
)
from nio.crypto import ENCRYPTION_ENABLED

from dorfbot.testing.homeserver import Homeserver

__all__ = ["EventPredicate", "Resident", "ResidentError", "body_of", "reply_target"]

log = logging.getLogger(__name__)

#: A test on a raw event dict, as used by :meth:`Resident.wait_for`.
EventPredicate = Callable[[dict[str, Any]], bool]

#: Synapse caps a sync's timeline at 100 events per room whatever we ask for;
#: gaps (``limited`` timelines) are filled from ``/messages`` instead.
_SYNC_FILTER: dict[str, Any] = {"room": {"timeline": {"limit": 500}}}
_SYNC_TIMEOUT_MS = 30_000
_BACKFILL_PAGE = 100
_BACKFILL_MAX_PAGES = 50


class ResidentError(RuntimeError):
    """A request of a :class:`Resident` failed (the homeserver said no)."""


def reply_target(event: Mapping[str, Any]) -> str | None:
    """Return the event ID ``event`` replies to (``m.in_reply_to``), if any."""
    relates = event.get("content", {}).get("m.relates_to")
    if not isinstance(relates, Mapping):
        return None
    in_reply_to = relates.get("m.in_reply_to")
    if not isinstance(in_reply_to, Mapping):
        return None
    target = in_reply_to.get("event_id")
    return target if isinstance(target, str) else None


def body_of(event: Mapping[str, Any]) -> str | None:
    """Return ``content.body`` of an event, if it has a string body."""
    body = event.get("content", {}).get("body")
    return body if isinstance(body, str) else None


def _check(resp: Any, what: str) -> Any:
    """Raise :class:`ResidentError` if ``resp`` is a nio error response."""
    if isinstance(resp, ErrorResponse):
        code = f"{resp.status_code}: " if resp.status_code else ""
        raise ResidentError(f"{what} failed: {code}{resp.message}")
    return resp


def _describe(event: Mapping[str, Any]) -> str:
    body = body_of(event)
    text = body if body is not None else event.get("content")
    return f"{event.get('sender')} {event.get('type')}: {str(text)[:120]!r}"


class Resident:
    """A logged-in Matrix user driven by a test.

    Create instances with :meth:`create`. Attributes ``user_id``,
    ``password`` and ``client`` (the underlying :class:`nio.AsyncClient`) are
    public; the client can be used directly for anything not wrapped here.
    """

    def __init__(
        self,
        homeserver_url: str,
        client: AsyncClient,
        *,
        password: str,
        auto_join: bool = True,
    ) -> None:
        """Wrap a logged-in ``client``; prefer :meth:`create`."""
        self.homeserver_url = homeserver_url
        self.client = client
        self.user_id: str = client.user_id
        self.password = password
        self.auto_join = auto_join

        self._events: dict[str, list[dict[str, Any]]] = {}
        self._seen_ids: set[str] = set()
        self._decrypted_ids: set[str] = set()
        self._joined: set[str] = set()
        self._invited: set[str] = set()
        self._joining: set[str] = set()
        self._sync_count = 0
        self._last_sync_error: str | None = None
        self._sync_crash: BaseException | None = None
        self._changed = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        #: How many times a ``limited`` sync timeline had to be back-filled.
        self.gaps_filled = 0

    # -- construction and lifecycle ---------------------------------------

    @classmethod
    async def create(
        cls,
        hs: Homeserver,
        localpart: str | None = None,
        password: str = "secret-pw",
        *,
        store_dir: Path | None = None,
        auto_join: bool = True,
        admin: bool = False,
        displayname: str | None = None,
        register: bool = True,
        start: bool = True,
        exempt_from_rate_limits: bool | None = None,
    ) -> Resident:
        """Register (unless ``register=False``) and log in a new resident.

        Args:
            hs: The running homeserver.
            localpart: User name; a unique ``resident-…`` name if omitted.
            password: The account password.
            store_dir: Directory for nio's encryption store. If omitted, an
                in-memory store is used (enough for one test's lifetime).
            auto_join: Join rooms as soon as an invite arrives.
            admin: Register the user as a server admin.
            displayname: Display name set at registration.
            register: Set to False to log in to an existing account.
            start: Start background syncing and wait for the first sync.
            exempt_from_rate_limits: Lift the message rate limit for this
                user; by default only on a ``strict_rate_limits`` server, so
                that only the bot under test gets throttled.
        """
        localpart = localpart or f"resident-{uuid.uuid4().hex[:12]}"
        if register:
            # urllib is blocking; keep the event loop responsive meanwhile.
            await asyncio.to_thread(
                hs.register, localpart, password, admin=admin, displayname=displayname
            )
        user_id = hs.user_id(localpart)
        if exempt_from_rate_limits is None:
            exempt_from_rate_limits = hs.strict_rate_limits
        if exempt_from_rate_limits:
            await asyncio.to_thread(hs.exempt_from_rate_limits, user_id)

        config_kwargs: dict[str, Any] = {
            # Come back quickly after a homeserver outage (nio's default: 60 s).
            "max_timeout_retry_wait_time": 1.0,
            "store_sync_tokens": False,
            "encryption_enabled": ENCRYPTION_ENABLED,
        }
        store_path = ""
        if ENCRYPTION_ENABLED:
            from nio.store import DefaultStore, SqliteMemoryStore

            if store_dir is None:
                config_kwargs["store"] = SqliteMemoryStore
            else:
                await asyncio.to_thread(store_dir.mkdir, parents=True, exist_ok=True)
                config_kwargs["store"] = DefaultStore
                store_path = str(store_dir)

        client = AsyncClient(
            hs.url,
            user_id,
            store_path=store_path,
            config=AsyncClientConfig(**config_kwargs),
        )
        resident = cls(hs.url, client, password=password, auto_join=auto_join)
        try:
            _check(await client.login(password, device_name="dorfbot test resident"), "login")
            resident.user_id = client.user_id
            if start:
                await resident.start()
        except BaseException:
            await resident.close()
            raise
        return resident

    async def start(self, timeout: float = 30.0) -> None:
        """Start the background sync loop (idempotent) and wait for one sync."""
        if self._sync_task is not None and not self._sync_task.done():
            return
        self._sync_crash = None
        target = self._sync_count + 1
        self._sync_task = asyncio.create_task(
            self._sync_loop(), name=f"resident-sync-{self.user_id}"
        )
        await self._wait_until(
            lambda: self._sync_count >= target, timeout, f"{self.user_id}: first sync"
        )

    async def stop(self) -> None:
        """Stop background syncing; recorded events are kept."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self) -> None:
        """Stop syncing and release the client, HTTP session and temp store."""
        if self._closed:
            return
        self._closed = True
        await self.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Resident:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Resident {self.user_id} rooms={len(self._joined)}>"

    # -- state -------------------------------------------------------------

    @property
    def access_token(self) -> str:
        """The resident's access token."""
        return str(self.client.access_token)

    @property
    def device_id(self) -> str:
        """The resident's device ID."""
        return str(self.client.device_id)

    @property
    def joined_rooms(self) -> set[str]:
        """Rooms the resident has joined, as seen by its sync."""
        return set(self._joined)

    @property
    def invited_rooms(self) -> set[str]:
        """Rooms the resident is invited to and has not joined (yet)."""
        return set(self._invited)

    @property
    def sync_count(self) -> int:
        """Number of completed syncs."""
        return self._sync_count

    @property
    def last_sync_error(self) -> str | None:
        """The most recent sync error, if the last sync failed."""
        return self._last_sync_error

    def events(self, room_id: str) -> list[dict[str, Any]]:
        """All recorded timeline events of ``room_id``, oldest first."""
        return list(self._events.get(room_id, ()))

    def messages(self, room_id: str) -> list[dict[str, Any]]:
        """Recorded ``m.room.message`` events of ``room_id``, oldest first."""
        return [e for e in self._events.get(room_id, ()) if e.get("type") == "m.room.message"]

    def replies_to(self, event_id: str, *, sender: str | None = None) -> list[dict[str, Any]]:
        """All recorded events (in any room) that reply to ``event_id``.

        Args:
            event_id: The event replied to.
            sender: Only count replies from this user.
        """
        return [
            e
            for events in self._events.values()
            for e in events
            if reply_target(e) == event_id and (sender is None or e.get("sender") == sender)
        ]

    def was_encrypted(self, event_id: str) -> bool:
        """Whether the recorded event arrived encrypted and was decrypted."""
        return event_id in self._decrypted_ids

    # -- waiting -----------------------------------------------------------

    async def wait_for(
        self,
        room_id: str,
        predicate: EventPredicate,
        timeout: float = 15.0,
        *,
        after: str | None = None,
    ) -> dict[str, Any]:
        """Return the first recorded event in ``room_id`` matching ``predicate``.

        Events recorded before the call count too. With ``after``, only
        events recorded after the event with that ID are considered.

        Raises:
            TimeoutError: nothing matched in time; lists the latest events.
        """
        found: list[dict[str, Any]] = []

        def check() -> bool:
            events = self._events.get(room_id, [])
            start = 0
            if after is not None:
                for index, event in enumerate(events):
                    if event.get("event_id") == after:
                        start = index + 1
                        break
                else:
                    return False
            for event in events[start:]:
                if predicate(event):
                    found.append(event)
                    return True
            return False

        await self._wait_until(check, timeout, f"{self.user_id}: event in {room_id}", room_id)
        return found[0]

    async def wait_joined(self, room_id: str, timeout: float = 15.0) -> None:
        """Wait until the resident's sync shows it joined ``room_id``."""
        await self._wait_until(
            lambda: room_id in self._joined, timeout, f"{self.user_id}: join {room_id}"
        )

    async def wait_invited(self, room_id: str | None = None, timeout: float = 15.0) -> str:
        """Wait for an invite (to ``room_id``, or to any room); return the room ID.

        Only useful with ``auto_join=False``; otherwise invites are accepted.
        """
        found: list[str] = []

        def check() -> bool:
            rooms = self._invited if room_id is None else self._invited & {room_id}
            if rooms:
                found.append(next(iter(rooms)))
                return True
            return False

        await self._wait_until(check, timeout, f"{self.user_id}: invite")
        return found[0]

    async def wait_synced(self, count: int = 1, timeout: float = 45.0) -> None:
        """Wait until ``count`` more syncs have completed."""
        target = self._sync_count + count
        await self._wait_until(
            lambda: self._sync_count >= target, timeout, f"{self.user_id}: {count} sync(s)"
        )

    async def ensure_no_event(
        self,
        room_id: str,
        predicate: EventPredicate,
        duration: float = 2.0,
        *,
        after: str | None = None,
    ) -> None:
        """Assert that no event matching ``predicate`` shows up within ``duration``.

        Raises:
            AssertionError: with the offending event.
        """
        try:
            event = await self.wait_for(room_id, predicate, duration, after=after)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event in {room_id}: {_describe(event)}")

    # -- actions -----------------------------------------------------------

    async def create_room(
        self,
        name: str | None = None,
        invite: Iterable[str] = (),
        power_levels: Mapping[str, Any] | None = None,
        encrypted: bool = False,
        is_direct: bool = False,
        *,
        topic: str | None = None,
        preset: str | None = None,
        room_version: str | None = None,
        initial_state: Iterable[Mapping[str, Any]] = (),
    ) -> str:
        """Create a room, wait until the resident's sync shows it; return its ID.

        Args:
            name: Room name.
            invite: User IDs to invite.
            power_levels: ``power_level_content_override``. The creator is
                dropped from ``users``: since room version 12 creators are
                all-powerful and may not be listed.
            encrypted: Enable Megolm encryption from the start.
            is_direct: Mark the room as a direct chat.
            topic: Room topic.
            preset: ``private_chat``, ``trusted_private_chat`` or ``public_chat``.
            room_version: Room version, default is the server's.
            initial_state: Extra state events.
        """
        state = [dict(s) for s in initial_state]
        if encrypted:
            state.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        override: dict[str, Any] | None = None
        if power_levels is not None:
            override = copy.deepcopy(dict(power_levels))
            users = override.get("users")
            if isinstance(users, dict):
                users.pop(self.user_id, None)
        resp = _check(
            await self.client.room_create(
                name=name,
                topic=topic,
                room_version=room_version,
                is_direct=is_direct,
                preset=RoomPreset(preset) if preset else None,
                invite=list(invite),
                initial_state=state,
                power_level_override=override,
            ),
            "create room",
        )
        room_id = str(resp.room_id)
        await self.wait_joined(room_id)
        return room_id

    async def join(self, room_id: str, timeout: float = 15.0) -> str:
        """Join a room (ID or alias) and wait until the sync shows it; return its ID."""
        resp = _check(await self.client.join(room_id), f"join {room_id}")
        joined = str(resp.room_id)
        await self.wait_joined(joined, timeout)
        return joined

    async def leave(self, room_id: str) -> None:
        """Leave a room."""
        _check(await self.client.room_leave(room_id), f"leave {room_id}")
        self._joined.discard(room_id)

    async def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` to ``room_id``."""
        _check(await self.client.room_invite(room_id, user_id), f"invite {user_id}")

    async def set_power_level(self, room_id: str, user_id: str, level: int) -> str:
        """Set one user's power level in a room; return the state event's ID."""
        resp = _check(
            await self.client.room_get_state_event(room_id, "m.room.power_levels"),
            "get power levels",
        )
        content = copy.deepcopy(resp.content)
        content.setdefault("users", {})[user_id] = level
        return await self.put_state(room_id, "m.room.power_levels", content)

    async def put_state(
        self, room_id: str, event_type: str, content: Mapping[str, Any], state_key: str = ""
    ) -> str:
        """Send a state event; return its ID."""
        resp = _check(
            await self.client.room_put_state(room_id, event_type, dict(content), state_key),
            f"put state {event_type}",
        )
        return str(resp.event_id)

    async def send_event(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> str:
        """Send any room event (encrypted if the room is); return its ID."""
        if self.client.olm is not None and room_id not in self.client.rooms:
            # nio refuses to send before its sync knows the room (it must
            # know whether the room is encrypted).
            await self.wait_joined(room_id)
        resp = _check(
            await self.client.room_send(
                room_id, event_type, dict(content), ignore_unverified_devices=True
            ),
            f"send {event_type}",
        )
        return str(resp.event_id)

    async def send(
        self,
        room_id: str,
        body: str,
        *,
        formatted_body: str | None = None,
        msgtype: str = "m.text",
        extra_content: Mapping[str, Any] | None = None,
    ) -> str:
        """Send an ``m.room.message``; return its event ID.

        ``extra_content`` is merged into the content last (e.g. ``m.mentions``
        or ``m.relates_to``).
        """
        content: dict[str, Any] = {"msgtype": msgtype, "body": body}
        if formatted_body is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = formatted_body
        if extra_content:
            content.update(copy.deepcopy(dict(extra_content)))
        return await self.send_event(room_id, "m.room.message", content)

    async def reply(
        self,
        room_id: str,
        event_id: str,
        body: str,
        *,
        msgtype: str = "m.text",
        extra_content: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a rich reply to ``event_id``; return the reply's event ID."""
        content: dict[str, Any] = {"m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}
        if extra_content:
            content.update(copy.deepcopy(dict(extra_content)))
        return await self.send(room_id, body, msgtype=msgtype, extra_content=content)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        """Annotate ``event_id`` with reaction ``key``; return the reaction's ID."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send_event(room_id, "m.reaction", content)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Redact an event; return the redaction's event ID."""
        resp = _check(await self.client.room_redact(room_id, event_id, reason=reason), "redact")
        return str(resp.event_id)

    async def command(
        self,
        room_id: str,
        body: str,
        timeout: float = 15.0,
        *,
        formatted_body: str | None = None,
        extra_content: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send ``body`` and return the first reply to it from another user.

        A reply is an event whose ``content.m.relates_to.m.in_reply_to.event_id``
        is the sent event's ID.

        Raises:
            TimeoutError: no reply within ``timeout`` seconds.
        """
        sent = await self.send(
            room_id, body, formatted_body=formatted_body, extra_content=extra_content
        )
        return await self.wait_for(
            room_id,
            lambda e: reply_target(e) == sent and e.get("sender") != self.user_id,
            timeout,
        )

    async def download_file(self, content: Mapping[str, Any]) -> bytes:
        """The bytes of an ``m.file`` message's content, decrypted if it came encrypted."""
        file = content.get("file")
        url = file["url"] if isinstance(file, Mapping) else content.get("url")
        resp = _check(await self.client.download(str(url)), f"download {url}")
        data = bytes(resp.body)
        if isinstance(file, Mapping):
            from nio.crypto import attachments

            data = bytes(
                attachments.decrypt_attachment(
                    data, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
                )
            )
        return data

    # -- raw HTTP ----------------------------------------------------------

    async def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Call the homeserver with the resident's access token; return the JSON.

        Raises:
            ResidentError: on an HTTP status >= 400.
        """
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.request(
            method,
            self.homeserver_url + path,
            json=body,
            params=dict(params) if params else None,
            headers={"Authorization": f"Bearer {self.access_token}"},
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ResidentError(f"{method} {path} failed: HTTP {resp.status}: {data}")
            return data

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """``GET`` a client-API path, e.g. ``/_matrix/client/v3/notifications``."""
        return await self.request_json("GET", path, params=params)

    async def notifications(self) -> dict[str, bool]:
        """What the homeserver would push to this person: event ID -> whether a highlight."""
        data = await self.get_json("/_matrix/client/v3/notifications", {"limit": "100"})
        pushed: dict[str, bool] = {}
        for entry in data.get("notifications", []):
            tweaks = [a for a in entry.get("actions", []) if isinstance(a, dict)]
            pushed[entry["event"]["event_id"]] = any(
                a.get("set_tweak") == "highlight" and a.get("value", True) for a in tweaks
            )
        return pushed

    # -- internals ---------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        room_id: str | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            if condition():
                return
            if self._sync_crash is not None:
                raise ResidentError(f"{what}: sync loop crashed") from self._sync_crash
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(what, timeout, room_id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _timeout_message(self, what: str, timeout: float, room_id: str | None) -> str:
        lines = [f"timed out after {timeout:g} s waiting for {what}"]
        if self._sync_task is None:
            lines.append("(background sync is not running)")
        if self._last_sync_error:
            lines.append(f"last sync error: {self._last_sync_error}")
        if room_id is not None:
            recent = self._events.get(room_id, [])[-8:]
            lines.append(f"last {len(recent)} recorded event(s) in {room_id}:")
            lines.extend(f"  {_describe(e)}" for e in recent)
        return "\n".join(lines)

    async def _sync_loop(self) -> None:
        failures = 0
        first = True
        try:
            while True:
                resp = await self.client.sync(
                    timeout=0 if first else _SYNC_TIMEOUT_MS, sync_filter=_SYNC_FILTER
                )
                if not isinstance(resp, SyncResponse):
                    failures += 1
                    self._last_sync_error = str(resp)
                    log.warning("%s: sync failed: %s", self.user_id, resp)
                    self._notify()
                    await asyncio.sleep(min(0.1 * 2**failures, 2.0))
                    continue
                failures = 0
                first = False
                self._last_sync_error = None
                await self._process_sync(resp)
                await self._crypto_housekeeping()
                self._sync_count += 1
                self._notify()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s: sync loop crashed", self.user_id)
            self._sync_crash = exc
            self._notify()
            raise

    async def _crypto_housekeeping(self) -> None:
        client = self.client
        if client.olm is None:
            return
        responses: list[Any] = []
        if client.should_upload_keys:
            responses.append(await client.keys_upload())
        if client.should_query_keys:
            responses.append(await client.keys_query())
        if client.should_claim_keys:
            responses.append(await client.keys_claim(client.get_users_for_key_claiming()))
        responses.extend(await client.send_to_device_messages())
        for resp in responses:
            if isinstance(resp, ErrorResponse):
                log.warning("%s: crypto request failed: %s", self.user_id, resp)

    async def _process_sync(self, resp: SyncResponse) -> None:
        for room_id, info in resp.rooms.join.items():
            newly_joined = room_id not in self._joined
            events = info.timeline.events
            batch = [self._source(e) for e in events]
            if info.timeline.limited and not newly_joined and info.timeline.prev_batch:
                batch = await self._backfill(room_id, info.timeline.prev_batch) + batch
            self._record(room_id, batch)
            self._joined.add(room_id)
            self._invited.discard(room_id)
            self._joining.discard(room_id)
        for room_id, left in resp.rooms.leave.items():
            self._record(room_id, [self._source(e) for e in left.timeline.events])
            self._joined.discard(room_id)
            self._invited.discard(room_id)
        for room_id in resp.rooms.invite:
            if room_id in self._joined:
                continue
            self._invited.add(room_id)
            if self.auto_join and room_id not in self._joining:
                self._joining.add(room_id)
                task = asyncio.create_task(self._auto_join(room_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _source(self, event: Any) -> dict[str, Any]:
        source: dict[str, Any] = dict(getattr(event, "source", None) or {})
        if getattr(event, "decrypted", False) and "event_id" in source:
            self._decrypted_ids.add(source["event_id"])
        source.setdefault("room_id", getattr(event, "room_id", None))
        return source

    def _record(self, room_id: str, sources: list[dict[str, Any]]) -> None:
        recorded = self._events.setdefault(room_id, [])
        for source in sources:
            event_id = source.get("event_id")
            if isinstance(event_id, str):
                if event_id in self._seen_ids:
                    continue
                self._seen_ids.add(event_id)
            if source.get("room_id") is None:
                source["room_id"] = room_id
            recorded.append(source)

    async def _backfill(self, room_id: str, token: str) -> list[dict[str, Any]]:
        """Fetch events skipped by a ``limited`` sync, oldest first."""
        collected: list[dict[str, Any]] = []
        for _ in range(_BACKFILL_MAX_PAGES):
            resp = await self.client.room_messages(
                room_id, start=token, direction=MessageDirection.back, limit=_BACKFILL_PAGE
            )
            if isinstance(resp, ErrorResponse):
                log.warning("%s: back-fill of %s failed: %s", self.user_id, room_id, resp)
                break
            reached_known = False
            for event in resp.chunk:  # newest first
                source = self._source(event)
                if source.get("event_id") in self._seen_ids:
                    reached_known = True
                    break
                collected.append(source)
            if reached_known or not resp.chunk or not resp.end:
                break
            token = resp.end
        self.gaps_filled += 1
        collected.reverse()
        return collected

    async def _auto_join(self, room_id: str) -> None:
        try:
            resp = await self.client.join(room_id)
        except Exception:
            log.exception("%s: auto-join of %s failed", self.user_id, room_id)
            self._joining.discard(room_id)
            return
        if isinstance(resp, ErrorResponse):
            log.warning("%s: auto-join of %s failed: %s", self.user_id, room_id, resp)
            self._joining.discard(room_id)
