"""The dashboard's receivers of what tracking announces (connected in ``apps.py``); each calls one service."""

from __future__ import annotations

from typing import Any


def on_visitor_deleted(sender: Any, *, user_id: str, **kwargs: Any) -> None:
    """``tracking.signals.visitor_deleted``: the visitor's rolled-up visits go too."""
    from adsite.dashboard.analytics import visitor_analytics_forget

    visitor_analytics_forget(user_id)
