"""The public face of tracking: what other apps (the site, inference's training, ops) may call.

Nothing else in ``tracking`` is imported from outside it. Only plain values and frozen dataclasses
(``EventRecord``, ``IngestResult``) cross this module, never ORM rows.
"""

from __future__ import annotations

from tracking.bots import user_agent_device, user_agent_is_bot
from tracking.consent import edge_mode, edge_mode_for, tracking_allowed, tracking_refusal
from tracking.features_backlog import feature_backlog_clear
from tracking.identity import visitor_id, visitor_id_from_cookie
from tracking.importing import category_slugs, events_import, generic_rows
from tracking.network import client_ip_truncated
from tracking.privacy import DeletionResult, user_data_delete
from tracking.ratelimit import rate_limit_check, rate_limited, too_many_requests
from tracking.schema import EVENT_TYPES
from tracking.selectors import (
    AnalyticsEvent,
    EventSummary,
    QuarantinedSummary,
    analytics_events_iter,
    event_days_received,
    event_records_iter,
    events_recorded,
    feature_backlog_size,
    ledger_counters,
    ledger_get,
    quarantine_reasons,
    quarantined_list,
    traffic_counts_by_minute,
    user_events_recent,
)
from tracking.services import (
    IngestContext,
    IngestResult,
    ReplayResult,
    StorageUnavailable,
    context_from_request,
    events_ingest,
    ledger_counter_add,
    page_view_record_server,
    quarantined_replay,
)

__all__ = [
    "AnalyticsEvent",
    "analytics_events_iter",
    "event_days_received",
    "category_slugs",
    "client_ip_truncated",
    "EVENT_TYPES",
    "DeletionResult",
    "EventSummary",
    "IngestContext",
    "IngestResult",
    "QuarantinedSummary",
    "ReplayResult",
    "StorageUnavailable",
    "context_from_request",
    "event_records_iter",
    "events_recorded",
    "events_ingest",
    "events_import",
    "generic_rows",
    "feature_backlog_clear",
    "feature_backlog_size",
    "ledger_counter_add",
    "ledger_counters",
    "ledger_get",
    "page_view_record_server",
    "quarantine_reasons",
    "quarantined_list",
    "quarantined_replay",
    "rate_limit_check",
    "rate_limited",
    "too_many_requests",
    "traffic_counts_by_minute",
    "user_data_delete",
    "user_events_recent",
    "tracking_allowed",
    "edge_mode",
    "edge_mode_for",
    "user_agent_device",
    "user_agent_is_bot",
    "tracking_refusal",
    "visitor_id",
    "visitor_id_from_cookie",
]
