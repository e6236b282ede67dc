"""Writes of the ads app, one module per concern: ``billing`` (clicks, viewable impressions),
``explanations`` (kept decision explanations), ``privacy`` (a visitor's data deleted), ``staff``
(campaign and creative edits) and ``demo`` (the demo seed).
"""
