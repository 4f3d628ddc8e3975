"""The command-line grammar of SPEC section 3: names, options, quoting, description."""

from __future__ import annotations

import pytest

from dorfbot.commands import (
    CommandSpec,
    CommandTable,
    RateLimiter,
    is_user_id,
    normalize_name,
    parse_args,
    parse_count,
    parse_number,
    split_command,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!ping", ("ping", "")),
        ("  !Biete Rasenmäher", ("biete", "Rasenmäher")),
        ("!löschen 12", ("loeschen", "12")),
        ("!Ankündigung Hallo", ("ankuendigung", "Hallo")),
        ("!biete\nzweite Zeile", ("biete", "\nzweite Zeile")),
        ("ping", None),
        ("!", None),
        ("! ping", None),
        ("!<script>", None),
    ],
)
def test_split_command(body: str, expected: tuple[str, str] | None) -> None:
    assert split_command(body, "!") == expected


def test_options_anywhere_and_text_kept() -> None:
    args = parse_args("Rasenmäher leihen #Garten ortsteil:Nord am See wo:Scheune")
    assert args.text == "Rasenmäher leihen"
    assert args.category == "garten"
    assert args.district == "Nord am See"
    assert args.where == "Scheune"


def test_quoted_option_value_returns_to_text() -> None:
    args = parse_args('morgen 18 Uhr wo:"Haus am See" Sommerfest bis:22:00')
    assert args.where == "Haus am See"
    assert args.text == "morgen 18 Uhr Sommerfest"
    assert args.until == "22:00"


def test_english_option_names_and_village() -> None:
    args = parse_args("Lawnmower district:Süd where:Barn until:20:00 village:musterdorf")
    assert (args.district, args.where, args.until, args.village) == (
        "Süd",
        "Barn",
        "20:00",
        "musterdorf",
    )
    assert args.text == "Lawnmower"


def test_description_is_the_further_lines() -> None:
    args = parse_args("Fahrt nach Soest #fahrdienst\nDienstag früh,\nbitte melden")
    assert args.text == "Fahrt nach Soest"
    assert args.description == "Dienstag früh,\nbitte melden"


def test_hash_inside_word_is_not_a_category() -> None:
    assert parse_args("Haus#5 frei").category is None
    assert parse_args("Haus#5 frei").text == "Haus#5 frei"


def test_urls_are_not_options() -> None:
    args = parse_args("Gemeinde https://example.org/wo:x")
    assert args.where is None
    assert args.text == "Gemeinde https://example.org/wo:x"


def test_control_characters_removed_and_length_capped() -> None:
    args = parse_args("a\x00b\x1b[31mc" + "x" * 100_000)
    assert "\x00" not in args.text and "\x1b" not in args.text
    assert len(args.raw) <= 4000


def test_take_quoted_for_proxy_posts() -> None:
    args = parse_args('"Frau Meier, Tel. 1234" biete Kuchen #sonstiges')
    name, rest = args.take_quoted()
    assert name == "Frau Meier, Tel. 1234"
    assert rest.text == "biete Kuchen"
    assert rest.category == "sonstiges"


def test_normalize_name() -> None:
    assert normalize_name("VERLÄNGERN") == "verlaengern"
    assert normalize_name("Straße") == "strasse"


def test_table_lookup_aliases_and_suggestions() -> None:
    table = CommandTable()
    table.add(CommandSpec(name="biete", aliases=("offer",), plugin="a"))
    table.add(CommandSpec(name="suche", aliases=("request",), plugin="a"))
    assert table.get("OFFER") is not None and table.get("offer").name == "biete"
    assert table.suggest("bitte", lambda s: True) == "biete"
    assert table.suggest("zzzz", lambda s: True) is None
    with pytest.raises(ValueError, match="taken"):
        table.add(CommandSpec(name="offer", plugin="b"))
    table.remove_plugin("a")
    assert table.get("biete") is None


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(limit=3, window=60)
    assert all(limiter.hit("u", now=t) for t in (0, 1, 2))
    assert not limiter.hit("u", now=3)
    assert limiter.should_warn("u", now=3)
    assert not limiter.should_warn("u", now=4)
    assert limiter.hit("u", now=61)
    assert limiter.hit("other", now=3)


# ------------------------------------------------------------------ properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=2000
) | st.builds(lambda s, n: s * n, st.text(max_size=20), st.integers(0, 4000))


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_parse_args_never_fails_and_stays_clean(raw: str) -> None:
    args = parse_args(raw)
    assert len(args.raw) <= 4000
    for value in (args.text, args.category, args.district, args.where, args.until, args.village):
        if value:
            assert not any(ch in value for ch in "\x00\x1b\x07")
    assert "\n" not in args.text


@settings(max_examples=300, deadline=None)
@given(hostile_text, st.sampled_from(["!", "?", "."]))
def test_split_command_never_fails(body: str, prefix: str) -> None:
    result = split_command(body, prefix)
    if result is not None:
        name, _ = result
        assert name and len(name) <= 32


@pytest.mark.parametrize(
    ("text", "number", "rest"),
    [
        ("12", 12, ""),
        ("Nr. 12 Wegen Regen", 12, "Wegen Regen"),
        ("nr.12", 12, ""),
        ("#7 x", 7, "x"),
        ("nr12", 12, ""),
        ("no. 3 reason\nsecond line", 3, "reason\nsecond line"),
        ("zwölf", None, "zwölf"),
        ("", None, ""),
        ("1234567890123", None, "1234567890123"),
        ("²", None, "²"),
        ("Nr. ³", None, "Nr. ³"),
        ("١٢", None, "١٢"),
        ("１２", None, "１２"),
        ("12abc", None, "12abc"),
    ],
)
def test_parse_number_takes_ascii_digits_only(text: str, number: int | None, rest: str) -> None:
    assert parse_number(text) == (number, rest)


def test_parse_count() -> None:
    assert parse_count("20") == 20
    assert parse_count("12345") is None  # more than four digits
    assert parse_count("123", digits=3) == 123
    for odd in ("²", "١٢", "１２", "-1", "1.5", ""):
        assert parse_count(odd) is None, odd


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("@troll:test", True),
        ("@anna.b-c=d/e+f_g:example.org", True),
        ("@x:example.org:8448", True),
        ("@x:[::1]:8448", True),
        ("@x:127.0.0.1", True),
        ("@troll:test,", False),
        ("@troll:", False),
        ("@:test", False),
        ("@troll", False),
        ("troll:test", False),
        ("@tr oll:test", False),
        ("@troll:-test", False),
        ("@x:test:999999", False),
        ("@" + "x" * 260 + ":test", False),
    ],
)
def test_is_user_id(text: str, valid: bool) -> None:
    assert is_user_id(text) is valid
