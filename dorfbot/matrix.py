"""The bot's Matrix client and the one sending API (SPEC section 5).

Every message dorfbot sends goes through :class:`Matrix`. Callers say what a
message is *for*; the Matrix form (msgtype, mentions, reply relation) is
decided here and nowhere else:

=============  ===========  ==================================================
method         msgtype      for
=============  ===========  ==================================================
``answer``     ``m.notice`` a direct answer to a command, as a reply to it (the
                            asker is looking; notices never push)
``note``       ``m.notice`` the bot's own bookkeeping: progress, status lines
``tell``       ``m.text``   telling people something they did not just ask for
                            (queue items, outcomes, welcome, reminders): their
                            pills in the text and ``m.mentions.user_ids``, so
                            the homeserver pushes it to them as a mention
``publish``    ``m.text``   a published post, event or announcement: a normal
                            message, no mention
``alert``      ``m.text``   a push alert: ``@room`` and ``m.mentions.room``
=============  ===========  ==================================================

``edit`` replaces one of the bot's messages and keeps the form of the intent
it was sent with; an edit never pushes again (its top-level ``m.mentions`` is
empty, the mentions live in ``m.new_content``). The reason ``tell`` is never
an ``m.notice``: the default push rule ``.m.rule.suppress_notices`` silences
every notice, even one that mentions the reader.

Further rules kept here:

- user content is escaped by :mod:`dorfbot.i18n` before it reaches here as a
  :class:`~dorfbot.i18n.Text`;
- every send carries a transaction ID derived from what caused it, so a resend
  after a crash is deduplicated by the homeserver;
- every method returns a :class:`Sent` at once while an event is handled: the
  message goes out through the bounded in-flight window of
  :mod:`dorfbot.outbox` (order kept per room and person, stored with the
  event's handled mark until delivered), so the sync loop handles the next
  command during this one's round trip; outside an event (jobs, schedules)
  the method returns once the message is delivered;
- ``M_LIMIT_EXCEEDED`` is retried after ``retry_after_ms`` and shrinks the
  window; lost connections are retried with a bounded backoff (matrix-nio's own
  retry loop, configured here).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nio
from nio.api import RelationshipType

from dorfbot.i18n import Text
from dorfbot.outbox import DEFAULT_WINDOW, Outgoing, SendWindow

log = logging.getLogger(__name__)

ROOM_MENTION_POWER = "room"


class Intent(StrEnum):
    """What a message is for; :class:`Matrix` derives its Matrix form from this."""

    ANSWER = "answer"
    NOTE = "note"
    TELL = "tell"
    PUBLISH = "publish"
    ALERT = "alert"

    @property
    def msgtype(self) -> str:
        return "m.notice" if self in (Intent.ANSWER, Intent.NOTE) else "m.text"


def permalink(user_id: str) -> str:
    """The ``matrix.to`` link of a user, as pills use it."""
    return "https://matrix.to/#/" + quote(user_id, safe="@:")


def pill(user_id: str, name: str | None = None) -> Text:
    """A mention pill: a link clients show as the person's name.

    A pill alone pushes nobody; :meth:`Matrix.tell` adds ``m.mentions``.
    """
    label = name or user_id
    href = html.escape(permalink(user_id), quote=True)
    return Text(label, f'<a href="{href}">{html.escape(label, quote=True)}</a>')


_KEY_NOISE = dict.fromkeys([0xFE0F, 0xFE0E, *range(0x1F3FB, 0x1F400)])


def reaction_key(key: str) -> str:
    """A reaction key as compared: without variation selectors and skin tones.

    Element X sends 👍 as U+1F44D U+FE0F and ✅ as U+2705 U+FE0F; a skin tone
    (U+1F3FB-U+1F3FF) does not change what the reaction means.
    """
    return key.translate(_KEY_NOISE)


class MatrixError(Exception):
    """A Matrix request failed for good (not a rate limit or a lost connection)."""

    def __init__(self, message: str, errcode: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.body = body
        """The homeserver's JSON answer, if any (e.g. the session of a 401 for UIA)."""


@dataclass(frozen=True)
class Session:
    """Access token and device, kept in ``data/session.json`` across restarts."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str

    @classmethod
    def load(cls, path: Path) -> Session | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.__dict__, fh)
        tmp.replace(path)


def txn_id(*parts: object) -> str:
    """A deterministic transaction ID from what caused a send (event ID, purpose, ...)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"dorfbot.{digest}"


_AFTER_DELIVERY: set[asyncio.Task[None]] = set()


class Sent:
    """A message on its way; what every sending method of :class:`Matrix` returns.

    While an event is handled the message is queued and delivered in the
    background, so a handler does not wait for the round trip. A caller that
    needs the new event's ID (to edit, react to or store it), or must know that
    the homeserver took the message, awaits :meth:`event_id`.
    """

    def __init__(self, room_id: str, txn_id: str, future: asyncio.Future[str]) -> None:
        self.room_id = room_id
        self.txn_id = txn_id
        self._future = future

    @classmethod
    def delivered(cls, room_id: str, event_id: str, txn_id: str = "") -> Sent:
        """A message the homeserver already has (used by test doubles too)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.set_result(event_id)
        return cls(room_id, txn_id, future)

    @property
    def done(self) -> bool:
        return self._future.done()

    def then(self, record: Callable[[str], Awaitable[None]]) -> None:
        """Call ``record(event_id)`` once delivered (at once if it is), without waiting here.

        For bookkeeping that needs the event's ID but must not hold up the
        command loop (``ItemStore.record_sent``). Nothing is called for a send
        the homeserver refused.
        """

        async def later() -> None:
            try:
                event_id = await self.event_id()
            except MatrixError:
                return
            try:
                await record(event_id)
            except Exception:
                log.exception("recording the delivered message %s failed", event_id)

        task = asyncio.create_task(later(), name="dorfbot-sent-then")
        _AFTER_DELIVERY.add(task)
        task.add_done_callback(_AFTER_DELIVERY.discard)

    async def event_id(self) -> str:
        """The event's ID once delivered; raises :class:`MatrixError` if it was refused."""
        try:
            return await asyncio.shield(self._future)
        except MatrixError:
            raise
        except asyncio.CancelledError:
            if self._future.cancelled():
                raise MatrixError(f"send to {self.room_id} stopped with the bot") from None
            raise
        except Exception as exc:
            raise MatrixError(f"send to {self.room_id}: {exc}") from exc


def _check(response: Any, what: str) -> Any:
    if isinstance(response, nio.ErrorResponse):
        raise MatrixError(f"{what}: {response.message}", getattr(response, "status_code", None))
    return response


class Matrix:
    """matrix-nio underneath, the bot's sending API on top."""

    def __init__(
        self,
        homeserver: str,
        user_id: str,
        data_dir: Path,
        *,
        device_name: str = "dorfbot",
        encryption: bool = True,
        trust: str = "all",
        send_window: int = DEFAULT_WINDOW,
    ) -> None:
        self.data_dir = data_dir
        self.trust = trust
        self.configured_user_id = user_id
        self.village_rooms: set[str] = set()
        """Configured rooms (filled by the bot): never mistaken for a direct chat."""
        self.device_name = device_name
        self.encryption = encryption
        store = data_dir / "crypto"
        if encryption:
            store.mkdir(parents=True, exist_ok=True)
        config = nio.AsyncClientConfig(
            encryption_enabled=encryption,
            store_sync_tokens=False,  # the database owns the sync token
            max_limit_exceeded=None,  # always honour retry_after_ms
            max_timeouts=None,  # never drop a send on a lost connection ...
            backoff_factor=0.5,
            max_timeout_retry_wait_time=15,  # ... but back off boundedly
            request_timeout=60,
        )
        self.client = nio.AsyncClient(
            homeserver, user_id, store_path=str(store) if encryption else "", config=config
        )
        self.ready = asyncio.Event()
        """Set once the first sync has filled room state; sends wait for it."""
        self.window = SendWindow(self._deliver, send_window)
        """The sends in flight (:mod:`dorfbot.outbox`)."""
        self.client.add_response_callback(self._on_send_error, nio.RoomSendError)

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    # ------------------------------------------------------------------ session

    def _crypto_store_missing(self, session: Session) -> bool:
        store = self.data_dir / "crypto" / f"{session.user_id}_{session.device_id}.db"
        return self.encryption and not store.exists()

    async def login(self, password: str | None, access_token: str | None) -> Session:
        """Reuse the stored session, or log in once and store it.

        A session whose encryption store has gone missing is not reused: its
        device's keys are lost, so the bot logs in as a new device instead of
        failing to upload keys again and again.
        """
        path = self.data_dir / "session.json"
        session = Session.load(path)
        if session and self._crypto_store_missing(session) and password:
            log.error(
                "The encryption store of device %s is missing (%s). Its keys are lost, so "
                "the bot logs in as a new device. Residents may see a new, unverified "
                "device of the bot; messages encrypted for the old device cannot be read. "
                "Keep data/crypto/ in your backups to avoid this.",
                session.device_id,
                self.data_dir / "crypto",
            )
            session = None
        if session and session.user_id == self.configured_user_id:
            self.client.restore_login(session.user_id, session.device_id, session.access_token)
            self._skip_empty_room_saves()
            whoami = await self.client.whoami()
            if not isinstance(whoami, nio.ErrorResponse):
                return session
            log.warning("stored session is no longer valid (%s); logging in again", whoami.message)
        if access_token:
            self.client.access_token = access_token
            whoami = _check(await self.client.whoami(), "access token")
            session = Session(
                self.client.homeserver, whoami.user_id, whoami.device_id or "", access_token
            )
        elif password:
            resp = _check(await self.client.login(password, device_name=self.device_name), "login")
            session = Session(
                self.client.homeserver, resp.user_id, resp.device_id, resp.access_token
            )
        else:
            raise MatrixError("neither a password nor an access token is configured")
        self.client.restore_login(session.user_id, session.device_id, session.access_token)
        self._skip_empty_room_saves()
        session.save(path)
        return session

    def _skip_empty_room_saves(self) -> None:
        """Skip matrix-nio's store write of "new encrypted rooms" when there are none.

        nio calls ``store.save_encrypted_rooms`` after every sync, mostly with an
        empty set; each call is a blocking SQLite transaction on the event loop
        (about 0.6 ms, more under load), paid before the sync's commands are
        handled. Non-empty sets are saved as before. (Measured by ``bench/``.)
        """
        store = self.client.store
        if store is None:
            return
        save = store.save_encrypted_rooms

        def save_if_any(rooms: Any) -> None:
            if rooms:
                save(rooms)

        store.save_encrypted_rooms = save_if_any

    async def close(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        *,
        key: str | None = None,
        event_type: str = "m.room.message",
    ) -> Sent:
        """Send one event through the window. ``key`` makes the send idempotent.

        While an event is handled this returns as soon as the send is queued;
        otherwise once the homeserver has it (raising :class:`MatrixError` if
        it refused it).
        """
        scope = self.window.current_scope()
        if key:
            tx = key if key.startswith("dorfbot.") else txn_id(key)
        elif scope is not None:
            # derived from the event, so handling it again after a crash sends the same IDs
            tx = txn_id(scope.cause, "send", scope.next_number())
        else:
            tx = f"dorfbot.{uuid.uuid4().hex}"
        out = self.window.pending(tx)
        if out is None:
            out = self.window.submit(
                Outgoing(
                    txn_id=tx,
                    room_id=room_id,
                    lane=scope.lane if scope is not None else "",
                    event_type=event_type,
                    content=content,
                    cause=scope.cause if scope is not None else None,
                    future=asyncio.get_running_loop().create_future(),
                )
            )
        sent = Sent(room_id, tx, out.future)
        if scope is not None:
            scope.outgoing.append(out)
        else:
            await sent.event_id()
        return sent

    async def _deliver(self, out: Outgoing) -> str:
        """The actual ``PUT /send``, called by the window (retries are nio's)."""
        await self.ready.wait()
        if self.trust == "verified":
            self._withhold_keys_from_unverified(out.room_id)
        try:
            resp = await self.client.room_send(
                out.room_id,
                out.event_type,
                out.content,
                tx_id=out.txn_id,
                ignore_unverified_devices=True,
            )
        except nio.LocalProtocolError as exc:
            raise MatrixError(f"send to {out.room_id}: {exc}") from exc
        return str(_check(resp, f"send to {out.room_id}").event_id)

    async def _on_send_error(self, response: Any) -> None:
        """matrix-nio calls this for every refused send, also one it will retry."""
        if getattr(response, "status_code", None) == "M_LIMIT_EXCEEDED":
            self.window.rate_limited(getattr(response, "retry_after_ms", None))

    def _withhold_keys_from_unverified(self, room_id: str) -> None:
        """``trust: verified``: unverified devices of members get no room keys."""
        room = self.client.rooms.get(room_id)
        if room is None or not room.encrypted or self.client.olm is None:
            return
        for user in room.users:
            for device in self.client.device_store.active_user_devices(user):
                if not device.verified and not device.blacklisted:
                    self.client.blacklist_device(device)

    async def get_state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        """The content of a state event, or {} if the room has none."""
        await self.ready.wait()
        resp = await self.client.room_get_state_event(room_id, event_type, state_key)
        if isinstance(resp, nio.ErrorResponse):
            return {}
        return dict(resp.content)

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        await self.ready.wait()
        resp = await self.client.room_put_state(room_id, event_type, content, state_key)
        return str(_check(resp, f"state {event_type} in {room_id}").event_id)

    # Intents. Each returns the new event's ID; ``key`` makes the send idempotent.

    async def answer(
        self, room_id: str, command_event: str, text: Text, *, key: str | None = None
    ) -> Sent:
        """A direct answer to a command: an ``m.notice`` replying to ``command_event``."""
        content = self._content(Intent.ANSWER, text, reply_to=command_event)
        return await self.send(room_id, content, key=key or txn_id(command_event, "reply"))

    async def note(
        self, room_id: str, text: Text, *, key: str | None = None, reply_to: str | None = None
    ) -> Sent:
        """Bookkeeping nobody needs to be pushed about: an ``m.notice``."""
        return await self.send(
            room_id, self._content(Intent.NOTE, text, reply_to=reply_to), key=key
        )

    async def tell(
        self,
        room_id: str,
        text: Text,
        *,
        to: Iterable[str],
        key: str | None = None,
        reply_to: str | None = None,
    ) -> Sent:
        """Tell people something they did not just ask for: it pushes to each of ``to``.

        An ``m.text`` with ``m.mentions.user_ids``; every recipient the text
        does not show as a pill already is put in front of it as one. With
        nobody in ``to`` it is a normal message, like :meth:`publish`.
        """
        content = self._content(
            Intent.TELL, text, to=self._recipients(to), room_id=room_id, reply_to=reply_to
        )
        return await self.send(room_id, content, key=key)

    async def publish(self, room_id: str, text: Text, *, key: str | None = None) -> Sent:
        """A published post, event or announcement: an ``m.text`` without mentions."""
        return await self.send(room_id, self._content(Intent.PUBLISH, text), key=key)

    async def alert(self, room_id: str, text: Text, *, key: str | None = None) -> Sent:
        """A push alert: ``@room`` in the body and ``m.mentions.room``."""
        return await self.send(room_id, self._content(Intent.ALERT, text), key=key)

    async def edit(
        self,
        room_id: str,
        event_id: str,
        text: Text,
        *,
        intent: Intent,
        to: Iterable[str] = (),
        key: str | None = None,
    ) -> Sent:
        """Replace one of the bot's messages, sent with ``intent`` (and ``to``, for tell).

        The replacement keeps the original's form; the edit itself mentions
        nobody, so it never pushes again.
        """
        recipients = self._recipients(to) if intent == Intent.TELL else []
        new = self._content(intent, text, to=recipients, room_id=room_id)
        fallback = Text("* " + new["body"], new["formatted_body"])
        content = {
            **self._content(Intent.NOTE, fallback),
            "msgtype": new["msgtype"],
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
            "m.mentions": {},
        }
        return await self.send(room_id, content, key=key)

    def _recipients(self, to: Iterable[str]) -> list[str]:
        return [u for u in dict.fromkeys(to) if u != self.user_id]

    def _content(
        self,
        intent: Intent,
        text: Text,
        *,
        to: list[str] | None = None,
        room_id: str | None = None,
        reply_to: str | None = None,
    ) -> dict[str, Any]:
        """The ``m.room.message`` content for a text sent with ``intent``."""
        mentions: dict[str, Any] = {}
        if intent == Intent.TELL and to:
            missing = [u for u in to if f'href="{permalink(u)}"' not in text.html]
            if missing:
                names = Text.join([self._pill(room_id, u) for u in missing], Text(", ", ", "))
                text = names + Text(": ", ": ") + text
            mentions = {"user_ids": to}
        elif intent == Intent.ALERT:
            text = Text("@room ", "@room ") + text
            mentions = {"room": True}
        content: dict[str, Any] = {
            "msgtype": intent.msgtype,
            "body": text.plain,
            "format": "org.matrix.custom.html",
            "formatted_body": text.html,
            "m.mentions": mentions,
        }
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return content

    def _pill(self, room_id: str | None, user_id: str) -> Text:
        """A pill labelled with the person's display name in the room, if known."""
        room = self.client.rooms.get(room_id) if room_id else None
        member = room.users.get(user_id) if room else None
        name = member.display_name if member is not None else None
        return pill(user_id, name if name and name != user_id else None)

    async def react(
        self, room_id: str, event_id: str, emoji: str, *, key: str | None = None
    ) -> Sent:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": emoji}}
        return await self.send(room_id, content, key=key, event_type="m.reaction")

    async def redact(
        self, room_id: str, event_id: str, reason: str | None = None, *, key: str | None = None
    ) -> None:
        await self.ready.wait()
        resp = await self.client.room_redact(
            room_id, event_id, reason=reason, tx_id=txn_id(key) if key else None
        )
        _check(resp, f"redact {event_id}")

    async def edits_of(self, room_id: str, event_id: str) -> list[str]:
        """The event IDs of the bot's own edits (``m.replace``) of ``event_id``.

        Redacting a message leaves its edits, and so the text they carry, in
        the room's history; whoever redacts for good redacts these too.
        """
        await self.ready.wait()
        found: list[str] = []
        try:
            async for event in self.client.room_get_event_relations(
                room_id, event_id, RelationshipType.replacement
            ):
                if getattr(event, "sender", None) == self.user_id:
                    found.append(str(event.event_id))
        except AttributeError as exc:  # nio reads next_batch of an error response
            raise MatrixError(f"relations of {event_id}: request failed") from exc
        return found

    async def send_file(
        self,
        room_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
        *,
        key: str | None = None,
        body: str | None = None,
    ) -> Sent:
        """Upload a file and post it (used for data exports)."""
        await self.ready.wait()
        room = self.client.rooms.get(room_id)
        encrypted = bool(room and room.encrypted and self.encryption)
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": body or filename,
            "filename": filename,
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        if encrypted:
            from nio.crypto import attachments

            ciphertext, keys = attachments.encrypt_attachment(data)
            upload, _ = await self.client.upload(
                lambda *_: ciphertext,
                content_type="application/octet-stream",
                filename=filename,
                filesize=len(ciphertext),
            )
            _check(upload, "upload")
            content["file"] = {"url": upload.content_uri, **keys, "mimetype": mimetype}
        else:
            upload, _ = await self.client.upload(
                lambda *_: data, content_type=mimetype, filename=filename, filesize=len(data)
            )
            _check(upload, "upload")
            content["url"] = upload.content_uri
        return await self.send(room_id, content, key=key)

    async def download(self, mxc: str) -> bytes:
        resp = await self.client.download(mxc)
        return bytes(_check(resp, f"download {mxc}").body)

    async def download_attachment(self, content: dict[str, Any]) -> bytes:
        """The bytes of an ``m.file``/``m.image`` message, decrypted if it came encrypted."""
        file = content.get("file")
        if isinstance(file, dict) and isinstance(file.get("url"), str):
            from nio.crypto import attachments

            data = await self.download(file["url"])
            try:
                return bytes(
                    attachments.decrypt_attachment(
                        data, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise MatrixError(f"cannot decrypt attachment: {exc}") from exc
        url = content.get("url")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            raise MatrixError("message carries no attachment")
        return await self.download(url)

    # ------------------------------------------------------------------ rooms

    async def open_private_room(
        self,
        invite: list[str],
        name: str,
        *,
        topic: str | None = None,
    ) -> str:
        """Create a private room for several people (never a DM), return its ID."""
        await self.ready.wait()
        resp = await self.client.room_create(
            name=name,
            topic=topic,
            invite=invite,
            preset=nio.RoomPreset.trusted_private_chat,
        )
        room_id = str(_check(resp, "create room").room_id)
        # The sync loop may be busy handling the very command that asked for this
        # room, so nio would not know it before our next send; register it now
        # (unencrypted, as created) and let the next sync fill in its state.
        self.client.rooms.setdefault(room_id, nio.MatrixRoom(room_id, self.user_id))
        return room_id

    async def create_direct_room(self, user_id: str, name: str) -> str:
        """Create an invite-only DM with ``user_id``, encrypted when encryption is on.

        Only :class:`dorfbot.direct.DirectRooms` calls this; it records the room.
        """
        await self.ready.wait()
        state: list[dict[str, Any]] = []
        if self.encryption:
            state.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        resp = await self.client.room_create(
            name=name,
            invite=[user_id],
            is_direct=True,
            preset=nio.RoomPreset.trusted_private_chat,
            initial_state=state,
        )
        room_id = str(_check(resp, "create room").room_id)
        # The sync loop may be busy handling the very command that asked for this
        # room, so nio would not know it before our next send: register it as
        # created (members, rules, encryption); the next sync confirms it. The
        # invited person's devices must be known, or they get no room key.
        room = self.client.rooms.setdefault(room_id, nio.MatrixRoom(room_id, self.user_id))
        room.join_rule = "invite"
        room.history_visibility = "shared"
        room.add_member(self.user_id, None, None)
        room.add_member(user_id, None, None, invited=True)
        if state and self.client.olm is not None:
            room.encrypted = True
            room.members_synced = True
            self.client.olm.update_tracked_users(room)
            if self.client.should_query_keys:
                await self.client.keys_query()
        return room_id

    async def _api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> Any:
        """A client-server API request matrix-nio has no method for; returns the JSON.

        Only the named methods below call it: the paths and their escaping stay here.
        As the bot, or with ``token`` as a server admin (Synapse's admin API).
        Never retried: a 429 raises ``M_LIMIT_EXCEEDED``.
        """
        headers = {"Authorization": f"Bearer {token or self.client.access_token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        resp = await self.client.send(method, path, data, headers=headers)
        try:
            answer = await resp.json(content_type=None)
        except ValueError:
            answer = None
        finally:
            resp.release()
        if resp.status >= 400:
            errcode = answer.get("errcode") if isinstance(answer, dict) else None
            raise MatrixError(f"{method} {path}: HTTP {resp.status} {answer}", errcode, answer)
        return answer

    # ------------------------------------------------------------ rate limits

    async def probe_message_rate(self, messages: int) -> tuple[int, int | None]:
        """Send up to ``messages`` notices in a row, unretried, into a fresh private room.

        Returns how many were accepted before the first ``M_LIMIT_EXCEEDED`` and
        its ``retry_after_ms``; the room is left and forgotten afterwards.
        """
        created = await self._api(
            "POST",
            "/_matrix/client/v3/createRoom",
            {
                "preset": "private_chat",
                "name": "dorfbot: rate-limit check",
                "visibility": "private",
            },
        )
        room = quote(str(created["room_id"]), safe="")
        accepted, retry_after = 0, None
        try:
            for n in range(messages):
                path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn_id(uuid.uuid4())}"
                body = {"msgtype": "m.notice", "body": f"rate-limit check {n + 1}/{messages}"}
                try:
                    await self._api("PUT", path, body)
                except MatrixError as exc:
                    if exc.errcode != "M_LIMIT_EXCEEDED":
                        raise
                    answer = exc.body if isinstance(exc.body, dict) else {}
                    value = answer.get("retry_after_ms")
                    retry_after = int(value) if isinstance(value, int) else None
                    break
                accepted += 1
        finally:
            try:
                await self._api("POST", f"/_matrix/client/v3/rooms/{room}/leave", {})
                await self._api("POST", f"/_matrix/client/v3/rooms/{room}/forget", {})
            except MatrixError as exc:
                log.info("could not leave the rate-limit check room: %s", exc)
        return accepted, retry_after

    def ratelimit_override_url(self) -> str:
        """Synapse's admin API for the bot's own message rate limit."""
        user = quote(self.user_id, safe="")
        base = self.client.homeserver.rstrip("/")
        return f"{base}/_synapse/admin/v1/users/{user}/override_ratelimit"

    async def ratelimit_override(
        self, admin_token: str, set_to: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """The bot's override (``{}``: none), or set it first (as a server admin)."""
        path = f"/_synapse/admin/v1/users/{quote(self.user_id, safe='')}/override_ratelimit"
        if set_to is not None:
            await self._api("POST", path, set_to, token=admin_token)
        answer = await self._api("GET", path, token=admin_token)
        return dict(answer) if isinstance(answer, dict) else {}

    def _account_data_path(self, event_type: str) -> str:
        user = quote(self.user_id, safe="")
        return f"/_matrix/client/v3/user/{user}/account_data/{quote(event_type, safe='')}"

    async def set_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        """Replace the bot's global account data of ``event_type`` (e.g. ``m.direct``)."""
        await self._api("PUT", self._account_data_path(event_type), content)

    async def get_account_data(self, event_type: str) -> dict[str, Any]:
        """The bot's global account data of ``event_type``, or {} if it has none."""
        try:
            answer = await self._api("GET", self._account_data_path(event_type))
        except MatrixError as exc:
            if exc.errcode == "M_NOT_FOUND":
                return {}
            raise
        return dict(answer) if isinstance(answer, dict) else {}

    # ------------------------------------------------------------------ keys

    async def upload_signing_keys(self, keys: dict[str, Any], password: str) -> None:
        """Upload the bot's cross-signing public keys (``/keys/device_signing/upload``).

        ``keys`` holds ``master_key``, ``self_signing_key`` and ``user_signing_key``.
        The homeserver asks for user-interactive auth; the bot answers with its
        password.
        """
        path = "/_matrix/client/v3/keys/device_signing/upload"
        try:
            await self._api("POST", path, keys)
        except MatrixError as exc:
            session = exc.body.get("session") if isinstance(exc.body, dict) else None
            if session is None:
                raise
            auth = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": password,
                "session": session,
            }
            await self._api("POST", path, {**keys, "auth": auth})

    async def own_device_keys(self) -> dict[str, Any] | None:
        """The current device's keys as the homeserver publishes them (``/keys/query``)."""
        user_id, device_id = self.user_id, str(self.client.device_id)
        answer = await self._api(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: [device_id]}}
        )
        device = ((answer or {}).get("device_keys") or {}).get(user_id, {}).get(device_id)
        return dict(device) if isinstance(device, dict) else None

    async def upload_signatures(self, signed: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Upload signed keys of the bot's own (``/keys/signatures/upload``).

        ``signed`` maps key or device IDs to the signed key objects; returns the
        homeserver's ``failures`` (empty when every signature was accepted).
        """
        answer = await self._api(
            "POST", "/_matrix/client/v3/keys/signatures/upload", {self.user_id: signed}
        )
        failures = (answer or {}).get("failures") if isinstance(answer, dict) else None
        return dict(failures) if isinstance(failures, dict) else {}

    async def join(self, room_id: str) -> str:
        return str(_check(await self.client.join(room_id), f"join {room_id}").room_id)

    async def leave(self, room_id: str) -> None:
        _check(await self.client.room_leave(room_id), f"leave {room_id}")

    async def resolve(self, room: str) -> str:
        """A room ID for an ID or alias."""
        if room.startswith("!"):
            return room
        resp = await self.client.room_resolve_alias(room)
        return str(_check(resp, f"resolve {room}").room_id)

    def power_level(self, room_id: str, user_id: str) -> int | None:
        room = self.client.rooms.get(room_id)
        if room is None:
            return None
        return int(room.power_levels.get_user_level(user_id))

    def can_alert(self, room_id: str) -> bool:
        """Whether the bot may use ``@room`` in a room (notifications.room power)."""
        room = self.client.rooms.get(room_id)
        if room is None:
            return False
        levels = room.power_levels
        needed = int(levels.get_notification_required_level("room"))
        return int(levels.get_user_level(self.user_id)) >= needed

    def members(self, room_id: str) -> set[str]:
        """Who is in a room, joined or invited."""
        room = self.client.rooms.get(room_id)
        return set(room.users) if room else set()

    def joined_members(self, room_id: str) -> set[str]:
        """Who has joined a room (only they are pushed for its messages)."""
        room = self.client.rooms.get(room_id)
        return set(room.users) - set(room.invited_users) if room else set()

    async def set_pinned(self, room_id: str, event_ids: list[str]) -> None:
        await self.put_state(room_id, "m.room.pinned_events", {"pinned": event_ids})
