"""Untrusted event JSON becomes typed views only when well-formed (other servers send anything)."""

from __future__ import annotations

import pytest

from dorfbot.context import MessageEvent, ReactionEvent

GOOD = {
    "type": "m.room.message",
    "event_id": "$e",
    "sender": "@a:x",
    "origin_server_ts": 1,
    "content": {"msgtype": "m.text", "body": "!ping"},
}


@pytest.mark.parametrize(
    "content",
    [
        None,
        [],
        "text",
        {},
        {"msgtype": "m.text"},
        {"msgtype": "m.text", "body": 42},
        {"msgtype": "m.text", "body": ["!ping"]},
        {"body": "!ping"},
        {"msgtype": 5, "body": "x"},
        {
            "msgtype": "m.text",
            "body": "* !ping",
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"},
        },
    ],
)
def test_malformed_messages_are_not_messages(content: object) -> None:
    assert MessageEvent.from_source("!r", {**GOOD, "content": content}) is None


def test_wellformed_message_and_bad_formatted_body() -> None:
    event = MessageEvent.from_source("!r", GOOD)
    assert event is not None and event.body == "!ping"
    odd = {
        **GOOD,
        "content": {
            **GOOD["content"],
            "format": "org.matrix.custom.html",
            "formatted_body": {"x": 1},
        },
    }
    parsed = MessageEvent.from_source("!r", odd)
    assert parsed is not None and parsed.formatted_body is None
    assert MessageEvent.from_source("!r", {**GOOD, "sender": None}) is None


@pytest.mark.parametrize(
    "relates",
    [
        None,
        "x",
        {},
        {"rel_type": "m.annotation"},
        {"rel_type": "m.annotation", "event_id": 1, "key": "✅"},
        {"rel_type": "m.reference", "event_id": "$t", "key": "✅"},
    ],
)
def test_malformed_reactions_are_not_reactions(relates: object) -> None:
    source = {
        "type": "m.reaction",
        "event_id": "$r",
        "sender": "@a:x",
        "content": {"m.relates_to": relates},
    }
    assert ReactionEvent.from_source("!r", source) is None
