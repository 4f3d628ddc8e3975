"""The villages' public web pages and Atom feeds, for residents without Matrix.

Opt-in per village (``villages[].web.public``). On the HTTP server of
:mod:`dorfbot.web`:

- ``GET /<village>/`` renders the page: the village's name and the sections the
  plugins contribute through :meth:`~dorfbot.plugin.Plugin.web_sections`
  (info box and links, events, announcements, the marketplace), in the
  village's language, readable without JavaScript. ``?embed=1`` leaves out the
  outer frame (navigation, footer) for an iframe on the municipality's site.
- ``GET /<village>/feed.atom`` renders an Atom feed (RFC 4287) of the entries
  the plugins return from :meth:`~dorfbot.plugin.Plugin.web_feed`.

The core owns the frame and the HTTP rules (ETag and ``Last-Modified`` with 304
answers, ``noindex`` unless ``web.indexable``, a Content-Security-Policy that
allows no script at all) and knows nothing of what the plugins show. A rendered
page is reused while the database has not changed (:meth:`Database.change_count`)
and for at most :data:`CACHE_SECONDS`, so what merely ages (an event that
began, a post past its expiry) shows with that delay, and every write shows at
once. Every
page template is Jinja2 with autoescaping on: the frame in
``dorfbot/templates/``, a plugin's sections in ``<plugin>/templates/``, loaded
as ``<plugin name>/<file>``. User content reaches a template only as plain
values, which Jinja escapes; a plugin that has sanitised HTML (an organizer's
formatted announcement) passes it through a maintained sanitizer first. The
feed is written by feedgen, which escapes what it is given.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from feedgen.feed import FeedGenerator
from markupsafe import Markup

from dorfbot.config import VillageConfig
from dorfbot.i18n import Translator
from dorfbot.plugin_loader import templates_dir

if TYPE_CHECKING:
    from dorfbot.bot import Bot

log = logging.getLogger(__name__)

CORE_TEMPLATES = Path(__file__).parent / "templates"
CACHE_SECONDS = 60
ATOM_TYPE = "application/atom+xml"

# Characters XML 1.0 does not allow at all (user text may carry them; the feed must parse).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class WebSection:
    """One part of a village's page, contributed by a plugin.

    ``template`` is ``<plugin name>/<file>`` in the plugin's ``templates``
    folder; it is rendered with ``page`` (the :class:`WebPage`), ``t`` (catalog
    text) and ``context``. ``key`` is the section's anchor (unique on the page),
    ``title`` its heading (plain text), ``order`` its place (lower first).
    """

    key: str
    title: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    order: int = 50


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a village's Atom feed.

    ``id`` is a URI that never changes for this entry (:meth:`WebPage.tag`).
    ``html`` is an HTML fragment the plugin has already made safe; the feed
    carries it escaped (``type="html"``), so it cannot break the XML.
    """

    id: str
    title: str
    html: str
    updated: datetime
    published: datetime | None = None
    anchor: str | None = None


@dataclass(frozen=True)
class WebPage:
    """What a plugin gets to build its sections or feed entries for one request."""

    village: VillageConfig
    t: Translator
    now: datetime
    public_url: str
    embed: bool = False

    @property
    def url(self) -> str:
        """The page's public address (ends with ``/``)."""
        return f"{self.public_url}/{self.village.id}/"

    @property
    def feed_url(self) -> str:
        return f"{self.url}feed.atom"

    def text(self, key: str, /, **params: Any) -> Markup:
        """A catalog text as HTML (its values escaped by the catalog renderer)."""
        return Markup(self.t(key, **params).html)

    def plain(self, key: str, /, **params: Any) -> str:
        return self.t.plain(key, **params)

    def local(self, moment: datetime | float) -> datetime:
        """A moment (aware datetime or epoch seconds) in the village's time zone."""
        if not isinstance(moment, datetime):
            moment = datetime.fromtimestamp(moment, UTC)
        return moment.astimezone(self.village.tz)

    def day(self, day: date, *, relative: bool = False) -> str:
        """A date written out: ``Samstag, 12. Dezember`` (the year only if not this one).

        ``relative`` puts "Heute" / "Morgen" in front of today and tomorrow.
        """
        today = self.local(self.now).date()
        key = "web.date" if day.year == today.year else "web.date_year"
        text = self.t.plain(
            key,
            weekday=self.t.plain(f"web.weekday.{day.weekday()}"),
            day=str(day.day),
            month=self.t.plain(f"web.month.{day.month}"),
            year=str(day.year),
        )
        if relative and 0 <= (day - today).days <= 1:
            return self.t.plain("web.today" if day == today else "web.tomorrow", date=text)
        return text

    def clock(self, moment: datetime) -> str:
        """``18:30`` (the catalog adds ``Uhr`` where the language wants it)."""
        return self.t.plain("web.clock", hour=f"{moment.hour:02d}", minute=f"{moment.minute:02d}")

    def tag(self, since: date, *parts: object) -> str:
        """A stable ``tag:`` URI (RFC 4151) for something of this village."""
        host = urlsplit(self.public_url).hostname or "dorfbot"
        path = "/".join(str(p) for p in parts)
        return f"tag:{host},{since.isoformat()}:{self.village.id}/{path}"


def safe_html(fragment: str) -> Markup:
    """An HTML fragment that a maintained sanitizer (nh3) produced, trusted by templates.

    Never for anything else: every other value stays a plain string and is escaped.
    """
    return Markup(fragment)


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 forbids (escaping is the template's job)."""
    return _NOT_XML.sub("", str.__str__(value))


def _atom_date(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass
class Rendered:
    """A rendered page or feed with the validators of its content."""

    body: bytes
    etag: str
    last_modified: float


class PublicPages:
    """Renders and serves the public pages and feeds of every village with ``web.public``."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._env: jinja2.Environment | None = None
        self._css = (CORE_TEMPLATES / "page.css").read_text(encoding="utf-8")
        digest = base64.b64encode(hashlib.sha256(self._css.encode()).digest()).decode()
        # No script may run on the page, not even one a bug let through.
        self.csp = (
            f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'"
        )
        # (village, variant) -> (etag, first time this content was served)
        self._seen: dict[tuple[str, str], tuple[str, float]] = {}
        # (village, variant) -> ((database change count, time slot), rendered)
        self._cache: dict[tuple[str, str], tuple[tuple[int, int], Rendered]] = {}

    def add_routes(self) -> None:
        """Register the routes (after the plugins' own, so theirs are matched first)."""
        self.bot.web.add_get("/{village:[a-z0-9-]+}", self._redirect)
        self.bot.web.add_get("/{village:[a-z0-9-]+}/", self._serve_page)
        self.bot.web.add_get("/{village:[a-z0-9-]+}/feed.atom", self._serve_feed)

    # ------------------------------------------------------------------ templates

    @property
    def env(self) -> jinja2.Environment:
        """The template environment, built once the plugins are loaded."""
        if self._env is None:
            loaders: dict[str, jinja2.BaseLoader] = {}
            for plugin in self.bot.plugins.values():
                folder = templates_dir(type(plugin))
                if folder.is_dir():
                    loaders[plugin.name] = jinja2.FileSystemLoader(folder)
            self._env = jinja2.Environment(
                loader=jinja2.ChoiceLoader(
                    [jinja2.PrefixLoader(loaders), jinja2.FileSystemLoader(CORE_TEMPLATES)]
                ),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                auto_reload=False,
            )
        return self._env

    # ------------------------------------------------------------------ rendering

    def page_for(self, village: VillageConfig, *, embed: bool = False) -> WebPage:
        return WebPage(
            village=village,
            t=self.bot.translator(village),
            now=datetime.now(UTC),
            public_url=self.bot.config.http.public_url,
            embed=embed,
        )

    async def sections(self, page: WebPage) -> list[tuple[WebSection, Markup]]:
        """Every plugin's sections, rendered, in order; a failing plugin is left out."""
        found: list[tuple[WebSection, Markup]] = []
        for plugin in list(self.bot.plugins.values()):
            try:
                for section in await plugin.web_sections(page):
                    template = self.env.get_template(section.template)
                    html = template.render(page=page, t=page.text, **section.context)
                    found.append((section, Markup(html)))
            except Exception:
                log.exception("plugin %s: web_sections failed", plugin.name)
        found.sort(key=lambda pair: pair[0].order)
        return found

    async def render_page(self, village: VillageConfig, *, embed: bool = False) -> str:
        """The village's page as HTML."""
        page = self.page_for(village, embed=embed)
        sections = await self.sections(page)
        return self.env.get_template("page.html").render(
            page=page,
            t=page.text,
            village=village,
            sections=sections,
            css=Markup(self._css),
            indexable=village.web.indexable,
            embed=embed,
        )

    async def feed_entries(self, page: WebPage) -> list[FeedEntry]:
        entries: list[FeedEntry] = []
        for plugin in list(self.bot.plugins.values()):
            try:
                entries.extend(await plugin.web_feed(page))
            except Exception:
                log.exception("plugin %s: web_feed failed", plugin.name)
        entries.sort(key=lambda e: (e.updated, e.id), reverse=True)
        return entries

    async def render_feed(self, village: VillageConfig) -> str:
        """The village's Atom feed as XML."""
        page = self.page_for(village)
        entries = await self.feed_entries(page)
        if entries:
            updated = max(e.updated for e in entries)
        else:  # an empty feed still needs a stable <updated>
            updated = datetime.fromtimestamp(self._first_seen((village.id, "feed-empty")), UTC)
        feed = FeedGenerator()
        feed.id(page.tag(date(2026, 1, 1), "feed"))
        feed.title(xml_text(page.plain("web.feed_title", village=village.name)))
        feed.updated(_atom_date(updated))
        feed.link(href=page.feed_url, rel="self", type=ATOM_TYPE)
        feed.link(href=page.url, rel="alternate", type="text/html")
        feed.author({"name": xml_text(village.name)})
        feed.language(village.language)
        feed.generator("dorfbot")
        for e in entries:
            entry = feed.add_entry(order="append")
            entry.id(xml_text(e.id))
            entry.title(xml_text(e.title))
            entry.updated(_atom_date(e.updated))
            if e.published:
                entry.published(_atom_date(e.published))
            entry.link(href=page.url + (f"#{e.anchor}" if e.anchor else ""), rel="alternate")
            entry.content(xml_text(e.html), type="html")
        return str(feed.atom_str(pretty=True).decode())

    def _first_seen(self, key: tuple[str, str], etag: str = "") -> float:
        known = self._seen.get(key)
        if known is None or known[0] != etag:
            known = (etag, float(int(time.time())))
            self._seen[key] = known
        return known[1]

    def _rendered(self, key: tuple[str, str], text: str) -> Rendered:
        body = text.encode()
        etag = hashlib.sha256(body).hexdigest()[:32]
        return Rendered(body, etag, self._first_seen(key, etag))

    async def _cached(self, key: tuple[str, str], render: Callable[[], Awaitable[str]]) -> Rendered:
        """The rendered text of ``key``, rendered again once the data or the slot changed.

        The change count is read before rendering: a write while rendering makes
        the next request render again.
        """
        stamp = (await self.bot.db.change_count(), int(time.time() // CACHE_SECONDS))
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        rendered = self._rendered(key, await render())
        self._cache[key] = (stamp, rendered)
        return rendered

    # ------------------------------------------------------------------ HTTP

    def _village(self, request: web.Request) -> VillageConfig:
        village = self.bot.villages.get(request.match_info.get("village", ""))
        if village is None or not village.web.public:
            raise web.HTTPNotFound()
        return village

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        village = self._village(request)
        raise web.HTTPMovedPermanently(f"/{village.id}/")

    async def _serve_page(self, request: web.Request) -> web.StreamResponse:
        village = self._village(request)
        embed = request.query.get("embed") == "1"
        rendered = await self._cached(
            (village.id, "embed" if embed else "page"),
            lambda: self.render_page(village, embed=embed),
        )
        headers = {"Content-Security-Policy": self.csp}
        return self._respond(request, village, rendered, "text/html", headers)

    async def _serve_feed(self, request: web.Request) -> web.StreamResponse:
        village = self._village(request)
        rendered = await self._cached((village.id, "feed"), lambda: self.render_feed(village))
        return self._respond(request, village, rendered, ATOM_TYPE, {})

    def _respond(
        self,
        request: web.Request,
        village: VillageConfig,
        rendered: Rendered,
        content_type: str,
        extra: dict[str, str],
    ) -> web.StreamResponse:
        headers = {
            "Cache-Control": f"public, max-age={CACHE_SECONDS}",
            "X-Content-Type-Options": "nosniff",
            **extra,
        }
        if not village.web.indexable:
            headers["X-Robots-Tag"] = "noindex, nofollow"
        if _not_modified(request, rendered):
            response = web.Response(status=304, headers=headers)
        else:
            response = web.Response(
                body=rendered.body, content_type=content_type, charset="utf-8", headers=headers
            )
        response.etag = rendered.etag
        response.last_modified = rendered.last_modified
        return response


def _not_modified(request: web.Request, rendered: Rendered) -> bool:
    """RFC 9110 section 13.1: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.if_none_match  # weak or strong: GET compares weakly
    if if_none_match is not None:
        return any(tag.value in ("*", rendered.etag) for tag in if_none_match)
    since = request.if_modified_since
    return since is not None and since.timestamp() >= rendered.last_modified


__all__: Sequence[str] = [
    "FeedEntry",
    "PublicPages",
    "WebPage",
    "WebSection",
    "safe_html",
    "xml_text",
]
