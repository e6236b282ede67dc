"""Template tags of the publication: ad slots (the one place a placement is rendered) and cover art."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from adsite.content.covers import cover_svg
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
