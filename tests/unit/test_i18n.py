"""Catalog rendering: user values escaped in HTML, verbatim in plain text."""

from __future__ import annotations

from dorfbot.i18n import CORE_LOCALES, Catalogs, Markup, Text, html_to_plain, render

HOSTILE = '<img src=x onerror=alert(1)> <a href="javascript:alert(1)">x</a>'


def test_values_are_escaped_in_html_only() -> None:
    text = render("<b>{title}</b> von {who}", {"title": HOSTILE, "who": "A&B"})
    assert "<img" not in text.html and "&lt;img src=x" in text.html
    assert 'href="javascript' not in text.html
    assert text.plain == f"{HOSTILE} von A&B"
    assert "&amp;" in text.html


def test_markup_and_text_values_are_trusted() -> None:
    inner = Text("x", "<i>x</i>")
    text = render("a {inner} {m}", {"inner": inner, "m": Markup(Text("y", "<u>y</u>"))})
    assert text.html == "a <i>x</i> <u>y</u>"
    assert text.plain == "a x y"


def test_plain_form_of_lists() -> None:
    assert html_to_plain("<b>Titel</b><ul><li>eins</li><li>zwei</li></ul>Ende") == (
        "Titel\n• eins\n• zwei\n\nEnde"
    )


def test_braces_in_values_do_not_break_format() -> None:
    text = render("Hallo {name}", {"name": "{evil} {0}"})
    assert text.plain == "Hallo {evil} {0}"


def test_missing_placeholder_kept_and_bad_template_survives() -> None:
    assert render("a {missing}", {}).plain == "a {missing}"
    assert render("a {", {}).plain == "a {"


def test_core_catalogs_have_the_same_keys_in_both_languages() -> None:
    catalogs = Catalogs()
    catalogs.add_dir(CORE_LOCALES)
    de, en = catalogs.by_language["de"].keys(), catalogs.by_language["en"].keys()
    assert de == en
    assert catalogs.translator("en")("core.pong").plain == "pong"
    assert catalogs.translator("fr").language == "de"
