"""The marketplace: offers and requests of neighbourly help (Biete / Suche).

Posts are core items (kinds ``offer`` and ``request``) and go through the
moderation queue (:mod:`dorfbot.moderation`); this plugin validates them,
publishes them into the village's marketplace room, lists and searches them,
expires them after ``expire_days`` (reminding the author ``remind_days``
before, and telling them when it has expired) and opens private rooms
between a post's author and someone who answers it. Helpers post on behalf
of residents without internet with ``!fuer``.

Config (``plugins.marketplace``)::

    expire_days: 30     # a post's lifetime from publication (and per !verlaengern)
    remind_days: 3      # the author is reminded this long before expiry
    page_size: 10       # entries per list page
    check_minutes: 10   # how often expiry and reminders are checked
    web_max: 30         # newest offers and requests each on the village's public page

With ``web.marketplace`` on a village's public page, the open offers and
requests are listed there: title, category, district, date and number, never
who posted them (nor for whom), nor their text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from dorfbot import items as states
from dorfbot.commands import Args, command, normalize_name, parse_count, parse_number, split_command
from dorfbot.config import VillageConfig
from dorfbot.context import CommandContext
from dorfbot.i18n import Markup, Text, Translator
from dorfbot.items import Item, ItemStore, chunks, marks
from dorfbot.matrix import Intent, pill, txn_id
from dorfbot.moderation import Blocked
from dorfbot.plugin import Plugin
from dorfbot.roles import Role
from dorfbot.storage import Database, sql_script
from dorfbot.text import closest, fold
from dorfbot.webpage import WebPage, WebSection

from . import render, search

OFFER = "offer"
REQUEST = "request"
KINDS = (OFFER, REQUEST)
MAX_TITLE = 120
MAX_TEXT = 2000
MAX_NAME = 200
# The words after ``!fuer "<name>"`` that say what is posted (input, not output).
VERBS = {"biete": OFFER, "offer": OFFER, "suche": REQUEST, "request": REQUEST}
NOT_OWN_LISTED = (states.DELETED,)


async def _create_tables(db: Database) -> None:
    await search.create_table(db)
    await sql_script(
        "CREATE TABLE marketplace_contacts (item_id INTEGER NOT NULL, asker TEXT NOT NULL, "
        "room_id TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (item_id, asker))",
        "CREATE INDEX marketplace_contacts_asker ON marketplace_contacts (asker)",
    )(db)


async def _contact_introduced(db: Database) -> None:
    # The introduction waits until both people have joined (only joined members
    # are pushed); rooms from before were introduced at creation.
    await sql_script(
        "ALTER TABLE marketplace_contacts ADD COLUMN introduced_at REAL",
        "UPDATE marketplace_contacts SET introduced_at = created_at",
        "CREATE INDEX marketplace_contacts_room ON marketplace_contacts (room_id)",
    )(db)


class MarketplacePlugin(Plugin):
    """``!biete``, ``!suche``, lists, search, closing, expiry and contact rooms."""

    name = "marketplace"
    migrations = [
        _create_tables,
        _contact_introduced,
        # how many posts are open (the public page counts them over thousands of
        # rows): answered from the index alone, without reading each row
        sql_script(
            "CREATE INDEX marketplace_open ON items (village, kind, state, plugin, expires_at)"
        ),
        search.create_keys,
        # posts approved while 'publishing' existed went live unindexed: index them
        search.rebuild,
    ]
    defaults: ClassVar[dict[str, Any]] = {
        "expire_days": 30,
        "remind_days": 3,
        "page_size": 10,
        "check_minutes": 10,
        "web_max": 30,
    }

    _trigram = True

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.expire_days = self._setting("expire_days")
        self.remind_days = self._setting("remind_days", minimum=0)
        self.page_size = int(self._setting("page_size", minimum=1))
        self._trigram = await search.uses_trigram(self.db)
        self._expiry_lock = asyncio.Lock()
        # The database is the truth: one check right away (catching up on a
        # downtime), then at an interval.
        self.scheduler.every("expiry", self._setting("check_minutes") * 60, self.check_expiry)
        self.scheduler.at("expiry-at-start", datetime.now(UTC), self.check_expiry)

    def _setting(self, key: str, *, minimum: float = 0.001) -> float:
        value = self.config.get(key, self.defaults[key])
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            self.log.error(
                "plugins.marketplace.%s: must be a number >= %s, not %r; using %s",
                key,
                minimum,
                value,
                self.defaults[key],
            )
            return float(self.defaults[key])
        return float(value)

    @property
    def items(self) -> ItemStore:
        return self.bot.moderation.items

    @property
    def prefix(self) -> str:
        return self.bot.config.command_prefix

    # ---------------------------------------------------------------- posting

    @command(
        "biete",
        "offer",
        reaches_others=True,
        examples=("!biete Rasenmäher zum Ausleihen #garten ortsteil:Nord",),
    )
    async def offer(self, ctx: CommandContext) -> None:
        await self._post(ctx, OFFER, ctx.args)

    @command(
        "suche",
        "request",
        reaches_others=True,
        examples=("!suche Mitfahrt nach Soest am Dienstag #fahrdienst",),
    )
    async def request(self, ctx: CommandContext) -> None:
        await self._post(ctx, REQUEST, ctx.args)

    @command(
        "fuer",
        "for",
        role=Role.HELPER,
        reaches_others=True,
        examples=('!fuer "Frau Meier, Tel. 1234" biete Kartoffeln aus dem Garten #garten',),
    )
    async def on_behalf(self, ctx: CommandContext) -> None:
        name, rest = ctx.args.take_quoted()
        if name is None:  # unquoted: the name runs up to "biete"/"suche"
            words = ctx.args.text.split(" ")
            at = next(
                (
                    i
                    for i, w in enumerate(words)
                    if normalize_name(w).removeprefix(self.prefix) in VERBS
                ),
                0,
            )
            name = " ".join(words[:at]).strip() or None
            rest = replace(ctx.args, text=" ".join(words[at:]))
        verb, rest = rest.take_word()
        kind = VERBS.get(normalize_name(verb).removeprefix(self.prefix))
        if not name or kind is None:
            await ctx.answer("marketplace.for_usage", prefix=self.prefix)
            return
        if len(name) > MAX_NAME:
            await ctx.answer("marketplace.name_too_long", max=MAX_NAME)
            return
        await self._post(ctx, kind, rest, on_behalf_of=name)

    async def _post(
        self, ctx: CommandContext, kind: str, args: Args, *, on_behalf_of: str | None = None
    ) -> None:
        village = ctx.require_village
        district, extra = self._district(village, args.district)
        title = " ".join(p for p in (args.text, extra) if p).strip()
        if not title:
            await ctx.answer(f"marketplace.need_title.{kind}", prefix=self.prefix)
            return
        if len(title) > MAX_TITLE:
            await ctx.answer("marketplace.title_too_long", max=MAX_TITLE, length=len(title))
            return
        if len(args.description) > MAX_TEXT:
            await ctx.answer(
                "marketplace.text_too_long", max=MAX_TEXT, length=len(args.description)
            )
            return
        valid, category = await self._check_category(ctx, args.category)
        if not valid:
            return
        if args.district and district is None:
            await self._unknown_district(ctx, args.district)
            return
        try:
            item = await self.bot.moderation.submit(
                ctx,
                plugin=self.name,
                kind=kind,
                title=title,
                body=args.description,
                mode=village.moderation.posts,
                category=category,
                district=district,
                on_behalf_of=on_behalf_of,
                expires_at=time.time() + self.expire_days * 86400,
            )
        except Blocked as refused:
            await ctx.answer(refused.key, **refused.params)
            return
        await search.index(self.db, item)
        if item.state == states.PENDING:
            await ctx.answer(f"marketplace.posted_pending.{kind}", number=item.number)
        else:
            await ctx.answer(
                f"marketplace.posted_published.{kind}", number=item.number, prefix=self.prefix
            )

    # ------------------------------------------------------------ item hooks

    def render_item(self, item: Item, t: Translator) -> Text:
        return render.summary(item, t)

    async def publish_item(self, item: Item) -> tuple[str, str] | None:
        village = self.bot.villages.get(item.village)
        room_id = self.bot.villages.room_id(village, "marketplace") if village else None
        if village is None or room_id is None:
            self.log.warning("village %s has no marketplace room", item.village)
            return None
        # The lifetime starts with publication, not with the wait in the queue.
        item = await self.items.update(
            item, expires_at=time.time() + self.expire_days * 86400, reminded_at=None
        )
        await search.index(self.db, item)
        text = render.post(item, self.bot.translator(village), self.prefix)
        sent = await self.bot.matrix.publish(room_id, text, key=item.key("published"))
        return room_id, await sent.event_id()

    async def on_item_closed(self, item: Item) -> None:
        await search.unindex(self.db, [item.id])

    async def purge_items(self, item_ids: list[int]) -> None:
        await search.unindex(self.db, item_ids)
        for chunk in chunks(item_ids):
            await self.db.execute(
                f"DELETE FROM marketplace_contacts WHERE item_id IN ({marks(chunk)})", chunk
            )

    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        rows = await self.db.fetchall(
            "SELECT c.item_id, i.village, i.number, c.room_id, c.created_at "
            "FROM marketplace_contacts AS c LEFT JOIN items AS i ON i.id = c.item_id "
            "WHERE c.asker = ?",
            (user_id,),
        )
        return {"contact_rooms": [dict(r) for r in rows]} if rows else {}

    async def forget_user(self, user_id: str) -> None:
        await self.db.execute("DELETE FROM marketplace_contacts WHERE asker = ?", (user_id,))

    # ------------------------------------------------------------- validation

    async def _check_category(
        self, ctx: CommandContext, given: str | None
    ) -> tuple[bool, str | None]:
        """(valid, the configured spelling or None); tells the user when invalid."""
        if not given:
            return True, None
        village = ctx.require_village
        if not village.categories:
            return True, given  # the village does not restrict categories
        found = {fold(c): c for c in village.categories}.get(fold(given))
        if found:
            return True, found
        close = closest(given, village.categories)
        known = ", ".join(f"#{c}" for c in village.categories)
        if close:
            await ctx.answer(
                "marketplace.unknown_category_suggest",
                given=given,
                suggestion=close,
                known=known,
            )
        else:
            await ctx.answer("marketplace.unknown_category", given=given, known=known)
        return False, None

    @staticmethod
    def _district(village: VillageConfig, given: str | None) -> tuple[str | None, str]:
        """The configured district a value starts with, and the words after it.

        An option value runs to the line's end, so ``ortsteil:Nord 2`` is the
        district Nord and the page number 2.
        """
        if not given:
            return None, ""
        if not village.districts:
            return given, ""
        folded = fold(given)
        for district in sorted(village.districts, key=len, reverse=True):
            name = fold(district)
            if folded == name:
                return district, ""
            if folded.startswith(name + " "):
                return district, given[len(district) + 1 :].strip()
        return None, ""

    async def _unknown_district(self, ctx: CommandContext, given: str) -> None:
        village = ctx.require_village
        close = closest(given, village.districts)
        known = ", ".join(village.districts)
        option = ctx.t.plain("marketplace.district_option")
        if close:
            await ctx.answer(
                "marketplace.unknown_district_suggest",
                given=given,
                suggestion=close,
                option=option,
                known=known,
            )
        else:
            await ctx.answer(
                "marketplace.unknown_district", given=given, option=option, known=known
            )

    # ----------------------------------------------------------------- lists

    @command("angebote", "offers", examples=("!angebote", "!angebote #garten", "!angebote 2"))
    async def offers(self, ctx: CommandContext) -> None:
        await self._list(ctx, OFFER)

    @command("gesuche", "requests", examples=("!gesuche", "!gesuche ortsteil:Nord"))
    async def requests(self, ctx: CommandContext) -> None:
        await self._list(ctx, REQUEST)

    async def _list(self, ctx: CommandContext, kind: str) -> None:
        village = ctx.require_village
        district, extra = self._district(village, ctx.args.district)
        if ctx.args.district and district is None:
            await self._unknown_district(ctx, ctx.args.district)
            return
        valid, category = await self._check_category(ctx, ctx.args.category)
        if not valid:
            return
        page, words = _page(" ".join(p for p in (ctx.args.text, extra) if p))
        if words:  # "!angebote rasenmäher": search within offers
            await self._search(ctx, words, (kind,), page)
            return
        size = self.page_size
        found = await self.items.list(
            village.id,
            kinds=(kind,),
            states=(states.PUBLISHED,),
            category=category,
            district=district,
            limit=size + 1,
            offset=(page - 1) * size,
        )
        filters = self._filters(ctx, category, district)
        if not found:
            key = "marketplace.page_empty" if page > 1 else f"marketplace.list_empty.{kind}"
            await ctx.answer(key, filters=filters, prefix=self.prefix)
            return
        await self._reply_list(
            ctx,
            ctx.t(f"marketplace.list_title.{kind}", page=_page_label(ctx.t, page), filters=filters),
            found[:size],
            lambda i: render.line(i, ctx.t, village.tz),
            more=len(found) > size,
            page=page,
            again=self._again(ctx, category, district),
        )

    def _filters(self, ctx: CommandContext, category: str | None, district: str | None) -> Text:
        parts = []
        if category:
            parts.append(ctx.t("marketplace.meta_category", category=category))
        if district:
            parts.append(ctx.t("marketplace.meta_district", district=district))
        if not parts:
            return Text("", "")
        return ctx.t("marketplace.filters", filters=Text.join(parts, render.SEPARATOR))

    def _typed(self, ctx: CommandContext) -> str:
        """The command as the user typed it (German or English), with the prefix."""
        split = split_command(ctx.event.body, self.prefix)
        return self.prefix + (split[0] if split else ctx.spec.name)

    def _again(self, ctx: CommandContext, category: str | None, district: str | None) -> str:
        """The command as typed, with its filters, for the "next page" hint."""
        parts = [self._typed(ctx)]
        if category:
            parts.append(f"#{category}")
        if district:
            parts.append(f"{ctx.t.plain('marketplace.district_option')}:{district}")
        return " ".join(parts)

    async def _reply_list(
        self,
        ctx: CommandContext,
        title: Text,
        shown: list[Item],
        line: Callable[[Item], Text],
        *,
        more: bool,
        page: int,
        again: str,
    ) -> None:
        lines = [line(item) for item in shown]
        parts = [
            title,
            ctx.t("marketplace.list", entries=Markup(Text.join(lines, Text("\n", "")))),
        ]
        if more:
            parts.append(ctx.t("marketplace.list_more", command=f"{again} {page + 1}"))
        parts.append(ctx.t("marketplace.list_hint", prefix=self.prefix))
        event_id = await ctx.answer(Text.join(parts, Text("\n", "")))
        await self.items.record_sent(ctx.room_id, event_id, items=shown)

    @command("finde", "find", examples=("!finde Rasenmäher", "!finde Fahrrad Kinder"))
    async def find(self, ctx: CommandContext) -> None:
        page, words = _page(ctx.args.text)
        if ctx.args.category:
            words = f"{words} {ctx.args.category}".strip()
        await self._search(ctx, words, KINDS, page)

    async def _search(
        self, ctx: CommandContext, query: str, kinds: tuple[str, ...], page: int
    ) -> None:
        village = ctx.require_village
        words = search.terms(query)
        if not words:
            await ctx.answer("marketplace.need_query", prefix=self.prefix)
            return
        size = self.page_size
        found = await search.search(
            self.db,
            village.id,
            words,
            kinds=kinds,
            trigram=self._trigram,
            limit=size + 1,
            offset=(page - 1) * size,
        )
        if not found:
            await ctx.answer("marketplace.find_empty", query=query, prefix=self.prefix)
            return
        await self._reply_list(
            ctx,
            ctx.t("marketplace.find_title", query=query, page=_page_label(ctx.t, page)),
            found[:size],
            lambda i: render.line(i, ctx.t, village.tz, with_kind=True),
            more=len(found) > size,
            page=page,
            again=f"{self._typed(ctx)} {query}",
        )

    @command("meine", "mine", examples=("!meine",))
    async def mine(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        page, _ = _page(ctx.args.text)
        size = self.page_size
        own = await self.items.list(
            village.id,
            kinds=None,
            states=tuple(s for s in states.ALL_STATES if s not in NOT_OWN_LISTED),
            author=ctx.sender,
            limit=size + 1,
            offset=(page - 1) * size,
        )
        if not own:
            key = "marketplace.page_empty" if page > 1 else "marketplace.mine_empty"
            await ctx.answer(key, filters="", prefix=self.prefix)
            return
        await self._reply_list(
            ctx,
            ctx.t("marketplace.mine_title", page=_page_label(ctx.t, page)),
            own[:size],
            lambda i: render.own_line(i, ctx.t, village.tz, self.name),
            more=len(own) > size,
            page=page,
            again=self._typed(ctx),
        )

    # ------------------------------------------------------- the author's own

    async def _own_item(self, ctx: CommandContext, *, any_plugin: bool = False) -> Item | None:
        """The item named by the command's number if it is the caller's; else tells why."""
        village = ctx.require_village
        number, _ = parse_number(ctx.args.raw)
        if number is None:
            await ctx.answer(
                "marketplace.need_number", command=self._typed(ctx), prefix=self.prefix
            )
            return None
        item = await self.items.get(village.id, number)
        if item is None or item.state == states.DELETED:
            await ctx.answer("moderation.not_found", number=number)
            return None
        if item.author != ctx.sender:
            await ctx.answer("marketplace.not_yours", number=number)
            return None
        if not any_plugin and item.plugin != self.name:
            await ctx.answer("marketplace.not_a_post", number=number)
            return None
        return item

    @command("erledigt", "done", examples=("!erledigt 12",))
    async def done(self, ctx: CommandContext) -> None:
        item = await self._own_item(ctx)
        if item is None:
            return
        if item.state == states.PENDING:
            await ctx.answer("marketplace.done_pending", number=item.number, prefix=self.prefix)
            return
        closed = await self.items.transition(item, states.DONE)
        if closed is None:
            await ctx.answer(
                "moderation.not_open", number=item.number, state=ctx.t(f"state.{item.state}")
            )
            return
        await self._closed(closed)
        await ctx.answer("marketplace.done", number=item.number)

    @command("verlaengern", "extend", examples=("!verlaengern 12",))
    async def extend(self, ctx: CommandContext) -> None:
        item = await self._own_item(ctx)
        if item is None:
            return
        if item.state != states.PUBLISHED:
            key = "marketplace.extend_pending" if item.state == states.PENDING else None
            await ctx.answer(
                key or "marketplace.extend_closed",
                number=item.number,
                state=ctx.t(f"state.{item.state}"),
                prefix=self.prefix,
            )
            return
        until = time.time() + self.expire_days * 86400
        count = await self.db.execute_rowcount(
            "UPDATE items SET expires_at = ?, reminded_at = NULL WHERE id = ? AND state = ?",
            (until, item.id, states.PUBLISHED),
        )
        if count != 1:
            await ctx.answer("marketplace.extend_closed", number=item.number, state="")
            return
        await ctx.answer(
            "marketplace.extended",
            number=item.number,
            date=render.date(until, ctx.require_village.tz, ctx.t),
        )

    @command("loeschen", "delete", examples=("!loeschen 12",))
    async def delete(self, ctx: CommandContext) -> None:
        item = await self._own_item(ctx, any_plugin=True)
        if item is None:
            return
        deleted = await self.bot.moderation.remove(
            ctx.require_village, item, ctx.sender, state=states.DELETED
        )
        if deleted is None:
            await ctx.answer(
                "moderation.not_open", number=item.number, state=ctx.t(f"state.{item.state}")
            )
            return
        await ctx.answer("marketplace.deleted", number=item.number, kind=ctx.t(f"kind.{item.kind}"))

    async def _closed(self, item: Item) -> None:
        """A post is done or expired: out of the search, its message says so."""
        await search.unindex(self.db, [item.id])
        if not (item.published_room and item.published_event):
            return
        village = self.bot.villages.get(item.village)
        try:
            await self.bot.matrix.edit(
                item.published_room,
                item.published_event,
                render.closed(item, self.bot.translator(village)),
                intent=Intent.PUBLISH,
                key=item.key("closed", item.state),
            )
        except Exception as exc:
            self.log.warning("could not edit the message of item %s: %s", item.id, exc)

    # --------------------------------------------------------------- contact

    @command("kontakt", "contact", reaches_others=True, examples=("!kontakt 12",))
    async def contact(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        number, _ = parse_number(ctx.args.raw)
        if number is None:
            await ctx.answer(
                "marketplace.need_number", command=self._typed(ctx), prefix=self.prefix
            )
            return
        item = await self.items.get(village.id, number)
        if item is None or item.plugin != self.name or item.state != states.PUBLISHED:
            await ctx.answer("marketplace.contact_not_open", number=number)
            return
        if item.author == ctx.sender:
            await ctx.answer("marketplace.contact_own", number=number)
            return
        existing = await self.db.fetchval(
            "SELECT room_id FROM marketplace_contacts WHERE item_id = ? AND asker = ?",
            (item.id, ctx.sender),
        )
        # The same question twice gets the same room, as long as the asker is in it.
        if existing and ctx.sender in self.bot.matrix.members(existing):
            await ctx.answer("marketplace.contact_exists", number=number, room=existing)
            return
        name = ctx.t.plain(
            "marketplace.contact_room_name", number=item.number, title=_shorten(item.title, 60)
        )
        room_id = await self.bot.matrix.open_private_room(
            [item.author, ctx.sender],
            name,
            topic=ctx.t.plain("marketplace.contact_room_topic", number=item.number),
        )
        await self.db.execute(
            "INSERT OR REPLACE INTO marketplace_contacts (item_id, asker, room_id, created_at) "
            "VALUES (?, ?, ?, ?)",
            (item.id, ctx.sender, room_id, time.time()),
        )
        opened = await ctx.answer(
            "marketplace.contact_opened", author=item.author, room=room_id, name=name
        )
        await self.items.record_sent(ctx.room_id, opened, items=[item])

    async def on_private_room_join(self, room_id: str, user_id: str) -> None:
        """Both people are in a contact room: introduce them, once.

        Not at creation: they are only invited then, and a room's messages push
        only to members who have joined (their invites push on their own).
        """
        row = await self.db.fetchone(
            "SELECT item_id, asker FROM marketplace_contacts "
            "WHERE room_id = ? AND introduced_at IS NULL",
            (room_id,),
        )
        if row is None:
            return
        item = await self.items.get_by_id(int(row["item_id"]))
        asker = str(row["asker"])
        if item is None or not {item.author, asker} <= self.bot.matrix.joined_members(room_id):
            return
        claimed = await self.db.execute_rowcount(
            "UPDATE marketplace_contacts SET introduced_at = ? "
            "WHERE room_id = ? AND introduced_at IS NULL",
            (time.time(), room_id),
        )
        if claimed != 1:
            return
        t = self.bot.translator(self.bot.villages.get(item.village))
        intro = [
            t(
                "marketplace.contact_intro",
                author=pill(item.author),
                asker=pill(asker),
                number=item.number,
                title=item.title,
            )
        ]
        if item.on_behalf_of:
            intro.append(
                t(
                    "marketplace.contact_intro_proxy",
                    helper=pill(item.author),
                    name=item.on_behalf_of,
                )
            )
        try:
            intro_id = await self.bot.matrix.tell(
                room_id,
                Text.join(intro),
                to=[item.author, asker],
                key=txn_id("contact-intro", room_id),
            )
        except Exception:
            await self.db.execute(
                "UPDATE marketplace_contacts SET introduced_at = NULL WHERE room_id = ?",
                (room_id,),
            )
            raise
        await self.items.record_sent(room_id, intro_id, items=[item], users=[asker])

    # ---------------------------------------------------------------- web page

    async def web_sections(self, page: WebPage) -> list[WebSection]:
        """Open offers and requests on the public page, if the village shows them."""
        village = page.village
        if not village.web.marketplace:
            return []
        limit = int(self.config.get("web_max", self.defaults["web_max"]))
        now = page.now.timestamp()
        groups = []
        for kind in KINDS:
            posts, total = await self._open_posts(village.id, kind, now, limit)
            groups.append(
                {
                    "kind": kind,
                    "title": page.plain(f"marketplace.web.{kind}s"),
                    "posts": [
                        {
                            "number": item.number,
                            "title": item.title,
                            "category": item.category,
                            "district": item.district,
                            "date": page.day(
                                page.local(item.published_at or item.created_at).date()
                            ),
                        }
                        for item in posts
                    ],
                    "more": max(0, total - len(posts)),
                }
            )
        room = village.rooms.marketplace
        return [
            WebSection(
                key="market",
                title=page.plain("marketplace.web.title"),
                template="marketplace/section.html",
                context={
                    "groups": groups,
                    "prefix": self.prefix,
                    "room_link": f"https://matrix.to/#/{quote(room, safe='!#:@')}" if room else "",
                },
                order=40,
            )
        ]

    async def _open_posts(
        self, village: str, kind: str, now: float, limit: int
    ) -> tuple[list[Item], int]:
        """The newest published, unexpired posts of a kind, and how many there are."""
        where = (
            "village = ? AND kind = ? AND state = ? AND plugin = ? "
            "AND (expires_at IS NULL OR expires_at > ?)"
        )
        params = (village, kind, states.PUBLISHED, self.name, now)
        rows = await self.db.fetchall(
            f"SELECT * FROM items WHERE {where} ORDER BY published_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        total = int(await self.db.fetchval(f"SELECT count(*) FROM items WHERE {where}", params))
        return [Item.from_row(r) for r in rows], total

    # ---------------------------------------------------------------- expiry

    async def check_expiry(self) -> None:
        """Remind authors of posts about to expire; expire the overdue ones and tell them."""
        async with self._expiry_lock:
            now = time.time()
            try:
                await self._remind(now)
            finally:
                await self._expire(now)

    async def _remind(self, now: float) -> None:
        if self.remind_days <= 0 or self.remind_days >= self.expire_days:
            return
        rows = await self.db.fetchall(
            "SELECT * FROM items WHERE state = ? AND expires_at > ? AND expires_at <= ? "
            "AND plugin = ? AND reminded_at IS NULL ORDER BY expires_at LIMIT 500",
            (states.PUBLISHED, now, now + self.remind_days * 86400, self.name),
        )
        for item in map(Item.from_row, rows):
            claimed = await self.db.execute_rowcount(
                "UPDATE items SET reminded_at = ? WHERE id = ? AND reminded_at IS NULL",
                (now, item.id),
            )
            if claimed != 1 or item.expires_at is None:
                continue
            village = self.bot.villages.get(item.village)
            if village is None:
                continue
            t = self.bot.translator(village)
            try:
                await self.bot.moderation.tell_author(
                    item,
                    t(
                        "marketplace.reminder",
                        number=item.number,
                        title=item.title,
                        date=render.date(item.expires_at, village.tz, t),
                        prefix=self.prefix,
                    ),
                    purpose="reminder",
                    cause=str(item.expires_at),
                )
            except Exception as exc:
                self.log.warning("reminder for item %s failed, retrying later: %s", item.id, exc)
                await self.db.execute(
                    "UPDATE items SET reminded_at = NULL WHERE id = ?", (item.id,)
                )

    async def _expire(self, now: float) -> None:
        rows = await self.db.fetchall(
            "SELECT * FROM items WHERE state = ? AND expires_at <= ? AND plugin = ? "
            "ORDER BY expires_at LIMIT 500",
            (states.PUBLISHED, now, self.name),
        )
        for item in map(Item.from_row, rows):
            expired = await self.items.transition(item, states.EXPIRED)
            if expired is None:
                continue
            await self._closed(expired)
            village = self.bot.villages.get(expired.village)
            if village is None:
                continue
            t = self.bot.translator(village)
            try:
                await self.bot.moderation.tell_author(
                    expired,
                    t("marketplace.told_expired", number=expired.number, title=expired.title),
                    purpose="expired",
                    cause=str(expired.expires_at),
                )
            except Exception as exc:
                self.log.warning("could not tell the author of item %s: %s", expired.id, exc)
        if rows:
            self.log.info("expired %d posts", len(rows))


def _page(text: str) -> tuple[int, str]:
    """A trailing page number (``!angebote 2``) and the words before it."""
    words = text.split()
    page = parse_count(words[-1]) if words else None
    if page is not None:
        return max(1, page), " ".join(words[:-1])
    return 1, " ".join(words)


def _page_label(t: Translator, page: int) -> Text:
    return t("marketplace.page", page=page) if page > 1 else Text("", "")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
