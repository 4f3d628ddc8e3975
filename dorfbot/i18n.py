"""Message catalogs and safe rendering of user-facing text.

Catalog files are flat YAML mappings ``key: template`` in ``locales/<lang>/*.yaml``
(the core's beside this module, each plugin's beside the plugin). Templates are
trusted text and may use a little HTML, only the tags in :data:`ELEMENT_X_TAGS`
(a unit test renders every template and checks); placeholders use
``str.format`` syntax. Every value substituted into a template is escaped for
the HTML body, so user content can never inject markup: this is the one place
where that rule is enforced.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_LANGUAGE = "de"

#: The only tags a template (or any formatted body of the bot) may use: what
#: Element X renders. It flattens or drops the rest (tables, headings, colour,
#: ``<details>``), so they would reach most residents as noise (SPEC 5).
ELEMENT_X_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "s", "del", "code", "pre", "ul", "ol", "li", "p", "br", "a",
     "blockquote"}
)  # fmt: skip

_TAG = re.compile(r"<[^>]+>")
_BLOCK_BREAK = re.compile(r"<br\s*/?>|</p>|</li>|</h\d>|</?ul>|</?ol>|</blockquote>", re.I)
_LIST_ITEM = re.compile(r"<li>", re.I)


@dataclass(frozen=True)
class Text:
    """A message in both forms a Matrix event needs: plain ``body`` and HTML."""

    plain: str
    html: str

    def __add__(self, other: Text) -> Text:
        return Text(self.plain + other.plain, self.html + other.html)

    @classmethod
    def join(cls, parts: Iterable[Text], sep: Text | None = None) -> Text:
        sep = sep or Text("\n", "<br>")
        items = list(parts)
        return Text(sep.plain.join(p.plain for p in items), sep.html.join(p.html for p in items))

    @classmethod
    def escaped(cls, value: str) -> Text:
        """User content as a Text: verbatim in plain, escaped in HTML."""
        return cls(value, html.escape(value, quote=True))


class Markup(str):
    """A trusted HTML fragment that is substituted without escaping.

    Only the core and plugins create it, for pieces they render themselves
    (e.g. a sub-list built from other catalog entries); never from user input.
    """

    plain: str

    def __new__(cls, text: Text) -> Markup:
        obj = super().__new__(cls, text.html)
        obj.plain = text.plain
        return obj


def html_to_plain(template: str) -> str:
    """Turn a trusted HTML template into its plain-text form (before substitution)."""
    text = _LIST_ITEM.sub("• ", template)
    text = _BLOCK_BREAK.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text).strip("\n") if "\n" in text else html.unescape(text)


class Catalog:
    """All templates of one language, merged from several catalog folders."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._templates: dict[str, str] = {}

    def load_dir(self, locales_dir: Path) -> None:
        folder = locales_dir / self.language
        if not folder.is_dir():
            return
        for file in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{file}: a catalog must be a mapping of key: text")
            self._templates.update({str(k): str(v) for k, v in data.items()})

    def get(self, key: str) -> str | None:
        return self._templates.get(key)

    def keys(self) -> set[str]:
        return set(self._templates)


class Translator:
    """Renders catalog keys in one language, falling back to German, then the key."""

    def __init__(self, catalogs: Mapping[str, Catalog], language: str) -> None:
        self.language = language if language in catalogs else DEFAULT_LANGUAGE
        self._catalogs = catalogs

    def template(self, key: str) -> str:
        for lang in (self.language, DEFAULT_LANGUAGE):
            catalog = self._catalogs.get(lang)
            if catalog and (found := catalog.get(key)) is not None:
                return found
        return key

    def has(self, key: str) -> bool:
        return self.template(key) != key

    def __call__(self, key: str, /, **params: Any) -> Text:
        return render(self.template(key), params)

    def plain(self, key: str, /, **params: Any) -> str:
        return self(key, **params).plain


def _format(template: str, values: Mapping[str, str]) -> str:
    try:
        return template.format_map(_Defaulting(values))
    except (ValueError, IndexError, AttributeError):
        # A broken template must not take a command down with it.
        return template


class _Defaulting(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, params: Mapping[str, Any]) -> Text:
    """Substitute params into a trusted template, escaping them for HTML."""
    html_values: dict[str, str] = {}
    plain_values: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, Markup):
            html_values[name] = str(value)
            plain_values[name] = value.plain
        elif isinstance(value, Text):
            html_values[name] = value.html
            plain_values[name] = value.plain
        else:
            text = "" if value is None else str(value)
            html_values[name] = html.escape(text, quote=True)
            plain_values[name] = text
    return Text(
        plain=_format(html_to_plain(template), plain_values),
        html=_format(template, html_values),
    )


class Catalogs:
    """Catalog folders of the core and all plugins, one Catalog per language."""

    def __init__(self, languages: Iterable[str] = ("de", "en")) -> None:
        self.by_language: dict[str, Catalog] = {lang: Catalog(lang) for lang in languages}

    def add_dir(self, locales_dir: Path) -> None:
        for catalog in self.by_language.values():
            catalog.load_dir(locales_dir)

    def translator(self, language: str) -> Translator:
        return Translator(self.by_language, language)


CORE_LOCALES = Path(__file__).parent / "locales"
