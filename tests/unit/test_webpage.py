"""The public page and Atom feed on the offline bot: content, privacy, escaping, HTTP rules.

The real plugins fill the page through their ``web_sections`` / ``web_feed``
hooks from what the commands stored; only the Matrix side is recorded instead
of sent. ``tests/integration/test_webpage.py`` proves the same on a real
homeserver and in a real browser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dorfbot.config import ConfigError, VillageConfig, WebConfig, parse_config
from dorfbot.i18n import CORE_LOCALES, Catalogs
from dorfbot.items import Item
from dorfbot.plugin_loader import bundled_plugin, locales_dir
from dorfbot.testing.offline import OfflineBot
from dorfbot.webpage import WebPage, xml_text

MARKET = "!marketplace0:test"
ENTRY_ID = r"tag:127\.0\.0\.1,\d{4}-\d{2}-\d{2}:v0/announcement/[0-9a-f]{16}"
MODERATION = "!moderation0:test"
ADMIN, MOD, ORG = "@admin:test", "@mod0:test", "@org0:test"
RESIDENT, OTHER = "@maria:test", "@otto:test"
HOSTILE = '<img src=x onerror=alert(1)> <a href="javascript:alert(1)">klick</a> <script>x</script>'
FORMATTED = (
    '!ankuendigung <h1>Wichtig</h1><p><b>Biotonne</b> <a href="javascript:alert(1)">böse</a> '
    '<a href="https://example.org/x?a=1&amp;b=2" onclick="alert(1)">gut</a>'
    '<img src="mxc://x/y" onerror="alert(1)"><script>alert(1)</script></p>'
)


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[OfflineBot]:
    bot = await OfflineBot.create(tmp_path)
    yield bot
    await bot.close()


def village(offline: OfflineBot, index: int = 0) -> VillageConfig:
    return offline.bot.config.villages[index]


async def run(offline: OfflineBot, sender: str, body: str, room: str = MARKET, **kw: Any) -> None:
    assert await offline.command(room, sender, body, **kw) == "ok", body
    await asyncio.sleep(0.05)  # announcements fan out in a task


async def latest(offline: OfflineBot, village_id: str = "v0") -> Item:
    row = await offline.bot.db.fetchone(
        "SELECT * FROM items WHERE village = ? ORDER BY id DESC LIMIT 1", (village_id,)
    )
    assert row is not None
    return Item.from_row(row)


async def page_and_feed(offline: OfflineBot, where: VillageConfig | None = None) -> tuple[str, str]:
    where = where or village(offline)
    pages = offline.bot.pages
    return await pages.render_page(where), await pages.render_feed(where)


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def assert_safe(html: str) -> None:
    """No script, no event handler, no link or source a browser could run."""
    for tag, attrs in parse(html).tags:
        assert tag not in ("script", "img", "iframe", "object", "embed", "form"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src"):
                assert value and re.match(r"(https?|webcal|mailto)://|#|mailto:", value), value


async def fill(offline: OfflineBot) -> None:
    """An announcement, events, offers and requests, links: published and not."""
    await run(offline, ORG, f"!ankuendigung Biotonne {HOSTILE}", formatted_body=FORMATTED)
    await run(offline, ORG, "!rundruf Wasserrohrbruch Hauptstraße")
    await run(offline, ADMIN, f"!biete Rasenmäher {HOSTILE} #garten ortsteil:Nord\nTel 0171 1234")
    await run(offline, ADMIN, "!suche Hilfe beim Umzug #sonstiges")
    await run(offline, ADMIN, '!fuer "Oma Erna, Tel. 0171 5550000" biete Apfelkuchen')
    await run(offline, RESIDENT, "!biete Wartet noch auf Freigabe")  # pending
    await run(offline, ADMIN, f"!termin morgen 18 Uhr Laternenfest {HOSTILE} wo:Kirche")
    await run(offline, ADMIN, "!termin jeden Montag 19:30 Chorprobe wo:Gemeindehaus")
    await run(offline, ORG, f"!link Gemeinde {HOSTILE} https://example.org/?a=1&b=2")
    await run(offline, ORG, f"!infobox Rathaus {HOSTILE}\nMo–Fr 8–12 Uhr")


# ------------------------------------------------------------------ content


async def test_page_shows_what_is_published_and_nobody_who_posted_it(
    offline: OfflineBot,
) -> None:
    await fill(offline)
    page, feed = await page_and_feed(offline)
    text = " ".join(parse(page).text)
    for shown in (
        "Dorf 0",
        "Biotonne",
        "Wasserrohrbruch Hauptstraße",
        "Rasenmäher",
        "Hilfe beim Umzug",
        "Apfelkuchen",
        "Laternenfest",
        "Chorprobe",
        "jeden Montag",
        "Ort: Kirche",
        "Rathaus",
        "Mo–Fr 8–12 Uhr",
        "Kategorie: garten",
        "Ortsteil: Nord",
        "Eilmeldung",
        "Kalender abonnieren",
    ):
        assert shown in text, shown
    assert "Wartet noch auf Freigabe" not in text  # pending
    # never who posted, for whom, nor a post's text (phone numbers live there)
    for hidden in ("@", "Oma Erna", "0171"):
        assert hidden not in page and hidden not in feed, hidden
    assert re.search(r"(Heute|Morgen), [A-Z][a-z]+tag, \d{1,2}\. [A-Z][a-zä]+", text)
    links = {a.get("href") for tag, a in parse(page).tags if tag == "a"}
    assert "webcal://127.0.0.1:8080/ical/v0.ics" in links
    assert "http://127.0.0.1:8080/ical/v0.ics" in links
    assert "https://matrix.to/#/!marketplace0:test" in links
    assert "!kontakt" in text
    assert '<html lang="de">' in page
    assert '<meta name="robots" content="noindex, nofollow">' in page


async def test_hostile_content_is_inert_in_page_and_feed(offline: OfflineBot) -> None:
    await fill(offline)
    page, feed = await page_and_feed(offline)
    assert_safe(page)
    assert "&lt;script&gt;" in page and "onerror=alert" in page  # shown as text
    # the organizer's formatting survives sanitising, its dangers do not
    assert '<a href="https://example.org/x?a=1&amp;b=2" rel="nofollow noopener noreferrer">' in page
    assert "<b>Biotonne</b>" in page and "<h1>Wichtig" not in page
    parsed = feedparser.parse(feed)
    assert not parsed.bozo, parsed.bozo_exception
    for entry in parsed.entries:
        assert_safe(entry.content[0].value)
    assert any("<b>Biotonne</b>" in e.content[0].value for e in parsed.entries)


async def test_feed_is_atom_with_stable_ids_and_dates(offline: OfflineBot) -> None:
    await fill(offline)
    _, first = await page_and_feed(offline)
    _, again = await page_and_feed(offline)
    assert first == again
    parsed = feedparser.parse(first)
    assert not parsed.bozo and parsed.version == "atom10"
    assert parsed.feed.title == "Neuigkeiten aus Dorf 0"
    assert parsed.feed.id.startswith("tag:127.0.0.1,2026-01-01:v0/")
    assert parsed.feed.author == "Dorf 0"
    assert {link.rel for link in parsed.feed.links} == {"self", "alternate"}
    ids = [entry.id for entry in parsed.entries]
    assert len(ids) == 2 and len(set(ids)) == 2
    for entry in parsed.entries:
        assert re.fullmatch(ENTRY_ID, entry.id)
        updated = datetime(*entry.updated_parsed[:6], tzinfo=UTC)
        assert abs((datetime.now(UTC) - updated).total_seconds()) < 60
        assert entry.published == entry.updated
        assert entry.link.startswith("http://127.0.0.1:8080/v0/#a-")
    assert parsed.entries[0].title == "Eilmeldung: Wasserrohrbruch Hauptstraße"  # newest first
    assert parsed.feed.updated == parsed.entries[0].updated


async def test_removed_closed_expired_and_erased_content_leaves(offline: OfflineBot) -> None:
    await fill(offline)
    await run(offline, RESIDENT, "!biete Fahrrad")
    bike = await latest(offline)
    await run(offline, MOD, f"!freigeben {bike.number}", room=MODERATION)
    await run(offline, ADMIN, "!biete Leiter")
    ladder = await latest(offline)
    await run(offline, ADMIN, "!biete Schubkarre")
    barrow = await latest(offline)
    await run(offline, ADMIN, "!termin übermorgen 10 Uhr Flohmarkt")
    fleamarket = await latest(offline)
    await run(offline, ADMIN, "!termin übermorgen 11 Uhr Seniorenkaffee")
    coffee = await latest(offline)
    page, _ = await page_and_feed(offline)
    for title in ("Fahrrad", "Leiter", "Schubkarre", "Flohmarkt", "Seniorenkaffee"):
        assert title in page, title

    await run(offline, MOD, f"!entfernen {ladder.number} Spam", room=MODERATION)
    await run(offline, ADMIN, f"!erledigt {barrow.number}")
    await run(offline, MOD, f"!entfernen {fleamarket.number}", room=MODERATION)
    await run(offline, ADMIN, f"!absagen {coffee.number} Regen")
    await run(offline, RESIDENT, "!vergessen", room=MARKET)
    await run(offline, RESIDENT, "!vergessen ja", room=MARKET)
    # a post past its expiry that the expiry job has not reached yet
    await offline.bot.db.execute(
        "UPDATE items SET expires_at = ? WHERE title = 'Hilfe beim Umzug'", (time.time() - 1,)
    )
    page, _ = await page_and_feed(offline)
    for gone in ("Fahrrad", "Leiter", "Schubkarre", "Flohmarkt", "Hilfe beim Umzug"):
        assert gone not in page, gone
    assert "Rasenmäher" in page
    cancelled = re.search(r'<li class="cancelled">(.*?)</li>', page, re.S)
    assert cancelled and "Seniorenkaffee" in cancelled[1] and "Abgesagt" in cancelled[1]


async def test_a_redacted_announcement_leaves_page_and_feed(offline: OfflineBot) -> None:
    await run(offline, ORG, "!ankuendigung Erste Nachricht")
    await run(offline, ORG, "!ankuendigung Zweite Nachricht")
    plugin = offline.bot.plugins["announcements"]
    row = await offline.bot.db.fetchone(
        "SELECT d.room_id, d.event_id FROM announcements_deliveries d "
        "JOIN announcements_fanouts f ON f.id = d.fanout_id WHERE f.text_plain = ?",
        ("Erste Nachricht",),
    )
    assert row is not None
    await plugin.on_redaction(row["room_id"], row["event_id"], MOD)
    page, feed = await page_and_feed(offline)
    assert "Erste Nachricht" not in page and "Erste Nachricht" not in feed
    assert "Zweite Nachricht" in page and "Zweite Nachricht" in feed


async def test_marketplace_only_when_the_village_shows_it(offline: OfflineBot) -> None:
    await fill(offline)
    without = replace(village(offline), web=WebConfig(public=True, marketplace=False))
    page, _ = await page_and_feed(offline, without)
    assert "Rasenmäher" not in page and "Marktplatz" not in page
    assert "Laternenfest" in page


async def test_english_village(offline: OfflineBot) -> None:
    await fill(offline)
    english = replace(village(offline), language="en")
    page, feed = await page_and_feed(offline, english)
    assert '<html lang="en">' in page
    assert "Upcoming events" in page and "Subscribe to the calendar" in page
    assert re.search(r"(Today|Tomorrow), [A-Z][a-z]+day, \d{1,2} [A-Z][a-z]+", page)
    assert feedparser.parse(feed).feed.title == "News from Dorf 0"


async def test_embed_leaves_out_the_frame(offline: OfflineBot) -> None:
    await fill(offline)
    full = await offline.bot.pages.render_page(village(offline))
    embedded = await offline.bot.pages.render_page(village(offline), embed=True)
    assert "<nav" in full and "<footer>" in full
    assert "<nav" not in embedded and "<footer>" not in embedded
    assert '<base target="_blank">' in embedded and "Laternenfest" in embedded


async def test_a_failing_plugin_leaves_out_only_its_section(
    offline: OfflineBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(offline)

    async def broken(page: WebPage) -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(offline.bot.plugins["calendar"], "web_sections", broken)
    page = await offline.bot.pages.render_page(village(offline))
    assert "Laternenfest" not in page and "Biotonne" in page


def test_xml_text_drops_what_xml_forbids() -> None:
    assert xml_text("a\x00b\x1fc\ufffe\ud800d\te") == "abcd\te"


# ------------------------------------------------------------------ HTTP


@pytest.fixture
async def client(offline: OfflineBot) -> AsyncIterator[TestClient[Any, Any]]:
    offline.bot.pages.add_routes()
    async with TestClient(TestServer(offline.bot.web.app)) as client:
        yield client


async def test_http_page_feed_and_conditional_requests(
    offline: OfflineBot, client: TestClient[Any, Any]
) -> None:
    await fill(offline)
    resp = await client.get("/v0/")
    assert resp.status == 200 and resp.content_type == "text/html"
    body = await resp.text()
    etag, modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    assert resp.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", body, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in resp.headers["Content-Security-Policy"]

    assert (await client.get("/v0/", headers={"If-None-Match": etag})).status == 304
    assert (await client.get("/v0/", headers={"If-Modified-Since": modified})).status == 304
    assert (await client.get("/v0/", headers={"If-None-Match": '"other"'})).status == 200
    embed = await client.get("/v0/?embed=1")
    assert embed.status == 200 and embed.headers["ETag"] != etag

    feed = await client.get("/v0/feed.atom")
    assert feed.status == 200 and feed.content_type == "application/atom+xml"
    assert not feedparser.parse(await feed.text()).bozo
    feed_tag = feed.headers["ETag"]
    assert (await client.get("/v0/feed.atom", headers={"If-None-Match": feed_tag})).status == 304

    redirect = await client.get("/v0", allow_redirects=False)
    assert redirect.status == 301 and redirect.headers["Location"] == "/v0/"

    # new content: new validators, and If-Modified-Since no longer answers 304
    await run(offline, ORG, "!ankuendigung Noch eine Nachricht")
    changed = await client.get("/v0/", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    assert "Noch eine Nachricht" in await changed.text()


async def test_http_reuses_a_page_until_the_data_changes(
    offline: OfflineBot, client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = offline.bot.pages
    calls: list[bool] = []
    render = pages.render_page

    async def counting(where: VillageConfig, *, embed: bool = False) -> str:
        calls.append(embed)
        return await render(where, embed=embed)

    monkeypatch.setattr(pages, "render_page", counting)
    for _ in range(3):
        assert (await client.get("/v0/")).status == 200
    assert calls == [False]
    await run(offline, ORG, "!link Neu https://example.org/neu")  # any write
    resp = await client.get("/v0/")
    assert resp.status == 200 and "example.org/neu" in await resp.text()
    assert calls == [False, False]


async def test_http_villages_without_a_public_page_answer_404(
    offline: OfflineBot, client: TestClient[Any, Any]
) -> None:
    for path in ("/v1/", "/v1/feed.atom", "/v1", "/nowhere/", "/nowhere/feed.atom"):
        assert (await client.get(path, allow_redirects=False)).status == 404, path


async def test_http_indexable_village(offline: OfflineBot, client: TestClient[Any, Any]) -> None:
    config = offline.bot.config
    villages = (replace(village(offline), web=WebConfig(public=True, indexable=True)),)
    offline.bot.config = replace(config, villages=villages + config.villages[1:])
    offline.bot.villages.config = offline.bot.config
    resp = await client.get("/v0/")
    assert resp.status == 200 and "X-Robots-Tag" not in resp.headers
    assert 'name="robots"' not in await resp.text()


# ------------------------------------------------------------------ config, catalogs


def _raw(web: Any) -> dict[str, Any]:
    return {
        "homeserver": "http://127.0.0.1:9",
        "user_id": "@bot:test",
        "password": "x",
        "villages": [{"id": "a", "rooms": {"moderation": "!m:test"}, "web": web}],
    }


def test_config_web_keys() -> None:
    config = parse_config(_raw({"public": True, "marketplace": True}), base_dir=Path("."), env={})
    assert config.villages[0].web == WebConfig(public=True, marketplace=True, indexable=False)
    default = parse_config(_raw(None), base_dir=Path("."), env={})
    assert default.villages[0].web == WebConfig()
    with pytest.raises(ConfigError) as bad:
        parse_config(_raw({"public": "yes", "markt": True}), base_dir=Path("."), env={})
    assert bad.value.problems == [
        "villages[0].web.markt: unknown key (known: public, marketplace, indexable)",
        "villages[0].web.public: must be true or false",
    ]


@pytest.mark.parametrize("name", ["announcements", "calendar", "links", "marketplace"])
def test_web_catalogs_are_complete(name: str) -> None:
    catalogs = Catalogs()
    catalogs.add_dir(CORE_LOCALES)
    catalogs.add_dir(locales_dir(bundled_plugin(name)))
    de, en = catalogs.by_language["de"].keys(), catalogs.by_language["en"].keys()
    assert de == en
    folder = locales_dir(bundled_plugin(name)).parent / "templates"
    used: set[str] = set()
    for template in folder.glob("*.html"):
        used |= set(re.findall(r"t\('([a-z_.]+)'", template.read_text(encoding="utf-8")))
    source = (folder.parent / "__init__.py").read_text(encoding="utf-8")
    used |= set(re.findall(r'page\.plain\(\s*"([a-z_.]+)"', source))
    assert used and {k for k in used if not k.endswith(("_", "."))} <= de
