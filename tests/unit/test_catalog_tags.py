"""Every catalog message of the core and of every plugin uses only tags Element X renders."""

from __future__ import annotations

import string
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from dorfbot.i18n import CORE_LOCALES, ELEMENT_X_TAGS, render

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
FILES = sorted([*CORE_LOCALES.glob("*/*.yaml"), *PLUGINS.glob("*/locales/*/*.yaml")])


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        self.tags.add(tag)


def _sample(template: str) -> dict[str, str]:
    """A sample value for each placeholder, with markup that must arrive escaped."""
    names = {f[1] for f in string.Formatter().parse(template) if f[1]}
    return {name: f"Beispiel <b>{name}</b> & <h1>x</h1>" for name in names}


def test_every_plugin_and_the_core_have_catalogs() -> None:
    owners = {f.parent.parent.parent.name for f in FILES}
    assert {"dorfbot", "marketplace", "calendar", "announcements", "links", "welcome"} <= owners


@pytest.mark.parametrize("path", FILES, ids=lambda p: "/".join(p.parts[-4:]))
def test_catalog_uses_only_element_x_tags(path: Path) -> None:
    catalog = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    wrong = {}
    for key, template in catalog.items():
        try:
            params = _sample(str(template))
        except ValueError:
            params = {}
        parser = _Tags()
        parser.feed(render(str(template), params).html)
        if parser.tags - ELEMENT_X_TAGS:
            wrong[key] = sorted(parser.tags - ELEMENT_X_TAGS)
    assert not wrong, f"{path}: tags Element X does not render: {wrong}"
