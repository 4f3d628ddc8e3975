"""Organizers' formatted text: sanitised to what Element X renders, command words removed.

An organizer's client sends its own ``formatted_body`` (bold, lists, links).
Announcements keep that formatting, but only after :func:`clean_html` has run
it through nh3 (the Rust ``ammonia`` sanitizer) with the core's one allow-list,
:data:`dorfbot.i18n.ELEMENT_X_TAGS`: what Element X, the residents' client,
renders (SPEC 5). Scripts, styles, event handlers and foreign URL schemes never
survive; tags outside the list are dropped with their text kept. Headings (as a
client's markdown makes them), table rows and ``<details>`` become paragraphs,
so their text does not run into the next line.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence

import nh3

from dorfbot.i18n import ELEMENT_X_TAGS

MATRIX_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href"},
    "ol": {"start"},
    "code": {"class"},
}
LINK_SCHEMES = frozenset({"https", "http", "ftp", "mailto", "magnet"})
MAX_HTML_LENGTH = 20_000

_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")
_NUMBER = re.compile(r"[0-9]{1,6}")
_TAG = re.compile(r"<[^>]*>")
# A rich reply's quote (``<mx-reply>``) comes first; the HTML parser would move a
# block inside it out of it, so it is cut before parsing (the rest is still sanitised).
_MX_REPLY = re.compile(r"<mx-reply[\s>].*?</mx-reply\s*>", re.IGNORECASE | re.DOTALL)
# Headings, table rows and <details> become what Element X shows, so their text
# does not run together (applied to nh3's own output, where these tags carry no
# attributes; the result is sanitised once more).
_BOLD_BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "caption", "summary")
_CELLS = ("td", "th")
_RENAMES = (
    {"<strike>": "<s>", "</strike>": "</s>", "<tr>": "<p>", "</tr>": "</p>"}
    | {f"</{a}><{b}>": " " for a in _CELLS for b in _CELLS}
    | {
        t: ""
        for c in (*_CELLS, "table", "thead", "tbody", "details")
        for t in (f"<{c}>", f"</{c}>")
    }
    | {t: r for b in _BOLD_BLOCKS for t, r in ((f"<{b}>", "<p><b>"), (f"</{b}>", "</b></p>"))}
)
_FLATTENED = {*_BOLD_BLOCKS, *_CELLS, "strike", "table", "thead", "tbody", "tr", "details"}
_RENAME = re.compile("|".join(re.escape(t) for t in sorted(_RENAMES, key=len, reverse=True)))
_UNIT = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|.", re.DOTALL)
_EMPTY_INLINE = re.compile(r"<(b|strong|i|em|u|s|del|code)(?:\s[^>]*)?>\s*</\1>")
_EMPTY_PARAGRAPH = re.compile(r"^\s*<p>\s*</p>")
# Separators between the words we strip (the date parser also splits on , and ;).
_SEPARATORS = frozenset(" \t\n\r\u00a0,;")
_TRAILING = frozenset(" \t\n\r\u00a0,;:-–—")


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        scheme = value.split(":", 1)[0].lower() if ":" in value else ""
        return value if scheme in LINK_SCHEMES else None
    if attribute == "class":
        classes = [c for c in value.split() if _LANGUAGE_CLASS.fullmatch(c)]
        return " ".join(classes) or None
    if attribute == "start":
        return value if _NUMBER.fullmatch(value) else None
    return value


_DANGEROUS = {"script", "style", "mx-reply", "iframe", "object", "template"}


def _cleaner(tags: set[str]) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=tags,
        clean_content_tags=_DANGEROUS,
        attributes={tag: set(attrs) for tag, attrs in MATRIX_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        link_rel=None,
        url_schemes=set(LINK_SCHEMES),
        strip_comments=True,
    )


_FIRST_PASS = _cleaner(set(ELEMENT_X_TAGS) | _FLATTENED)
_CLEANER = _cleaner(set(ELEMENT_X_TAGS))


def clean_html(fragment: str) -> str:
    """``fragment`` reduced to the tags Element X renders (:data:`ELEMENT_X_TAGS`)."""
    first = _FIRST_PASS.clean(_MX_REPLY.sub("", fragment))
    return _CLEANER.clean(_RENAME.sub(lambda m: _RENAMES[m.group(0)], first)).strip()


#: What the village's public web page keeps of an announcement: text formatting,
#: lists, quotes and links (http, https, mailto). Headings would break the page's
#: outline and images come from the homeserver, so both are dropped (text kept).
WEB_TAGS = frozenset(
    {"p", "br", "b", "strong", "i", "em", "u", "s", "del", "strike", "sup", "sub",
     "ul", "ol", "li", "blockquote", "code", "pre", "a"}
)  # fmt: skip

_WEB_CLEANER = nh3.Cleaner(
    tags=set(WEB_TAGS),
    clean_content_tags=_DANGEROUS,
    attributes={"a": {"href"}, "ol": {"start"}},
    attribute_filter=_filter_attribute,
    link_rel="nofollow noopener noreferrer",
    url_schemes={"http", "https", "mailto"},
    strip_comments=True,
)


def web_html(fragment: str) -> str:
    """A stored announcement (already Matrix-clean) made safe for the public page and feed."""
    return _WEB_CLEANER.clean(_MX_REPLY.sub("", fragment)).strip()


def plain_to_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept."""
    return html.escape(text, quote=True).replace("\n", "<br>")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def strip_leading_words(fragment: str, words: Sequence[str]) -> str | None:
    """Remove ``words`` (as typed, e.g. ``!planen``, ``heute``) from the start of the text.

    ``fragment`` must already be sanitised (so tags are well formed and quotes
    in attributes escaped). Tags are kept; separators between the words and
    after the last one are dropped. Returns None when the text does not start
    with those words (the caller then falls back to the plain body).
    """
    needle = [ch for ch in _fold("".join(w for w in words)) if ch not in _SEPARATORS]
    if not needle:
        return fragment.strip()
    pos = 0
    out: list[str] = []
    done = False
    for match in re.finditer(r"<[^>]*>|[^<]+", fragment):
        piece = match.group(0)
        if piece.startswith("<"):
            out.append(piece)
            continue
        kept: list[str] = []
        units = _UNIT.findall(piece)
        for i, unit in enumerate(units):
            char = html.unescape(unit)
            if done:
                if char and char in _TRAILING:
                    continue
                kept.append("".join(units[i:]))
                break
            if char in _SEPARATORS:
                continue
            for c in _fold(char):
                if pos < len(needle) and c == needle[pos]:
                    pos += 1
                else:
                    return None
            done = pos == len(needle)
        out.append("".join(kept))
        if kept:
            out.append(fragment[match.end() :])
            break
    else:
        if not done:
            return None
    result = "".join(out)
    previous = None
    while previous != result:
        previous = result
        result = _EMPTY_INLINE.sub("", result)
    return _EMPTY_PARAGRAPH.sub("", result).strip()


def visible_text(fragment: str) -> str:
    """The text of an HTML fragment without tags (to test for emptiness)."""
    return html.unescape(_TAG.sub("", fragment)).strip()
