"""The village's public page and Atom feed: real homeserver, real bot, real HTTP, real browser.

Residents post through Matrix, moderators approve, remove and redact there; the
page and the feed are fetched over the bot's HTTP server and must follow. The
browser test loads the page in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium) at a phone's and a laptop's size and
runs axe-core (``tests/browser``, installed with ``npm ci``) for WCAG 2.1 A/AA.
Outside CI it is skipped when Chromium or axe-core is missing; ``.ci/run``
installs both.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
import pytest

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident, body_of
from dorfbot.testing.village import World, build_world

AXE = Path(__file__).resolve().parents[1] / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SIZES = [(390, 844), (1280, 800)]
PLAIN = "!ankuendigung Biotonne am Freitag. klick Abfallkalender"
FORMATTED = (
    '!ankuendigung <p><b>Biotonne</b> am Freitag. <a href="javascript:alert(1)">klick</a> '
    '<a href="https://example.org/abfall">Abfallkalender</a><script>alert(1)</script></p>'
)


@pytest.fixture
async def web_world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    """Two villages: the first with a public page and its marketplace, the second without."""
    world = await build_world(
        homeserver,
        tmp_path,
        villages=2,
        village_options={"web": {"public": True, "marketplace": True}},
        config_options={"commands_per_minute": 1000},
    )
    world.raw_config["villages"][1]["web"] = {"public": False}
    await world.start_bot()
    yield world
    await world.close()


def base_url(world: World) -> str:
    assert world.bot is not None and world.bot.web.port
    return f"http://127.0.0.1:{world.bot.web.port}"


async def get(world: World, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(base_url(world) + path) as resp:
        return resp.status, await resp.text()


async def until(check: Callable[[], Any], what: str, timeout: float = 15) -> None:
    """Poll an async check (the redaction reaches the bot through its sync)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def ask(person: Resident, room: str, body: str, **kwargs: Any) -> str:
    return body_of(await person.command(room, body, **kwargs)) or ""


def number(reply: str) -> int:
    match = re.search(r"Nr\. (\d+)", reply)
    assert match, reply
    return int(match.group(1))


async def approved(world: World, person: Resident, room: str, command: str) -> int:
    """Post through the queue and have the moderator approve it; the item's number."""
    reply = await ask(person, room, command)
    assert "Freigabe" in reply, reply
    nr = number(reply)
    assert "freigegeben" in await ask(world.moderator, world.room("moderation"), f"!freigeben {nr}")
    return nr


async def test_page_and_feed_follow_what_happens_in_the_village(web_world: World) -> None:
    world = web_world
    org, mod = world.village.organizer, world.moderator
    maria, otto = world.village.residents
    vid = world.village.id

    await org.command(world.room("announcements"), PLAIN, formatted_body=FORMATTED)
    announcement = await org.wait_for(
        world.room("announcements"),
        lambda e: e.get("sender") == world.bot_user_id and "Biotonne" in (body_of(e) or ""),
    )
    offer = await approved(world, maria, world.room("marketplace"), "!biete Rasenmäher #garten")
    second = await approved(world, otto, world.room("marketplace"), "!biete Leiter ortsteil:Nord")
    event = await approved(
        world, otto, world.room("calendar"), "!termin morgen 18 Uhr Laternenfest wo:Kirche"
    )

    status, page = await get(world, f"/{vid}/")
    assert status == 200
    for shown in ("Testdorf 0", "Biotonne", "Abfallkalender", "Rasenmäher", "Leiter"):
        assert shown in page, shown
    assert "Laternenfest" in page and "Ort: Kirche" in page and "Morgen, " in page
    assert f"Nr. {event}" in page and "Kalender abonnieren" in page
    assert "javascript:" not in page and "<script>alert" not in page
    people = [org, mod, maria, otto, world.admin, world.village.helper]
    for person in people:
        localpart = person.user_id[1:].split(":")[0]
        assert person.user_id not in page and localpart not in page, person.user_id

    status, feed_text = await get(world, f"/{vid}/feed.atom")
    feed = feedparser.parse(feed_text)
    assert status == 200 and not feed.bozo and feed.version == "atom10"
    (entry,) = feed.entries
    assert entry.id.startswith("tag:dorf.test,") and "Biotonne" in entry.content[0].value
    assert "javascript:" not in entry.content[0].value and entry.updated_parsed

    # removal, erasure and a moderator's redaction take things out again
    removed = await ask(mod, world.room("moderation"), f"!entfernen {event}")
    assert "entfernt" in removed, removed
    assert "vergessen ja" in await ask(maria, world.room("marketplace"), "!vergessen")
    assert "gelöscht" in await ask(maria, world.room("marketplace"), "!vergessen ja")
    await mod.redact(world.room("announcements"), announcement["event_id"])

    async def redaction_arrived() -> bool:
        return "Biotonne" not in (await get(world, f"/{vid}/feed.atom"))[1]

    await until(redaction_arrived, "the redacted announcement stayed in the feed")
    status, page = await get(world, f"/{vid}/")
    assert status == 200
    for gone in ("Biotonne", "Rasenmäher", "Laternenfest"):
        assert gone not in page, gone
    assert "Leiter" in page and f"Nr. {second}" in page and offer != second

    # a village without web.public has neither page nor feed
    other = world.villages[1].id
    assert (await get(world, f"/{other}/"))[0] == 404
    assert (await get(world, f"/{other}/feed.atom"))[0] == 404


# ---------------------------------------------------------------------- browser


def _browser_ready() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if not AXE.is_file():
        missing.append(f"{AXE} (npm ci --prefix tests/browser)")
    if missing and not os.environ.get("CI"):
        pytest.skip(f"not installed: {', '.join(missing)}")
    assert not missing, f"CI must install {missing} (.ci/run does)"


def _check_in_browser(url: str, shots: Path) -> list[str]:
    """Load the page at each size, take a screenshot, run axe; the problems found."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={shots / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    problems: list[str] = []
    try:
        driver.set_script_timeout(60)
        for variant in ("", "?embed=1"):
            for width, height in SIZES:
                driver.execute_cdp_cmd(
                    "Emulation.setDeviceMetricsOverride",
                    {
                        "width": width,
                        "height": height,
                        "deviceScaleFactor": 1,
                        "mobile": width < 600,
                    },
                )
                driver.get(url + variant)
                name = f"page{'-embed' if variant else ''}-{width}x{height}.png"
                driver.save_screenshot(str(shots / name))
                where = f"{variant or 'page'} at {width}x{height}"
                facts = driver.execute_script(
                    "const s = [...document.querySelectorAll('main > section')];"
                    "return {font: parseFloat(getComputedStyle(document.body).fontSize),"
                    " lang: document.documentElement.lang,"
                    " overflow: document.documentElement.scrollWidth - window.innerWidth,"
                    " lefts: [...new Set(s.map(e => Math.round(e.getBoundingClientRect().left)))],"
                    " sections: s.length, scripts: document.scripts.length};"
                )
                if facts["font"] < 18:
                    problems.append(f"{where}: base font {facts['font']} px")
                if facts["lang"] != "de":
                    problems.append(f"{where}: lang={facts['lang']!r}")
                if facts["overflow"] > 0:
                    problems.append(f"{where}: {facts['overflow']} px wider than the screen")
                if facts["sections"] < 4 or len(facts["lefts"]) != 1:
                    problems.append(f"{where}: not one column of sections: {facts}")
                if facts["scripts"]:
                    problems.append(f"{where}: {facts['scripts']} scripts on the page")
                driver.execute_script(AXE.read_text(encoding="utf-8"))
                result = driver.execute_async_script(
                    "const done = arguments[arguments.length - 1];"
                    "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
                    ".then(done, e => done({error: String(e)}));",
                    WCAG,
                )
                if "error" in result:
                    problems.append(f"{where}: axe failed: {result['error']}")
                    continue
                assert result["passes"], "axe checked nothing"
                for violation in result["violations"]:
                    targets = [n["target"] for n in violation["nodes"]][:3]
                    problems.append(f"{where}: {violation['id']} {violation['help']} {targets}")
    finally:
        driver.quit()
    return problems


async def test_page_in_a_real_browser_is_accessible(web_world: World, tmp_path: Path) -> None:
    _browser_ready()
    world = web_world
    org, admin = world.village.organizer, world.admin
    market, calendar = world.room("marketplace"), world.room("calendar")
    await org.command(world.room("announcements"), PLAIN, formatted_body=FORMATTED)
    await org.command(world.room("announcements"), "!rundruf Wasserrohrbruch in der Hauptstraße")
    await org.command(market, "!infobox Rathaus: Mo–Fr 8–12 Uhr\nBürgerbüro im Erdgeschoss")
    await org.command(market, "!link Gemeinde https://www.example.org")
    await admin.command(market, "!biete Rasenmäher zum Ausleihen #garten ortsteil:Nord")
    await admin.command(market, "!suche Hilfe beim Umzug #sonstiges ortsteil:Süd")
    await org.command(calendar, "!termin morgen 18 Uhr Laternenfest wo:Kirche")
    await org.command(calendar, "!termin jeden Montag 19:30 Chorprobe wo:Gemeindehaus")
    reply = await ask(org, calendar, "!termin übermorgen 15 Uhr Seniorenkaffee")
    await org.command(calendar, f"!absagen {number(reply)} Krankheit")

    async def all_there() -> bool:
        page = (await get(world, f"/{world.village.id}/"))[1]
        return all(t in page for t in ("Biotonne", "Wasserrohrbruch", "Abgesagt"))

    await until(all_there, "the announcements did not reach the page")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    url = f"{base_url(world)}/{world.village.id}/"
    problems = await asyncio.to_thread(_check_in_browser, url, shots)
    assert not problems, "\n".join(problems)
    assert len(list(shots.glob("*.png"))) == 4
