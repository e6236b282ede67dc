"""The public face of tracking: what other apps (the site, inference's training, ops) may call.

Nothing else in ``tracking`` is imported from outside it. Only plain values and frozen dataclasses
(``EventRecord``, ``IngestResult``) cross this module, never ORM rows.
"""

from __future__ import annotations

from tracking.consent import tracking_allowed, tracking_refusal
from tracking.identity import visitor_id
from tracking.selectors import event_records_iter, ledger_get
from tracking.services import (
    IngestContext,
    IngestResult,
    StorageUnavailable,
    context_from_request,
    events_ingest,
    ledger_counter_add,
    page_view_record_server,
)

__all__ = [
    "IngestContext",
    "IngestResult",
    "StorageUnavailable",
    "context_from_request",
    "event_records_iter",
    "events_ingest",
    "ledger_counter_add",
    "ledger_get",
    "page_view_record_server",
    "tracking_allowed",
    "tracking_refusal",
    "visitor_id",
]
