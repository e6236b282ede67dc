"""The content app's receivers of inference's requests (connected in ``ContentConfig.ready``)."""

from __future__ import annotations

from typing import Any


def on_categories_requested(sender: Any, **kwargs: Any) -> list[str]:
    """``inference.api.categories_requested``: the category slugs of the site's taxonomy."""
    from adsite.content.selectors import category_slugs

    return category_slugs()
