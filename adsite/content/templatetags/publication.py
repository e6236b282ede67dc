"""Template tags of the publication: ad slots (the one place a placement is rendered), cover art and
the section links (navigation, footer, home page), rendered once per set of sections and cached."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from django import template
from django.template.loader import get_template
from django.urls import get_script_prefix, reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import get_current_timezone_name
from django.utils.translation import get_language

from adsite.content.covers import cover_svg
from adsite.content.models import Article
from adsite.content.placements import house_ad

register = template.Library()


@register.inclusion_tag("site/_ad_slot.html", takes_context=True)
def ad_slot(context: template.Context, placement: str) -> dict[str, Any]:
    """Render the slot ``placement`` with the ad the view chose (``ad_slots``), else the house ad."""
    ad = (context.get("ad_slots") or {}).get(placement) or house_ad(placement=placement)
    return {"ad": ad, "placement": placement}


@register.simple_tag
def cover(category_slug: str, seed_text: str, label: str = "") -> SafeString:
    return cover_svg(category_slug=category_slug, seed_text=seed_text, label=label)


@register.simple_tag
def section_links(sections: Sequence[tuple[str, str]], current: str = "", lines: bool = False) -> SafeString:
    """``<li><a href=...>Name</a></li>`` for each (slug, name) of ``sections``, one per line with
    ``lines`` (as the masthead lays its list out); the link to ``current`` has ``aria-current="page"``.

    Every page shows these lists (30-odd links, two or three times): the links are built (``reverse``,
    escaping) once per (sections, current, script prefix) and cached, not per page."""
    return _section_links(tuple(sections), current or "", "\n        " if lines else "", get_script_prefix())


@lru_cache(maxsize=512)
def _section_links(sections: tuple[tuple[str, str], ...], current: str, separator: str, prefix: str) -> SafeString:
    # ``prefix`` (the script prefix ``reverse`` uses) is only part of the cache key
    items = []
    for slug, name in sections:
        marker = ' aria-current="page"' if current and slug == current else ""
        items.append(f'<li><a href="{escape(reverse("content:category", args=[slug]))}"{marker}>{escape(name)}</a></li>')
    return mark_safe(separator.join(items))  # noqa: S308 - escaped above


@register.simple_tag
def article_card(card: Article, variant: str = "") -> SafeString:
    """An article's card (``site/_card.html``). Lists show the same few cards on page after page, so a
    rendered card is kept, keyed on everything it shows (an edited article is a new key, never stale)
    and on what else its rendering depends on (script prefix, time zone, language)."""
    key = (
        card.slug, card.title, card.summary, card.author, card.published_at, card.reading_minutes,
        card.category.slug, card.category.name, variant or "", get_script_prefix(), get_current_timezone_name(),
        get_language(),
    )
    html = _CARDS.get(key)
    if html is None:
        if len(_CARDS) >= _CARDS_MAX:  # bounded: a cache, not a copy of the archive
            _CARDS.clear()
        rendered = get_template("site/_card.html").render({"card": card, "variant": variant})
        html = _CARDS[key] = mark_safe(rendered)  # noqa: S308 - rendered by an autoescaping template
    return html


_CARDS: dict[tuple[Any, ...], SafeString] = {}
_CARDS_MAX = 4096
