"""The announcements plugin without a homeserver: catalogs, sanitising, due plans, claims."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dorfbot.dates import When, parse_when
from dorfbot.i18n import ELEMENT_X_TAGS, Catalogs
from dorfbot.plugin_loader import bundled_plugin, locales_dir
from dorfbot.storage import Database

PLUGIN = bundled_plugin("announcements")

from dorfbot_plugin_announcements.sanitize import (  # noqa: E402
    clean_html,
    plain_to_html,
    strip_leading_words,
    visible_text,
)
from dorfbot_plugin_announcements.store import ANNOUNCE, Store  # noqa: E402
from dorfbot_plugin_announcements.timing import (  # noqa: E402
    from_iso,
    local_start,
    plan_due,
    rebuild,
    to_iso,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


# ------------------------------------------------------------------ catalogs


def test_catalogs_have_the_same_keys_and_help_for_every_command() -> None:
    catalogs = Catalogs()
    catalogs.add_dir(locales_dir(PLUGIN))
    de, en = catalogs.by_language["de"].keys(), catalogs.by_language["en"].keys()
    assert de == en
    for spec in PLUGIN().command_specs():
        assert spec.help_key in de and spec.usage_key in de, spec.name
    # every key the code renders exists
    source = (Path(locales_dir(PLUGIN)).parent / "__init__.py").read_text(encoding="utf-8")
    used = set(re.findall(r'"(announcements\.[a-z_.]+[a-z_])"', source))
    used |= {f"announcements.kind.{k}" for k in ("announce", "alert")}
    used |= {f"announcements.weekday.{d}" for d in range(7)}
    used |= {"announcements.message_late", "announcements.alert_late"}
    assert used <= de, used - de


# ---------------------------------------------------------------- sanitising

HOSTILE = (
    "<mx-reply><blockquote>zitiert</blockquote></mx-reply>"
    '<p>!ankuendigung <b onclick="steal()">Wasser</b> abkochen'
    "<script>alert(1)</script><style>p{}</style>"
    '<a href="javascript:alert(1)">klick</a> <a href="https://dorf.example/info">Info</a>'
    '<img src="https://evil.example/x.png" onerror="alert(2)">'
    '<img src="mxc://example.org/abc" alt="Karte">'
    '<span style="position:fixed" data-mx-color="#ff0000">rot</span>'
    '<iframe src="https://evil.example"></iframe><code class="language-py evil">x</code>'
    "</p>"
)


def test_sanitiser_keeps_what_element_x_renders_only() -> None:
    out = clean_html(HOSTILE)
    for bad in ("script", "onclick", "onerror", "javascript", "style", "iframe", "evil", "zitiert"):
        assert bad not in out, (bad, out)
    assert "<b>Wasser</b>" in out
    assert '<a href="https://dorf.example/info">Info</a>' in out
    assert "<img" not in out and "<span" not in out and "rot" in out  # text kept
    assert '<code class="language-py">x</code>' in out
    assert set(re.findall(r"</?([a-z0-9]+)", out)) <= ELEMENT_X_TAGS


def test_headings_tables_and_colours_become_what_element_x_shows() -> None:
    out = clean_html(
        "<h1>Wichtig</h1><p>Heute <strike>nicht</strike> <font color='#ff0000'>rot</font></p>"
        "<table><thead><tr><th>Tag</th><th>Was</th></tr></thead><tr><td>Mo</td><td>Biotonne</td>"
        "</tr></table><details><summary>mehr</summary>"
        "Text</details><hr><ul><li><h3>Punkt</h3></li></ul>"
    )
    assert out.startswith("<p><b>Wichtig</b></p><p>Heute <s>nicht</s> rot</p>")
    assert "<li><p><b>Punkt</b></p></li>" in out
    assert "<p>Tag Was</p><p>Mo Biotonne</p><p><b>mehr</b></p>Text" in out
    assert set(re.findall(r"</?([a-z0-9]+)", out)) <= ELEMENT_X_TAGS


def test_strip_leading_words_keeps_formatting_of_the_rest() -> None:
    html = clean_html("<p><strong>!planen</strong> heute 10:30 <em>Biotonne</em> raus</p>")
    assert (
        strip_leading_words(html, ["!planen", "heute", "10:30"]) == "<p><em>Biotonne</em> raus</p>"
    )
    assert strip_leading_words("!Ankündigung&nbsp;A &amp; B", ["!ankündigung"]) == "A &amp; B"
    assert strip_leading_words("!rundruf x", ["!planen"]) is None
    assert strip_leading_words("<p>!planen</p>", ["!planen", "heute"]) is None
    assert visible_text(strip_leading_words("<p>!rundruf</p>", ["!rundruf"]) or "") == ""
    # separators the date parser skips may differ between body and HTML
    assert strip_leading_words(
        "!planen Mo,  7 Uhr - Hallo", ["!planen", "Mo,", "7", "Uhr", "-"]
    ) == ("Hallo")


def test_plain_text_is_escaped() -> None:
    assert plain_to_html("<b>x</b>\nzwei") == "&lt;b&gt;x&lt;/b&gt;<br>zwei"


# ---------------------------------------------------------------- due plans


def daily_at_ten() -> When:
    when, _ = parse_when(
        "täglich 10:00 Biotonne", now=datetime(2026, 3, 20, 12, tzinfo=BERLIN), tz=BERLIN
    )
    return when


def test_stored_rule_round_trips() -> None:
    when = daily_at_ten()
    again = rebuild(local_start(when), "Europe/Berlin", when.rrule)
    assert again == when
    moment = datetime(2026, 3, 21, 9, 0, 5, tzinfo=UTC)
    assert from_iso(to_iso(moment)) == moment.replace(microsecond=0)


def test_recurring_item_keeps_local_time_across_dst() -> None:
    when = daily_at_ten()
    runs = [when.next_after(datetime(2026, 3, 20, 12, tzinfo=BERLIN))]
    for _ in range(3):
        last = runs[-1]
        assert last is not None
        runs.append(when.next_after(last))
    # Berlin switches to summer time on 2026-03-29
    utc = [r.astimezone(UTC).hour for r in runs if r]
    assert utc == [9, 9, 9, 9]
    later = when.next_after(datetime(2026, 3, 28, 12, tzinfo=BERLIN))
    assert later is not None and later.astimezone(UTC).hour == 8
    assert later.astimezone(BERLIN).hour == 10


def test_due_on_time_fires_and_moves_on() -> None:
    when = daily_at_ten()
    occ = datetime(2026, 3, 21, 10, tzinfo=BERLIN)
    plan = plan_due(when, occ, occ + timedelta(seconds=1), HOUR)
    assert plan.fire == occ and not plan.late and plan.skipped == ()
    assert plan.next_run == datetime(2026, 3, 22, 10, tzinfo=BERLIN)


def test_missed_within_grace_is_sent_once_late() -> None:
    when = daily_at_ten()
    occ = datetime(2026, 3, 21, 10, tzinfo=BERLIN)
    plan = plan_due(when, occ, occ + timedelta(minutes=40), HOUR)
    assert plan.fire == occ and plan.late
    assert plan.next_run == datetime(2026, 3, 22, 10, tzinfo=BERLIN)


def test_missed_beyond_grace_is_skipped() -> None:
    when = daily_at_ten()
    occ = datetime(2026, 3, 21, 10, tzinfo=BERLIN)
    plan = plan_due(when, occ, occ + timedelta(hours=3), HOUR)
    assert plan.fire is None and plan.skipped == (occ,)
    assert plan.next_run == datetime(2026, 3, 22, 10, tzinfo=BERLIN)


def test_long_downtime_sends_only_the_latest_within_grace() -> None:
    when = daily_at_ten()
    first = datetime(2026, 3, 21, 10, tzinfo=BERLIN)
    now = datetime(2026, 3, 24, 10, 30, tzinfo=BERLIN)
    plan = plan_due(when, first, now, HOUR)
    assert plan.fire == datetime(2026, 3, 24, 10, tzinfo=BERLIN) and plan.late
    assert len(plan.skipped) == 3
    assert plan.next_run == datetime(2026, 3, 25, 10, tzinfo=BERLIN)


def test_one_off_finishes() -> None:
    start = datetime(2026, 3, 21, 10, tzinfo=BERLIN)
    when = When(start)
    assert plan_due(when, start, start, HOUR).next_run is None
    skipped = plan_due(when, start, start + 2 * HOUR, HOUR)
    assert skipped.fire is None and skipped.next_run is None and skipped.skipped == (start,)
    assert plan_due(when, start, start - HOUR, HOUR).fire is None  # not due yet


# ------------------------------------------------------------- exactly once


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = Database(tmp_path / "a.db")
    await db.open()
    await db.migrate("announcements", PLUGIN.migrations)
    yield Store(db)
    await db.close()


async def test_an_occurrence_is_claimed_once(store: Store) -> None:
    item = await store.add_scheduled(
        village="dorf",
        kind=ANNOUNCE,
        scope="village",
        creator="@org:x",
        text_plain="Biotonne",
        text_html="Biotonne",
        start_local="2026-03-21T10:00:00",
        tz="Europe/Berlin",
        rrule="FREQ=DAILY",
        next_run="2026-03-21T09:00:00Z",
        source_event="$cmd",
    )
    again = await store.add_scheduled(
        village="dorf",
        kind=ANNOUNCE,
        scope="village",
        creator="@org:x",
        text_plain="Biotonne",
        text_html="Biotonne",
        start_local="2026-03-21T10:00:00",
        tz="Europe/Berlin",
        rrule="FREQ=DAILY",
        next_run="2026-03-21T09:00:00Z",
        source_event="$cmd",
    )
    assert again.id == item.id and item.number == 1

    async def claim() -> bool:
        async with store.db.transaction():
            claimed: bool = await store.advance(
                item, fired="2026-03-21T09:00:00Z", next_run="2026-03-22T09:00:00Z"
            )
            return claimed

    results = await asyncio.gather(*(claim() for _ in range(5)))
    assert results.count(True) == 1
    fresh = await store.scheduled(item.id)
    assert fresh is not None and fresh.last_fired == "2026-03-21T09:00:00Z"
    # the same command handled twice makes one fan-out
    ids = {
        await store.create_fanout(
            origin="sched:1:2026-03-21T09:00:00Z",
            kind=ANNOUNCE,
            village="dorf",
            sender="@org:x",
            text_plain="x",
            text_html="x",
            rooms=[("!a:x", "dorf")],
        )
        for _ in range(2)
    }
    assert len(ids) == 1
    assert [d.room_id for d in await store.deliveries(ids.pop())] == ["!a:x"]
