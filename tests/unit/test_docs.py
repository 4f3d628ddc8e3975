"""The README's command reference is generated from the plugins and kept current."""

from __future__ import annotations

from pathlib import Path

from dorfbot.docs import END, START, declared_commands, reference, replace_block
from dorfbot.i18n import CORE_LOCALES, Catalogs
from dorfbot.plugin_loader import discover, locales_dir

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_command_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text
    assert replace_block(text, reference()) == text, (
        "README is stale: run `python -m dorfbot.docs --write README.md`"
    )


def test_every_command_has_help_in_both_languages() -> None:
    catalogs = Catalogs()
    catalogs.add_dir(CORE_LOCALES)
    for cls in discover():
        catalogs.add_dir(locales_dir(cls))
    for spec in declared_commands():
        for lang in ("de", "en"):
            assert catalogs.by_language[lang].get(spec.help_key), (lang, spec.name)


def test_command_names_are_unique_across_plugins() -> None:
    names = [n for spec in declared_commands() for n in spec.names]
    assert len(names) == len(set(names))
