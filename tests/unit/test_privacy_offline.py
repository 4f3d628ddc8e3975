"""Erasure, retention and export logic on the offline bot (issue 18, items 1-3).

The transaction and rollback rules live in the database, so they are proven
here; that the redactions reach the rooms is proven on the real homeserver in
``tests/integration/test_privacy.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dorfbot.items import Item
from dorfbot.matrix import MatrixError
from dorfbot.privacy import PrivacyPlugin
from dorfbot.testing.offline import OfflineBot

ANNA = "@anna:test"
BERT = "@bert:test"
MOD = "@mod0:test"
MARKET, CALENDAR, MODROOM = "!marketplace0:test", "!calendar0:test", "!moderation0:test"


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[OfflineBot]:
    bot = await OfflineBot.create(tmp_path, villages=1)
    yield bot
    await bot.close()


def privacy(offline: OfflineBot) -> PrivacyPlugin:
    plugin = offline.bot.plugin("privacy")
    assert isinstance(plugin, PrivacyPlugin)
    return plugin


async def items_of(offline: OfflineBot, author: str) -> list[Item]:
    rows = await offline.bot.db.fetchall("SELECT * FROM items WHERE author = ?", (author,))
    return [Item.from_row(r) for r in rows]


async def anna_posts_and_gets_approved(offline: OfflineBot) -> tuple[Item, Item]:
    """Anna's approved event (Bert takes part, a reminder went out) and approved offer."""
    assert await offline.command(CALENDAR, ANNA, "!termin morgen 18 Uhr Dorffest") == "ok"
    assert await offline.command(MARKET, ANNA, "!biete Rasenmäher, Tel. 0170 123") == "ok"
    assert await offline.command(MODROOM, MOD, "!freigeben 1") == "ok"
    assert await offline.command(MODROOM, MOD, "!freigeben 2") == "ok"
    event, offer = sorted(await items_of(offline, ANNA), key=lambda i: i.number)
    assert event.published_event and offer.published_event
    calendar: Any = offline.bot.plugin("calendar")
    assert await calendar.events.add_rsvp(event.id, BERT, "$rsvp")
    await calendar.events.claim_reminder(event.id, datetime.now(UTC) + timedelta(days=1), "sent")
    return event, offer


async def forget(offline: OfflineBot, user: str) -> str:
    assert await offline.command(CALENDAR, user, "!vergessen") == "ok"
    assert await offline.command(CALENDAR, user, "!vergessen ja") == "ok"
    return str(offline.sent[-1].content["body"])


async def count(offline: OfflineBot, sql: str, *params: Any) -> int:
    return int(await offline.bot.db.fetchval(sql, params))


async def test_erasure_removes_calendar_rows_and_redacts_every_message(
    offline: OfflineBot,
) -> None:
    event, offer = await anna_posts_and_gets_approved(offline)
    assert await offline.command(MARKET, ANNA, "!angebote") == "ok"
    listing = offline.sent[-1]
    assert "Rasenmäher" in listing.content["body"]
    listing_id = listing.event_id
    before = len(offline.sent)
    reply = await forget(offline, ANNA)
    assert reply.startswith("Erledigt"), reply
    assert await items_of(offline, ANNA) == []
    for table in ("calendar_events", "calendar_rsvps", "calendar_reminders"):
        assert await count(offline, f"SELECT count(*) FROM {table}") == 0, table
    assert await count(offline, "SELECT count(*) FROM sent_messages") == 0
    assert await count(offline, "SELECT count(*) FROM privacy_redactions") == 0
    redacted = {event_id for _, event_id in offline.redacted}
    for item in (event, offer):
        assert item.queue_event in redacted and item.published_event in redacted
    assert listing_id in redacted  # a listing reply that showed the offer
    # every message outside the moderators' own replies that carried her titles
    carried = [
        sent.event_id
        for sent in offline.sent[:before]
        if any(w in sent.content.get("body", "") for w in ("Dorffest", "Rasenmäher"))
    ]
    assert len(carried) >= 8 and set(carried) <= redacted, set(carried) - redacted
    assert "8 meiner Nachrichten" in reply  # the originals; their edits go with them
    # !angebote lists nothing of hers any more
    assert await offline.command(MARKET, BERT, "!angebote") == "ok"
    assert "Rasenmäher" not in offline.sent[-1].content["body"]


async def test_a_failing_plugin_rolls_the_whole_erasure_back(
    offline: OfflineBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, offer = await anna_posts_and_gets_approved(offline)
    messages = await count(offline, "SELECT count(*) FROM sent_messages")

    async def broken(user_id: str) -> None:
        await offline.bot.db.execute("DELETE FROM links")  # its part, then it fails
        raise RuntimeError("disk on fire")

    await offline.command(CALENDAR, "@org0:test", "!link Gemeinde https://example.org")
    monkeypatch.setattr(offline.bot.plugin("links"), "forget_user", broken)
    reply = await forget(offline, ANNA)
    assert "nichts gelöscht" in reply, reply
    assert len(await items_of(offline, ANNA)) == 2
    assert await count(offline, "SELECT count(*) FROM calendar_rsvps") == 1
    assert await count(offline, "SELECT count(*) FROM links") == 1
    assert await count(offline, "SELECT count(*) FROM sent_messages") == messages
    assert await count(offline, "SELECT count(*) FROM privacy_redactions") == 0
    assert offline.redacted == []
    assert await offline.command(MARKET, BERT, "!finde Rasenmäher") == "ok"
    found = offline.sent[-1].content["body"]  # "nothing found" would repeat the word too
    assert f"Nr. {offer.number}" in found, found


async def test_redactions_are_sent_after_commit_and_resumed(
    offline: OfflineBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, offer = await anna_posts_and_gets_approved(offline)
    matrix = offline.bot.matrix
    working = matrix.redact

    async def down(*args: Any, **kwargs: Any) -> None:
        raise MatrixError("homeserver gone")

    monkeypatch.setattr(matrix, "redact", down)
    await forget(offline, ANNA)  # the bot "dies" before any redaction got through
    assert await items_of(offline, ANNA) == []
    queued = await count(offline, "SELECT count(*) FROM privacy_redactions")
    assert queued >= 4
    monkeypatch.setattr(matrix, "redact", working)
    done = await privacy(offline).send_redactions()  # at the next start / periodic round
    assert len(done) == queued
    assert {event.queue_event, event.published_event, offer.published_event} <= {
        e for _, e in offline.redacted
    }
    assert await count(offline, "SELECT count(*) FROM privacy_redactions") == 0


async def test_retention_purges_old_events_item_by_item(
    offline: OfflineBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await anna_posts_and_gets_approved(offline)
    assert await offline.command(MARKET, BERT, "!biete Leiter") == "ok"
    assert await offline.command(MODROOM, MOD, "!freigeben 3") == "ok"
    old = time.time() - 365 * 86400
    await offline.bot.db.execute("UPDATE items SET state = 'done', closed_at = ?", (old,))
    (ladder,) = await items_of(offline, BERT)
    marketplace = offline.bot.plugin("marketplace")
    assert marketplace is not None
    purge = marketplace.purge_items

    async def refuses_the_ladder(item_ids: list[int]) -> None:
        if ladder.id in item_ids:
            raise RuntimeError("cannot purge this one")
        await purge(item_ids)

    monkeypatch.setattr(marketplace, "purge_items", refuses_the_ladder)
    assert await privacy(offline).purge_closed() == 2
    remaining = await offline.bot.db.fetchall("SELECT id FROM items")
    assert [r["id"] for r in remaining] == [ladder.id]
    assert await count(offline, "SELECT count(*) FROM calendar_events") == 0
    assert (
        await count(offline, "SELECT count(*) FROM sent_messages WHERE item_id != ?", ladder.id)
        == 0
    )


async def test_export_holds_only_what_is_about_the_caller(offline: OfflineBot) -> None:
    await anna_posts_and_gets_approved(offline)
    assert await offline.command(MODROOM, MOD, f"!sperren {ANNA} 3 Spam") == "ok"
    anna = json.dumps(await privacy(offline).collect(ANNA), ensure_ascii=False)
    assert MOD not in anna
    assert "die Moderation" in anna
    assert "Rasenmäher" in anna and "messages_about_you" in anna
    data = await privacy(offline).collect(MOD)
    moderator = json.dumps(data, ensure_ascii=False)
    assert ANNA not in moderator
    for third_party in ("Rasenmäher", "0170 123", "Dorffest"):
        assert third_party not in moderator
    assert sorted(d["number"] for d in data["core"]["decisions"]) == [1, 2]
    assert [e["action"] for e in data["core"]["moderation_log"]] == ["approve", "approve", "block"]
