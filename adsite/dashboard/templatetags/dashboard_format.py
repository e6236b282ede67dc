"""How the dashboard writes amounts: thousands separated, two decimals, the ads currency beside them;
a house campaign's budget (set huge so house ads never stop) as "no limit"."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()

# the one CTR of the dashboard, stated beside every CTR figure (ads pages, overview, reports, CSV)
CTR_DEFINITION = "clicks / served impressions"

# a budget at or above this is a placeholder for "never runs out" (the demo house campaign's 1e9)
NO_LIMIT = Decimal("100000000")


def currency() -> str:
    from adsite.ads.conf import ads_setting

    return str(ads_setting("CURRENCY"))


def money_text(value: Any, *, code: bool = True, digits: int = 2) -> str:
    if value is None or value == "":
        return "–"
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{amount:,.{digits}f}"
    return f"{text} {currency()}" if code else text


@register.filter
def money(value: Any) -> str:
    """``1234.5`` -> ``1,234.50 USD``."""
    return money_text(value)


@register.filter
def amount(value: Any) -> str:
    """``1234.5`` -> ``1,234.50`` (the currency named in a column head)."""
    return money_text(value, code=False)


@register.filter
def budget(value: Any, tier: str = "") -> str:
    """A budget, or "no limit" for a house campaign's placeholder budget."""
    try:
        unlimited = tier == "house" or Decimal(str(value)) >= NO_LIMIT
    except (InvalidOperation, ValueError):
        unlimited = False
    return "no limit" if unlimited else money_text(value)


@register.simple_tag
def currency_code() -> str:
    return currency()


@register.simple_tag
def ctr_definition() -> str:
    return CTR_DEFINITION


@register.filter
def get(mapping: Any, key: str) -> Any:
    """``mapping[key]`` in a template (None when missing)."""
    try:
        return mapping.get(key) if hasattr(mapping, "get") else mapping[key]
    except (KeyError, IndexError, TypeError):
        return None


@register.filter
def pct(value: Any, digits: int = 1) -> str:
    """A share (0.1234) as ``12.3%``; a dash for none."""
    if value is None or value == "":
        return "–"
    return f"{100 * float(value):.{int(digits)}f}%"


@register.filter
def signed_pct(value: Any) -> str:
    if value is None:
        return "–"
    return f"{100 * float(value):+.1f}%"


@register.filter
def seconds(value: Any) -> str:
    """Seconds as ``1 min 05 s`` / ``42 s``."""
    if value is None or value == "":
        return "–"
    total = int(round(float(value)))
    return f"{total // 60} min {total % 60:02d} s" if total >= 60 else f"{total} s"


@register.filter
def intcomma_plain(value: Any) -> str:
    if value is None or value == "":
        return "–"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
