"""The moderation queue and the moderators' commands.

Plugins submit items through :class:`Moderation` (``self.bot.moderation``).
Depending on the village's ``moderation`` mode and the author's standing, an
item is published at once or waits in the queue: a message in the village's
moderation room that moderators approve with ``!freigeben <nr>`` or a ✅
reaction, or reject with ``!ablehnen <nr> [grund]`` or ❌. The owning plugin
renders and publishes its items through two hooks,
:meth:`~dorfbot.plugin.Plugin.render_item` and
:meth:`~dorfbot.plugin.Plugin.publish_item`.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from dorfbot import items as states
from dorfbot.commands import Scope, command, is_user_id, parse_number
from dorfbot.config import VillageConfig
from dorfbot.context import CommandContext, ReactionEvent
from dorfbot.i18n import Markup, Text, Translator
from dorfbot.items import MIGRATIONS, Item, ItemStore
from dorfbot.matrix import Intent, MatrixError, txn_id
from dorfbot.plugin import Plugin
from dorfbot.roles import Role

if TYPE_CHECKING:
    from dorfbot.bot import Bot

log = logging.getLogger(__name__)

# Compared after reaction_key(), so "✅️" and "👍🏽" count too.
APPROVE_KEYS = ("✅", "✔", "👍")
REJECT_KEYS = ("❌", "✖", "👎")
#: How often approved items whose message could not be posted are tried again.
PUBLISH_RETRY_SECONDS = 300


def pseudonym(user_id: str) -> str:
    """What a block keeps of a user who asked to be forgotten: enough to keep the block."""
    return "forgotten:" + hashlib.sha256(user_id.encode()).hexdigest()


class Blocked(Exception):
    """The author may not post now: blocked (until ``until``, if set) or over the daily limit.

    ``key`` and ``params`` are the catalog text to reply with.
    """

    def __init__(
        self,
        until: float | None,
        key: str = "moderation.blocked_author",
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(key)
        self.until = until
        self.key = key
        self.params = params or {}


class Moderation:
    """Submitting, approving, rejecting and removing items; the audit log."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.items = ItemStore(bot.db)

    # ------------------------------------------------------------------ queries

    async def blocked_until(self, village: str, user_id: str) -> tuple[bool, float | None]:
        """Whether a user is blocked (also after ``!vergessen``, by pseudonym) and until when."""
        names = (user_id, pseudonym(user_id))
        rows = await self.bot.db.fetchall(
            "SELECT user_id, until FROM blocks WHERE village = ? AND user_id IN (?, ?)",
            (village, *names),
        )
        # Both names may hold a block (blocked again after !vergessen): the one in
        # force decides, the longest (none = for good) first; expired ones go.
        now = time.time()
        blocking: list[float | None] = []
        for row in rows:
            if row["until"] is not None and row["until"] < now:
                await self.bot.db.execute(
                    "DELETE FROM blocks WHERE village = ? AND user_id = ?",
                    (village, row["user_id"]),
                )
            else:
                blocking.append(row["until"])
        if not blocking:
            return False, None
        return True, None if None in blocking else max(u for u in blocking if u is not None)

    async def check_not_blocked(self, village: VillageConfig, user_id: str) -> None:
        """Raise :class:`Blocked` (with the text to reply) if ``user_id`` is blocked here."""
        blocked, until = await self.blocked_until(village.id, user_id)
        if not blocked:
            return
        if until:
            raise Blocked(
                until, "moderation.blocked_author_until", {"until": _local(until, village)}
            )
        raise Blocked(None)

    async def log_action(
        self,
        village: str,
        actor: str,
        action: str,
        *,
        number: int | None = None,
        target: str | None = None,
        reason: str | None = None,
    ) -> None:
        await self.bot.db.execute(
            "INSERT INTO modlog (village, ts, actor, action, number, target_user, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (village, time.time(), actor, action, number, target, reason),
        )

    def owner(self, item: Item) -> Plugin | None:
        return self.bot.plugin(item.plugin)

    def translator(self, village_id: str) -> Translator:
        return self.bot.translator(self.bot.villages.get(village_id))

    async def pending_count(self, village: str) -> int:
        return int(
            await self.bot.db.fetchval(
                "SELECT count(*) FROM items WHERE village = ? AND state = ?",
                (village, states.PENDING),
            )
            or 0
        )

    # ----------------------------------------------------------------- submit

    async def submit(
        self,
        ctx: CommandContext,
        *,
        plugin: str,
        kind: str,
        title: str,
        mode: str,
        body: str = "",
        category: str | None = None,
        district: str | None = None,
        on_behalf_of: str | None = None,
        expires_at: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> Item:
        """Store a new item from a command and queue or publish it.

        Raises :class:`Blocked` for blocked authors. Replies to the author are
        the calling plugin's business; this method tells moderators. The same
        command handled again (after a crash) returns its item and finishes
        what the first attempt may have left undone.
        """
        village = ctx.require_village
        await self.check_not_blocked(village, ctx.sender)
        limit = village.moderation.posts_per_day
        if (
            limit
            and ctx.role < Role.ORGANIZER
            and not await self.items.exists_for_source(ctx.event.event_id)
        ):
            today = await self.items.count_since(village.id, ctx.sender, time.time() - 86400)
            if today >= limit:
                raise Blocked(None, "moderation.daily_limit", {"limit": limit})
        skip = (
            mode != "pre"
            or ctx.role >= Role.ORGANIZER
            or (
                village.moderation.trusted_after > 0
                and await self.items.approved_count(village.id, ctx.sender)
                >= village.moderation.trusted_after
            )
        )
        item, created = await self.items.create(
            village=village.id,
            plugin=plugin,
            kind=kind,
            state=states.PUBLISHED if skip else states.PENDING,
            author=ctx.sender,
            title=title,
            body=body,
            on_behalf_of=on_behalf_of,
            category=category,
            district=district,
            source_room=ctx.room_id,
            source_event=ctx.event.event_id,
            expires_at=expires_at,
            data=data,
        )
        if not created:
            log.info("item %s already stored for this command; finishing it", item.id)
        if item.state == states.PENDING:
            if item.queue_event is None:
                item = await self._post_queue_message(village, item)
        elif item.state == states.PUBLISHED:
            if item.published_event is None:
                item = await self._publish(item)
            if mode == "post" and ctx.role < Role.ORGANIZER and item.queue_event is None:
                item = await self._post_queue_message(village, item, review=True)
        await self._update_pending_metric(village.id)
        return item

    async def _post_queue_message(
        self, village: VillageConfig, item: Item, *, review: bool = False
    ) -> Item:
        room_id = self.bot.villages.room_id(village, "moderation")
        if room_id is None:
            log.warning("village %s has no moderation room; item %s waits", village.id, item.id)
            return item
        t = self.bot.translator(village)
        text = self._queue_text(item, t, review=review)
        sent = await self.bot.matrix.tell(
            room_id, text, to=self._moderators(village, item), key=item.key("queue")
        )
        event_id = await sent.event_id()  # stored, so ✅/❌ on it can be found
        await self.items.record_sent(room_id, event_id, items=[item])
        item = await self.items.update(item, queue_room=room_id, queue_event=event_id)
        if not review:
            for emoji in ("✅", "❌"):
                await self.bot.matrix.react(
                    room_id, event_id, emoji, key=item.key("queue-react", emoji)
                )
        return item

    def _moderators(self, village: VillageConfig, item: Item) -> list[str]:
        """Who a queue message is told to: the village's moderators, never the author."""
        return [u for u in self.bot.villages.moderators(village) if u != item.author]

    def _queue_text(
        self, item: Item, t: Translator, *, review: bool = False, outcome: Text | None = None
    ) -> Text:
        owner = self.owner(item)
        parts = [owner.render_item(item, t) if owner else Text.escaped(item.title)]
        details = []
        if item.category:
            details.append(t("moderation.detail_category", category=item.category))
        if item.district:
            details.append(t("moderation.detail_district", district=item.district))
        if details:
            parts.append(Text.join(details, Text(" · ", " · ")))
        key = "moderation.review_message" if review else "moderation.queue_message"
        text = t(
            key,
            number=item.number,
            kind=t(f"kind.{item.kind}"),
            author=item.author,
            item=Text.join(parts),
            prefix=self.bot.config.command_prefix,
        )
        return text if outcome is None else Text.join([outcome, text])

    async def _publish(self, item: Item) -> Item:
        """Let the owning plugin post the item; the database stays the truth if that fails."""
        owner = self.owner(item)
        try:
            target = await owner.publish_item(item) if owner else None
        except Exception:
            log.exception("plugin %s could not publish item %s", item.plugin, item.id)
            return item
        if target is not None:
            room_id, event_id = target
            await self.items.record_sent(room_id, event_id, items=[item])
            item = await self.items.update(item, published_room=room_id, published_event=event_id)
        return item

    async def _update_pending_metric(self, village: str) -> None:
        self.bot.metrics.pending.labels(village=village).set(await self.pending_count(village))

    # --------------------------------------------------------------- decisions

    async def decide(
        self,
        village: VillageConfig,
        number: int,
        actor: str,
        *,
        approve: bool,
        reason: str | None = None,
        cause: str,
    ) -> tuple[str, Item | None]:
        """Approve or reject; returns (catalog key of the outcome, item).

        The caller has checked that ``actor`` moderates ``village``; items are
        looked up within that village only, so no other village is reachable.
        """
        item = await self.items.get(village.id, number)
        if item is None:
            return "moderation.not_found", None
        if actor == item.author:
            return "moderation.own_item", item
        new_state = states.PUBLISHED if approve else states.REJECTED
        # Approved before, its message not posted yet (the homeserver failed, or
        # the bot stopped in between): approving again retries now.
        resuming = approve and item.state == states.PUBLISHING
        if item.state != states.PENDING and not resuming:
            return "moderation.not_pending", item
        if not resuming:
            decided = await self.items.transition(
                item,
                states.PUBLISHING if approve else states.REJECTED,
                decided_by=actor,
                decided_at=time.time(),
                reason=reason,
            )
            if decided is None:
                return "moderation.not_pending", item
            item = decided
            await self.log_action(
                village.id,
                actor,
                "approve" if approve else "reject",
                number=number,
                target=item.author,
                reason=reason,
            )
        t = self.bot.translator(village)
        if approve:
            item = await self._go_live(item)
        else:
            await self._closed(item)
        outcome = t(
            "moderation.outcome_approved" if approve else "moderation.outcome_rejected",
            moderator=actor,
            reason=reason or "-",
        )
        await self._edit_queue_message(item, t, outcome, new_state)
        await self._update_pending_metric(village.id)
        if approve and item.state == states.PUBLISHING:
            return "moderation.approved_not_yet_published", item
        await self._tell_decision(item, t, approve=approve, reason=reason, cause=cause)
        return ("moderation.approved" if approve else "moderation.rejected"), item

    async def _tell_decision(
        self, item: Item, t: Translator, *, approve: bool, reason: str | None, cause: str
    ) -> None:
        await self.tell_author(
            item,
            t(
                "moderation.told_approved" if approve else "moderation.told_rejected",
                number=item.number,
                title=item.title,
                reason=reason or "-",
            ),
            purpose=states.PUBLISHED if approve else states.REJECTED,
            # an item goes live once, by the approval or by the retry that
            # finished it: one key for both, so the author is told once
            cause="live" if approve else cause,
        )

    async def _go_live(self, item: Item) -> Item:
        """Post an approved item's message, then mark it published.

        While the message does not exist the item stays ``publishing``
        (:meth:`resume_publishing` retries it); the send is idempotent, so a
        retry after a lost answer posts nothing twice.
        """
        if item.published_event is None:
            item = await self._publish(item)
        if item.published_event is None:
            return item
        published = await self.items.transition(item, states.PUBLISHED)
        return published or (await self.items.get_by_id(item.id)) or item

    async def resume_publishing(self) -> int:
        """Post the messages of approved items that are still ``publishing``; tell
        their authors once a message exists. Returns how many went live."""
        rows = await self.bot.db.fetchall(
            "SELECT * FROM items WHERE state = ? ORDER BY id", (states.PUBLISHING,)
        )
        done = 0
        for row in rows:
            item = await self._go_live(Item.from_row(row))
            if item.state != states.PUBLISHED:
                log.warning("item %s is approved but still not published; retrying later", item.id)
                continue
            done += 1
            village = self.bot.villages.get(item.village)
            await self._tell_decision(
                item, self.bot.translator(village), approve=True, reason=None, cause="publishing"
            )
        return done

    async def _edit_queue_message(
        self, item: Item, t: Translator, outcome: Text, purpose: str
    ) -> None:
        if not (item.queue_room and item.queue_event):
            return
        village = self.bot.villages.get(item.village)
        try:
            await self.bot.matrix.edit(
                item.queue_room,
                item.queue_event,
                self._queue_text(item, t, outcome=outcome),
                intent=Intent.TELL,
                to=self._moderators(village, item) if village else (),
                key=item.key("queue-edit", purpose),
            )
        except MatrixError as exc:
            log.warning("could not edit the queue message of item %s: %s", item.id, exc)

    async def tell_author(self, item: Item, text: Text, *, purpose: str, cause: str) -> None:
        """Tell the author what became of an item, so it pushes to them.

        A reply to the author's command where possible, else a direct message.
        """
        key = item.key("tell", purpose, cause)
        if (
            item.source_room
            and item.source_event
            and item.source_room in self.bot.matrix.client.rooms
        ):
            try:
                sent = await self.bot.matrix.tell(
                    item.source_room,
                    text,
                    to=[item.author],
                    key=key,
                    reply_to=item.source_event,
                )
                await sent.event_id()  # a refused reply falls back to a DM
                await self.items.record_sent(item.source_room, sent, items=[item])
                return
            except MatrixError as exc:
                log.info("could not reply to item %s's command (%s); sending a DM", item.id, exc)
        t = self.translator(item.village)
        room_id, told = await self.bot.direct.tell(
            item.author, text, key=key, room_name=t.plain("moderation.dm_name")
        )
        await self.items.record_sent(room_id, told, items=[item])

    async def remove(
        self,
        village: VillageConfig,
        item: Item,
        actor: str,
        *,
        state: str = states.REMOVED,
        reason: str | None = None,
    ) -> Item | None:
        """Close a published or pending item and redact its published message.

        ``state`` is ``removed`` (a moderator) or ``deleted`` (the author). The
        queue message, if any, is edited to say so. None if the item was not
        open (or someone else closed it first).
        """
        closed = await self.items.transition(item, state, reason=reason)
        if closed is None:
            return None
        if closed.published_room and closed.published_event:
            try:
                await self.bot.matrix.redact(
                    closed.published_room, closed.published_event, reason, key=closed.key("redact")
                )
            except Exception as exc:
                log.warning("could not redact item %s: %s", closed.id, exc)
        t = self.bot.translator(village)
        if state in (states.REMOVED, states.CANCELLED):
            outcome = t(f"moderation.outcome_{state}", moderator=actor, reason=reason or "-")
        else:
            outcome = t("moderation.outcome_withdrawn")
        await self._edit_queue_message(closed, t, outcome, state)
        await self._closed(closed)
        await self._update_pending_metric(village.id)
        return closed

    async def _closed(self, item: Item) -> None:
        owner = self.owner(item)
        if owner is not None:
            try:
                await owner.on_item_closed(item)
            except Exception:
                log.exception("plugin %s on_item_closed failed", item.plugin)


_PILL = re.compile(r'<a\s+href="https://matrix\.to/#/((?:@|%40)[^"?/]+)"[^>]*>.*?</a>', re.I | re.S)
_REPLY_FALLBACK = re.compile(r"<mx-reply>.*?</mx-reply>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
# "7", "7 Tage", "7 days," after the user in !sperren (input words, not output text).
_DAYS = re.compile(r"\s*([0-9]{1,4})(?:\s*(?:tage?n?|days?|d)\b)?(?=[\s,.;:]|$)[,.;:]?", re.I)


class UserArgument(NamedTuple):
    """The user a moderator's command names, what follows, and what was typed."""

    user: str | None
    rest: str
    typed: str


def _plain(html_text: str) -> str:
    return html.unescape(_TAG.sub("", html_text))


def user_argument(ctx: CommandContext) -> UserArgument:
    """The user named by a command's first argument: a typed Matrix ID or a mention pill.

    Only the first argument counts: a pill further on (in the reason, say) or in
    the quote of a rich reply never names the target. ``user`` is None when the
    first argument is not a valid Matrix ID; ``typed`` is what stood there.
    """
    words = ctx.args.raw.split(maxsplit=1)
    first = words[0] if words else ""
    rest = words[1].strip() if len(words) > 1 else ""
    if first.startswith("@") or not ctx.event.formatted_body:
        return UserArgument(first if is_user_id(first) else None, rest, first)
    # A pill's plain form is a display name: look at the formatted body, without
    # the quoted message of a reply, for a pill right after the command word.
    formatted = _REPLY_FALLBACK.sub("", ctx.event.formatted_body)
    pill = _PILL.search(formatted)
    if pill is None or len(_plain(formatted[: pill.start()]).split()) != 1:
        return UserArgument(None, rest, first)
    user = unquote(pill.group(1))
    after = _plain(formatted[pill.end() :]).strip().lstrip(":,").strip()
    return UserArgument(user if is_user_id(user) else None, after, user)


class ModerationPlugin(Plugin):
    """The moderators' commands and the ✅/❌ reactions on queue messages."""

    name = "moderation"
    migrations = MIGRATIONS

    @property
    def service(self) -> Moderation:
        return self.bot.moderation

    async def start(self) -> None:
        for village in self.bot.config.villages:
            await self.service._update_pending_metric(village.id)
        # Approved items whose message could not be posted: at start and then regularly.
        self.scheduler.at(
            "publishing-resume",
            datetime.now(UTC) + timedelta(seconds=1),
            self.service.resume_publishing,
        )
        self.scheduler.every("publishing", PUBLISH_RETRY_SECONDS, self.service.resume_publishing)

    @command("warteschlange", "queue", role=Role.MODERATOR, scope=Scope.MODERATION)
    async def queue(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        pending = await self.service.items.list(village.id, states=(states.PENDING,), limit=25)
        if not pending:
            await ctx.answer("moderation.queue_empty")
            return
        lines = [
            ctx.t(
                "moderation.queue_line",
                number=i.number,
                kind=ctx.t(f"kind.{i.kind}"),
                title=i.title,
                author=i.author,
            )
            for i in reversed(pending)
        ]
        event_id = await ctx.answer(
            "moderation.queue_list",
            count=await self.service.pending_count(village.id),
            entries=Markup(Text.join(lines, Text("\n", ""))),
        )
        await self.service.items.record_sent(ctx.room_id, event_id, items=pending)

    async def _decide_command(self, ctx: CommandContext, approve: bool) -> None:
        number, reason = parse_number(ctx.args.raw)
        if number is None:
            await ctx.answer(
                "moderation.need_number",
                command=ctx.spec.name,
                prefix=self.bot.config.command_prefix,
            )
            return
        key, item = await self.service.decide(
            ctx.require_village,
            number,
            ctx.sender,
            approve=approve,
            reason=reason or None,
            cause=ctx.event.event_id,
        )
        await ctx.answer(key, number=number, state=ctx.t(f"state.{item.state}") if item else "")

    @command(
        "freigeben",
        "approve",
        role=Role.MODERATOR,
        scope=Scope.MODERATION,
        examples=("!freigeben 12",),
    )
    async def approve(self, ctx: CommandContext) -> None:
        await self._decide_command(ctx, approve=True)

    @command(
        "ablehnen",
        "reject",
        role=Role.MODERATOR,
        scope=Scope.MODERATION,
        examples=("!ablehnen 12 Bitte ohne Telefonnummer",),
    )
    async def reject(self, ctx: CommandContext) -> None:
        await self._decide_command(ctx, approve=False)

    @command(
        "entfernen",
        "remove",
        role=Role.MODERATOR,
        scope=Scope.MODERATION,
        examples=("!entfernen 12 Werbung",),
    )
    async def remove(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        number, reason = parse_number(ctx.args.raw)
        if number is None:
            await ctx.answer(
                "moderation.need_number",
                command=ctx.spec.name,
                prefix=self.bot.config.command_prefix,
            )
            return
        item = await self.service.items.get(village.id, number)
        if item is None:
            await ctx.answer("moderation.not_found", number=number)
            return
        if item.state == states.PENDING:
            await ctx.answer(
                "moderation.remove_pending", number=number, prefix=self.bot.config.command_prefix
            )
            return
        closed = await self.service.remove(village, item, ctx.sender, reason=reason or None)
        if closed is None:
            await ctx.answer(
                "moderation.not_open", number=item.number, state=ctx.t(f"state.{item.state}")
            )
            return
        await self.service.log_action(
            village.id,
            ctx.sender,
            "remove",
            number=item.number,
            target=item.author,
            reason=reason or None,
        )
        await self.service.tell_author(
            closed,
            ctx.t(
                "moderation.told_removed",
                number=item.number,
                title=item.title,
                reason=reason or "-",
            ),
            purpose="removed",
            cause=ctx.event.event_id,
        )
        await ctx.answer("moderation.removed", number=item.number)

    async def _user_or_usage(self, ctx: CommandContext) -> tuple[str | None, str]:
        """The Matrix ID a command names (and the rest), or None after explaining how."""
        found = user_argument(ctx)
        if found.user is None:
            prefix, name = self.bot.config.command_prefix, ctx.spec.name
            if found.typed.startswith("@"):
                await ctx.answer(
                    "moderation.invalid_user", user=found.typed, prefix=prefix, command=name
                )
            else:
                await ctx.answer("moderation.need_user", prefix=prefix, command=name)
        return found.user, found.rest

    @command(
        "sperren",
        "block",
        role=Role.MODERATOR,
        scope=Scope.MODERATION,
        examples=("!sperren @troll:example.org 7 Beleidigungen",),
    )
    async def block(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        user, rest = await self._user_or_usage(ctx)
        if user is None:
            return
        days: float | None = None
        match = _DAYS.match(rest)
        if match and 0 < int(match.group(1)) < 10000:
            days = float(match.group(1))
            rest = rest[match.end() :]
        reason = rest.strip() or None
        if user == ctx.sender:
            await ctx.answer("moderation.not_yourself")
            return
        # Moderators do not block each other; an admin may block a moderator.
        target_role = self.bot.role_in(village, user)
        if target_role >= Role.MODERATOR and target_role >= ctx.role:
            await ctx.answer("moderation.block_staff", user=user)
            return
        until = time.time() + days * 86400 if days else None
        await self.bot.db.execute(
            "INSERT INTO blocks (village, user_id, until, reason, blocked_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(village, user_id) DO UPDATE SET "
            "until = excluded.until, reason = excluded.reason, blocked_by = excluded.blocked_by",
            (village.id, user, until, reason, ctx.sender, time.time()),
        )
        await self.service.log_action(village.id, ctx.sender, "block", target=user, reason=reason)
        if until:
            await ctx.answer("moderation.blocked_until", user=user, until=_local(until, village))
        else:
            await ctx.answer("moderation.blocked", user=user)

    @command(
        "entsperren",
        "unblock",
        role=Role.MODERATOR,
        scope=Scope.MODERATION,
        examples=("!entsperren @troll:example.org",),
    )
    async def unblock(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        user, _ = await self._user_or_usage(ctx)
        if user is None:
            return
        # A person who was forgotten (!vergessen) is blocked under a pseudonym.
        count = await self.bot.db.execute_rowcount(
            "DELETE FROM blocks WHERE village = ? AND user_id IN (?, ?)",
            (village.id, user, pseudonym(user)),
        )
        if count:
            await self.service.log_action(village.id, ctx.sender, "unblock", target=user)
        await ctx.answer("moderation.unblocked" if count else "moderation.not_blocked", user=user)

    @command("protokoll", "log", role=Role.MODERATOR, scope=Scope.MODERATION)
    async def modlog(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        rows = await self.bot.db.fetchall(
            "SELECT * FROM modlog WHERE village = ? ORDER BY ts DESC, id DESC LIMIT 20",
            (village.id,),
        )
        if not rows:
            await ctx.answer("moderation.log_empty")
            return
        lines = []
        for r in rows:
            details = [
                ctx.t("moderation.log_number", number=r["number"]) if r["number"] else None,
                Text.escaped(r["target_user"]) if r["target_user"] else None,
                ctx.t("moderation.log_reason", reason=r["reason"]) if r["reason"] else None,
            ]
            lines.append(
                ctx.t(
                    "moderation.log_line",
                    when=_local(r["ts"], village),
                    actor=r["actor"],
                    action=ctx.t(f"action.{r['action']}"),
                    details=Text.join([Text("", "")] + [d for d in details if d], Text(" ", " ")),
                )
            )
        await ctx.answer("moderation.log_list", entries=Markup(Text.join(lines, Text("\n", ""))))

    @command("statistik", "stats", role=Role.MODERATOR, scope=Scope.MODERATION)
    async def stats(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        since = time.time() - 30 * 86400
        db = self.bot.db
        by_state = await db.fetchall(
            "SELECT kind, state, count(*) AS n FROM items WHERE village = ? AND created_at >= ? "
            "GROUP BY kind, state ORDER BY kind, state",
            (village.id, since),
        )
        by_category = await db.fetchall(
            "SELECT COALESCE(category, '-') AS c, count(*) AS n FROM items WHERE village = ? "
            "AND created_at >= ? GROUP BY c ORDER BY n DESC, c",
            (village.id, since),
        )
        by_district = await db.fetchall(
            "SELECT COALESCE(district, '-') AS d, count(*) AS n FROM items WHERE village = ? "
            "AND created_at >= ? GROUP BY d ORDER BY n DESC, d",
            (village.id, since),
        )
        # Time to approval: items a moderator published (rejections have no published_at).
        waits = await db.fetchall(
            "SELECT decided_at - created_at AS w FROM items WHERE village = ? AND "
            "created_at >= ? AND decided_at IS NOT NULL AND published_at IS NOT NULL",
            (village.id, since),
        )
        rejected = await db.fetchval(
            "SELECT count(*) FROM items WHERE village = ? AND created_at >= ? AND state = ?",
            (village.id, since, states.REJECTED),
        )
        users = await db.fetchval(
            "SELECT count(DISTINCT author) FROM items WHERE village = ? AND created_at >= ?",
            (village.id, since),
        )
        median = statistics.median([r["w"] for r in waits]) if waits else None

        def join(rows: list[Any], label: str) -> str:
            return ", ".join(f"{r[label]}: {r['n']}" for r in rows) or "-"

        await ctx.answer(
            "moderation.stats",
            users=users or 0,
            states=", ".join(
                f"{ctx.t.plain(f'kind.{r[0]}')} {ctx.t.plain(f'state.{r[1]}')}: {r[2]}"
                for r in by_state
            )
            or "-",
            categories=join(by_category, "c"),
            districts=join(by_district, "d"),
            median=_duration(median, ctx.t) if median is not None else "-",
            approved=len(waits),
            rejected=rejected or 0,
            pending=await self.service.pending_count(village.id),
        )

    async def on_reaction(self, event: ReactionEvent) -> None:
        if event.emoji not in APPROVE_KEYS + REJECT_KEYS or event.sender == self.bot.matrix.user_id:
            return  # the bot's own ✅/❌ chips never decide
        info = self.bot.villages.room(event.room_id)
        if info is None or info.kind != "moderation":
            return
        item = await self.service.items.by_event("queue_event", event.target)
        if item is None or item.village != info.village.id:
            return
        if self.bot.role_in(info.village, event.sender) < Role.MODERATOR:
            return
        key, _ = await self.service.decide(
            info.village,
            item.number,
            event.sender,
            approve=event.emoji in APPROVE_KEYS,
            cause=event.event_id,
        )
        if key in ("moderation.own_item", "moderation.approved_not_yet_published"):
            t = self.bot.translator(info.village)
            await self.bot.matrix.answer(
                event.room_id,
                event.target,
                t(key, number=item.number),
                key=txn_id(event.event_id, "own"),
            )


def _local(ts: float, village: VillageConfig) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(village.tz).strftime("%d.%m.%Y %H:%M")


def _duration(seconds: float, t: Translator) -> str:
    if seconds < 3600:
        return t.plain("duration.minutes", n=max(1, round(seconds / 60)))
    if seconds < 86400 * 2:
        return t.plain("duration.hours", n=round(seconds / 3600, 1))
    return t.plain("duration.days", n=round(seconds / 86400, 1))
