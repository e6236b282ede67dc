"""Writes of the ads app, one module per concern: ``billing`` (clicks, viewable impressions),
``explanations`` (kept decision explanations), ``privacy`` (a visitor's data deleted), ``reservations``
(reservations whose answer the ledger lost, kept until voided), ``staff`` (campaign and creative edits) and
``demo`` (the demo seed).
"""
