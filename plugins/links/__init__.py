"""Links and the info box: the village's important addresses, pinned where people look."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from dorfbot.commands import command, parse_number
from dorfbot.context import CommandContext
from dorfbot.i18n import Markup, Text
from dorfbot.plugin import Plugin
from dorfbot.roles import Role
from dorfbot.storage import sql_script
from dorfbot.webpage import WebPage, WebSection

MAX_TITLE = 120
MAX_URL = 2000
MAX_INFOBOX = 2000
_URL = re.compile(r"(?<!\S)(\S+://\S+|www\.\S+)$")


def valid_url(url: str) -> bool:
    """Only http and https links with a host; nothing a client could run."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= MAX_URL


class LinksPlugin(Plugin):
    """``!links`` for everyone; ``!link``, ``!linkloeschen``, ``!infobox`` for organizers."""

    name = "links"
    migrations = [
        sql_script(
            "CREATE TABLE links (village TEXT NOT NULL, number INTEGER NOT NULL, "
            "title TEXT NOT NULL, url TEXT NOT NULL, added_by TEXT NOT NULL, "
            "added_at REAL NOT NULL, PRIMARY KEY (village, number))",
            "CREATE TABLE links_infobox (village TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "set_by TEXT NOT NULL, room_id TEXT, event_id TEXT)",
        )
    ]

    @command("links", "info", examples=("!links",))
    async def show(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        rows = await self.db.fetchall(
            "SELECT number, title, url FROM links WHERE village = ? ORDER BY number", (village.id,)
        )
        box = await self.db.fetchone(
            "SELECT text FROM links_infobox WHERE village = ?", (village.id,)
        )
        if not rows and box is None:
            await ctx.answer("links.empty")
            return
        parts = []
        if box is not None:
            parts.append(ctx.t("links.infobox", text=box["text"]))
        if rows:
            entries = [
                ctx.t("links.entry", number=r["number"], title=r["title"], url=r["url"])
                for r in rows
            ]
            parts.append(ctx.t("links.list", entries=Markup(Text.join(entries, Text("\n", "")))))
        await ctx.answer(Text.join(parts))

    @command(
        "link",
        "addlink",
        role=Role.ORGANIZER,
        reaches_others=True,
        examples=("!link Gemeinde-Website https://www.example.org",),
    )
    async def add(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        match = _URL.search(ctx.args.text)
        url = match.group(1) if match else ""
        if url.startswith("www."):
            url = "https://" + url
        title = ctx.args.text[: match.start()].strip() if match else ""
        if not match or not valid_url(url):
            await ctx.answer("links.bad_url", prefix=self.bot.config.command_prefix)
            return
        if not title or len(title) > MAX_TITLE:
            await ctx.answer("links.bad_title", max=MAX_TITLE)
            return
        async with self.db.transaction():
            number = int(
                await self.db.fetchval(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM links WHERE village = ?",
                    (village.id,),
                )
            )
            await self.db.execute(
                "INSERT INTO links (village, number, title, url, added_by, added_at) "
                "VALUES (?, ?, ?, ?, ?, strftime('%s','now'))",
                (village.id, number, title, url, ctx.sender),
            )
        await ctx.answer("links.added", number=number, title=title)

    @command("linkloeschen", "dellink", role=Role.ORGANIZER, examples=("!linkloeschen 2",))
    async def remove(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        number, _ = parse_number(ctx.args.text)
        if number is None:
            await ctx.answer("links.need_number", prefix=self.bot.config.command_prefix)
            return
        count = await self.db.execute_rowcount(
            "DELETE FROM links WHERE village = ? AND number = ?", (village.id, number)
        )
        await ctx.answer("links.removed" if count else "links.not_found", number=number)

    @command(
        "infobox",
        role=Role.ORGANIZER,
        reaches_others=True,
        examples=("!infobox Rathaus: Mo–Fr 8–12 Uhr, Tel. 01234 5678",),
    )
    async def infobox(self, ctx: CommandContext) -> None:
        village = ctx.require_village
        text = "\n".join(p for p in (ctx.args.text, ctx.args.description) if p).strip()
        if not text or len(text) > MAX_INFOBOX:
            await ctx.answer("links.bad_infobox", max=MAX_INFOBOX)
            return
        old = await self.db.fetchone(
            "SELECT room_id, event_id FROM links_infobox WHERE village = ?", (village.id,)
        )
        room_id = self.bot.villages.room_id(village, "announcements")
        event_id = None
        if room_id is not None:
            sent = await self.bot.matrix.publish(
                room_id, ctx.t("links.infobox", text=text), key=ctx.key("infobox")
            )
            event_id = await sent.event_id()  # pinned and stored
            # Replace the previous info box among the room's pins, keep everyone else's.
            pinned = (await self.bot.matrix.get_state(room_id, "m.room.pinned_events")).get(
                "pinned", []
            )
            pinned = [
                e for e in pinned if isinstance(e, str) and (old is None or e != old["event_id"])
            ]
            try:
                await self.bot.matrix.set_pinned(room_id, [event_id, *pinned])
            except Exception as exc:
                self.log.warning("could not pin the info box: %s", exc)
        await self.db.execute(
            "INSERT INTO links_infobox (village, text, set_by, room_id, event_id) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(village) DO UPDATE SET text = excluded.text, "
            "set_by = excluded.set_by, room_id = excluded.room_id, event_id = excluded.event_id",
            (village.id, text, ctx.sender, room_id, event_id),
        )
        await ctx.answer("links.infobox_set")

    async def web_sections(self, page: WebPage) -> list[WebSection]:
        """The info box and the links, at the top of the village's public page."""
        village = page.village
        rows = await self.db.fetchall(
            "SELECT title, url FROM links WHERE village = ? ORDER BY number", (village.id,)
        )
        box = await self.db.fetchone(
            "SELECT text FROM links_infobox WHERE village = ?", (village.id,)
        )
        links = [{"title": r["title"], "url": r["url"]} for r in rows if valid_url(r["url"])]
        if not links and box is None:
            return []
        return [
            WebSection(
                key="info",
                title=page.plain("links.web.title"),
                template="links/section.html",
                context={"infobox": box["text"] if box else "", "links": links},
                order=10,
            )
        ]

    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        links = await self.db.fetchall(
            "SELECT village, number, title, url FROM links WHERE added_by = ?", (user_id,)
        )
        boxes = await self.db.fetchall(
            "SELECT village, text FROM links_infobox WHERE set_by = ?", (user_id,)
        )
        data: dict[str, Any] = {}
        if links:
            data["links"] = [dict(r) for r in links]
        if boxes:
            data["infobox"] = [dict(r) for r in boxes]
        return data

    async def forget_user(self, user_id: str) -> None:
        # Links and the info box belong to the village, not the person: keep them, unnamed.
        await self.db.execute("UPDATE links SET added_by = '' WHERE added_by = ?", (user_id,))
        await self.db.execute("UPDATE links_infobox SET set_by = '' WHERE set_by = ?", (user_id,))
