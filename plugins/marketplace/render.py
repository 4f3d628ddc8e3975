"""How posts look: the published message, the queue view and list lines.

Every piece of user content goes through the catalog renderer (escaped) or
:func:`multiline` (escaped, line breaks kept); the catalogs hold the words.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dorfbot import items as states
from dorfbot.i18n import Text, Translator
from dorfbot.items import Item

SEPARATOR = Text(" · ", " · ")
DASH = Text(" – ", " – ")


def multiline(value: str) -> Text:
    """User text with its line breaks, escaped for HTML."""
    return Text(value, html.escape(value, quote=True).replace("\n", "<br>"))


def date(ts: float, tz: ZoneInfo, t: Translator, *, with_time: bool = False) -> str:
    """A point in time in the village's zone, formatted per the catalog."""
    fmt = t.plain("marketplace.datetime" if with_time else "marketplace.date")
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime(fmt)


def byline(item: Item, t: Translator) -> Text:
    if item.on_behalf_of:
        return t("marketplace.post_by_proxy", helper=item.author, name=item.on_behalf_of)
    return t("marketplace.post_by", author=item.author)


def meta(item: Item, t: Translator, *, tz: ZoneInfo | None = None) -> list[Text]:
    """Category, district (and date) as short pieces."""
    parts: list[Text] = []
    if item.category:
        parts.append(t("marketplace.meta_category", category=item.category))
    if item.district:
        parts.append(t("marketplace.meta_district", district=item.district))
    if tz is not None and item.published_at:
        parts.append(t("marketplace.meta_date", date=date(item.published_at, tz, t)))
    return parts


def summary(item: Item, t: Translator) -> Text:
    """The post as moderators see it in the queue (the core adds category and district)."""
    parts = [t("marketplace.post_title", title=item.title)]
    if item.body:
        parts.append(multiline(item.body))
    if item.on_behalf_of:
        parts.append(byline(item, t))
    return Text.join(parts)


def post(item: Item, t: Translator, prefix: str) -> Text:
    """The published message in the marketplace room."""
    parts = [
        t(f"marketplace.post_header.{item.kind}", number=item.number),
        t("marketplace.post_title", title=item.title),
    ]
    if item.body:
        parts.append(multiline(item.body))
    details = meta(item, t)
    if details:
        parts.append(Text.join(details, SEPARATOR))
    parts.append(byline(item, t))
    parts.append(t("marketplace.post_answer", prefix=prefix, number=item.number))
    return Text.join(parts)


def closed(item: Item, t: Translator) -> Text:
    """What the published message says once the post is done or expired."""
    return t(f"marketplace.post_closed.{item.state}", number=item.number, title=item.title)


def line(item: Item, t: Translator, tz: ZoneInfo, *, with_kind: bool = False) -> Text:
    """One entry of a list (``<li>``)."""
    details = meta(item, t, tz=tz)
    if item.on_behalf_of:
        details.append(t("marketplace.meta_for", name=item.on_behalf_of))
    return t(
        "marketplace.list_line_kind" if with_kind else "marketplace.list_line",
        number=item.number,
        kind=t(f"kind.{item.kind}"),
        title=item.title,
        meta=DASH + Text.join(details, SEPARATOR) if details else Text("", ""),
    )


def own_line(item: Item, t: Translator, tz: ZoneInfo, plugin: str) -> Text:
    """One entry of ``!meine``: any kind of item with its state."""
    extra = Text("", "")
    if item.plugin == plugin and item.state == states.PUBLISHED and item.expires_at:
        extra = t("marketplace.mine_expires", date=date(item.expires_at, tz, t))
    return t(
        "marketplace.mine_line",
        number=item.number,
        kind=t(f"kind.{item.kind}"),
        title=item.title,
        state=t(f"state.{item.state}"),
        extra=extra,
    )
