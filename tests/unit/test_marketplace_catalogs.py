"""The marketplace's catalogs: German and English complete and consistent."""

from __future__ import annotations

import string
from pathlib import Path

import yaml

from dorfbot.commands import COMMAND_ATTR
from dorfbot.plugin_loader import bundled_plugin, locales_dir

Marketplace = bundled_plugin("marketplace")
LOCALES = locales_dir(Marketplace)


def catalog(language: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for file in sorted((LOCALES / language).glob("*.yaml")):
        merged.update(yaml.safe_load(file.read_text(encoding="utf-8")))
    return merged


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    de, en = catalog("de"), catalog("en")
    assert de and set(de) == set(en)
    for key in de:
        assert placeholders(de[key]) == placeholders(en[key]), key


def test_every_command_has_help_and_usage() -> None:
    names = [
        getattr(func, COMMAND_ATTR).name
        for func in vars(Marketplace).values()
        if hasattr(func, COMMAND_ATTR)
    ]
    assert {
        "biete",
        "suche",
        "fuer",
        "angebote",
        "gesuche",
        "finde",
        "meine",
        "erledigt",
        "verlaengern",
        "loeschen",
        "kontakt",
    } <= set(names)
    for language in ("de", "en"):
        texts = catalog(language)
        for name in names:
            assert texts.get(f"help.{name}"), (language, name)
            assert texts.get(f"usage.{name}"), (language, name)


def test_english_aliases_of_the_spec() -> None:
    aliases = {
        getattr(func, COMMAND_ATTR).name: getattr(func, COMMAND_ATTR).aliases
        for func in vars(Marketplace).values()
        if hasattr(func, COMMAND_ATTR)
    }
    assert aliases == {
        "biete": ("offer",),
        "suche": ("request",),
        "fuer": ("for",),
        "angebote": ("offers",),
        "gesuche": ("requests",),
        "finde": ("find",),
        "meine": ("mine",),
        "erledigt": ("done",),
        "verlaengern": ("extend",),
        "loeschen": ("delete",),
        "kontakt": ("contact",),
    }


def test_core_moderation_catalogs_match() -> None:
    core = Path(__file__).resolve().parents[2] / "dorfbot" / "locales"
    de = yaml.safe_load((core / "de" / "moderation.yaml").read_text(encoding="utf-8"))
    en = yaml.safe_load((core / "en" / "moderation.yaml").read_text(encoding="utf-8"))
    assert set(de) == set(en)
    for key in de:
        assert placeholders(de[key]) == placeholders(en[key]), key
