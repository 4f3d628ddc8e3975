"""The sending API decides the Matrix form from what a message is for (SPEC 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dorfbot.context import ReactionEvent
from dorfbot.i18n import Text
from dorfbot.matrix import Intent, Matrix, pill, reaction_key

BOT = "@dorfbot:test"
ANNA = "@anna:test"
BEN = "@ben:test"


@pytest.fixture
def matrix(tmp_path: Path) -> tuple[Matrix, list[dict[str, Any]]]:
    m = Matrix("http://127.0.0.1:1", BOT, tmp_path, encryption=False)
    sent: list[dict[str, Any]] = []

    async def send(room_id: str, content: dict[str, Any], **kwargs: Any) -> str:
        sent.append(content)
        return f"$e{len(sent)}"

    m.client.user_id = BOT  # as after login
    m.send = send  # type: ignore[method-assign]
    return m, sent


TEXT = Text("Nr. 3 wurde freigegeben", "<b>Nr. 3</b> wurde freigegeben")


async def test_answer_and_note_are_notices_that_mention_nobody(
    matrix: tuple[Matrix, list[dict[str, Any]]],
) -> None:
    m, sent = matrix
    await m.answer("!r", "$cmd", TEXT)
    await m.note("!r", TEXT)
    answer, note = sent
    assert answer["msgtype"] == note["msgtype"] == "m.notice"
    assert answer["m.mentions"] == note["m.mentions"] == {}
    assert answer["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    assert "m.relates_to" not in note
    assert answer["body"] == TEXT.plain and answer["formatted_body"] == TEXT.html


async def test_tell_is_text_mentioning_each_recipient_once_with_a_pill(
    matrix: tuple[Matrix, list[dict[str, Any]]],
) -> None:
    m, sent = matrix
    await m.tell("!r", TEXT, to=[ANNA, BEN, ANNA, BOT], reply_to="$cmd")
    (told,) = sent
    assert told["msgtype"] == "m.text"
    assert told["m.mentions"] == {"user_ids": [ANNA, BEN]}  # never the bot itself
    assert told["body"] == f"{ANNA}, {BEN}: {TEXT.plain}"
    assert told["formatted_body"].startswith(pill(ANNA).html + ", " + pill(BEN).html + ": ")
    assert told["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}


async def test_tell_does_not_repeat_a_pill_the_text_has(
    matrix: tuple[Matrix, list[dict[str, Any]]],
) -> None:
    m, sent = matrix
    greeting = Text("Willkommen, ", "Willkommen, ") + pill(ANNA) + Text("!", "!")
    await m.tell("!r", greeting, to=[ANNA])
    assert sent[0]["formatted_body"] == greeting.html
    assert sent[0]["m.mentions"] == {"user_ids": [ANNA]}


async def test_tell_nobody_publish_and_alert(
    matrix: tuple[Matrix, list[dict[str, Any]]],
) -> None:
    m, sent = matrix
    await m.tell("!r", TEXT, to=[])
    await m.publish("!r", TEXT)
    await m.alert("!r", TEXT)
    nobody, published, alert = sent
    assert nobody == published
    assert published["msgtype"] == "m.text" and published["m.mentions"] == {}
    assert alert["msgtype"] == "m.text" and alert["m.mentions"] == {"room": True}
    assert alert["body"].startswith("@room ") and alert["formatted_body"].startswith("@room ")


@pytest.mark.parametrize(
    ("intent", "msgtype", "mentions"),
    [
        (Intent.ANSWER, "m.notice", {}),
        (Intent.NOTE, "m.notice", {}),
        (Intent.TELL, "m.text", {"user_ids": [ANNA]}),
        (Intent.PUBLISH, "m.text", {}),
        (Intent.ALERT, "m.text", {"room": True}),
    ],
)
async def test_an_edit_keeps_the_form_and_never_pushes_again(
    matrix: tuple[Matrix, list[dict[str, Any]]],
    intent: Intent,
    msgtype: str,
    mentions: dict[str, Any],
) -> None:
    m, sent = matrix
    await m.edit("!r", "$old", TEXT, intent=intent, to=[ANNA])
    (edit,) = sent
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$old"}
    assert edit["m.mentions"] == {}
    assert edit["msgtype"] == edit["m.new_content"]["msgtype"] == msgtype
    assert edit["m.new_content"]["m.mentions"] == mentions
    assert edit["body"] == "* " + edit["m.new_content"]["body"]


def test_pill_escapes_its_label() -> None:
    assert pill("@a:test", "<b>A</b>") == Text(
        "<b>A</b>", '<a href="https://matrix.to/#/@a:test">&lt;b&gt;A&lt;/b&gt;</a>'
    )


@pytest.mark.parametrize(
    ("sent", "compared"),
    [
        ("\u2705", "✅"),
        ("\u2705\ufe0f", "✅"),
        ("\U0001f44d\ufe0f", "👍"),
        ("\U0001f44d\U0001f3fd", "👍"),
        ("\U0001f44d\U0001f3ff\ufe0f", "👍"),
        ("\u2714\ufe0e", "✔"),
        ("\u274c", "❌"),
    ],
)
def test_reaction_keys_compare_as_clients_mean_them(sent: str, compared: str) -> None:
    assert reaction_key(sent) == compared
    event = ReactionEvent("!r", "$e", ANNA, "$t", sent, 0)
    assert event.emoji == compared and event.key == sent
