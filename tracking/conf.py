"""Tracking settings: defaults here, overrides from ``settings.TRACKING`` (which reads the environment).

``tracking_settings()`` is the one accessor (attribute access, DRF ``api_settings`` style);
nothing in ``tracking`` reads ``os.environ``. What tracking tells other apps goes through ``tracking.signals``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Require the consent cookie (adsite_consent=granted) before recording anything.
    "CONSENT_REQUIRED": False,
    "RETENTION_DAYS": 395,
    # PostgreSQL: daily partitions of the events table created this many days ahead of today (by the
    # hourly beat task ``tracking.partitions_ensure``; tracking.partitions).
    "PARTITIONS_AHEAD_DAYS": 7,
    # A /collect or /api/v1/events body above this answers 413 (only this many bytes are ever read).
    "MAX_BODY_BYTES": 256 * 1024,
    # More events than this in one body: 400 ``batch_too_large`` (the body is quarantined).
    "MAX_BATCH_EVENTS": 500,
    # "redis" (services mode: a Redis Stream flushed by a worker) or "database" (write in the request).
    "BUFFER": "database",
    # Redis URL of the event stream (defaults to settings.REDIS_URL).
    "REDIS_URL": None,
    # Socket timeouts (seconds) of the collect path's Redis client: short, so that an unreachable Redis
    # turns into a write-through to the database quickly instead of a hung request.
    "REDIS_SOCKET_TIMEOUT": 0.25,
    "STREAM_KEY": "adsite:events",
    "STREAM_GROUP": "flush",
    "LEDGER_KEY": "adsite:ledger",
    "DEDUPE_PREFIX": "adsite:dedupe:",
    # The buffer in shards (scale-out: a Redis Cluster spreads them over its masters): each event goes to
    # shard crc32(event_id) % STREAM_SHARDS, a stream with its own dedupe keys and ledger counters in one
    # hash slot, flushed by a flush of its own. 1 on one Redis keeps the names above unchanged.
    "STREAM_SHARDS": 1,
    # How long the Redis dedupe keys live; older duplicates are still caught by the unique index.
    "DEDUPE_TTL_SECONDS": 7 * 24 * 3600,
    # Events per flush batch, and how long a pending (delivered, unacked) entry may stay with a
    # consumer before another flush reclaims it (a flush killed halfway leaves such entries).
    "FLUSH_BATCH": 5_000,
    "FLUSH_RECLAIM_IDLE_MS": 60_000,
    # A flush renews a lease of this many ms before each batch; a consumer on another host whose lease
    # ran out is dead and its entries are taken over at once (same host: its pid is checked instead).
    "FLUSH_LEASE_MS": 30_000,
    # Timestamps: anything before this (epoch seconds; 1990-01-01) or more than MAX_FUTURE_SECONDS
    # after the server clock is absurd. Live tracker events older than COLLECT_MAX_AGE_DAYS too.
    "MIN_TS_SECONDS": 631_152_000,
    "MAX_FUTURE_SECONDS": 24 * 3600,
    "COLLECT_MAX_AGE_DAYS": 30,
    "MAX_CATEGORIES": 20,
    "MAX_PROPERTIES_BYTES": 2048,
    # What one anonymous sender (/collect, per truncated address) may make the site keep in quarantine
    # per window (tracking.quarantine_budget); beyond it: 429 with Retry-After. 0 turns a limit off.
    "QUARANTINE_BUDGET_BYTES": 2 * 1024 * 1024,
    "QUARANTINE_BUDGET_ROWS": 2_000,
    "QUARANTINE_BUDGET_WINDOW_S": 600,
    # Raw payloads kept in quarantine are cut to this many characters (payload_bytes keeps the size).
    "QUARANTINE_PAYLOAD_CHARS": 65_536,
    # Honour X-Forwarded-For (its right-most entry added by our own proxy) only behind a trusted proxy.
    "TRUST_X_FORWARDED_FOR": False,
    "UID_COOKIE": "adsite_uid",
    "CONSENT_COOKIE": "adsite_consent",
    "UID_COOKIE_MAX_AGE": 365 * 24 * 3600,
    # tracker.js configuration rendered into each page (engaged seconds per page_ping, seconds per flush)
    # edge mode (README "Edge mode"): "off"; "private" (visitors who send DNT/GPC, who get no
    # personalization otherwise, keep an interest profile on their device); "all" (every visitor: the
    # tracker sends no clickstream, the server records no page view)
    "EDGE_MODE": "off",
    "TRACKER_PING_SECONDS": 15.0,
    "TRACKER_FLUSH_SECONDS": 5.0,
    # Feature catch-up (tracking.features_backlog): events per transaction, and how long a backlogged
    # event may wait for its row in ``Event`` (still in the Redis buffer) before it is dropped.
    "FEATURE_CATCH_UP_BATCH": 1_000,
    "FEATURE_BACKLOG_ORPHAN_SECONDS": 24 * 3600,
}


class TrackingSettings:
    """Attribute access to the tracking settings, with defaults."""

    def __init__(self, configured: dict[str, Any]) -> None:
        self._configured = configured

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown tracking setting {name!r}")
        value = self._configured.get(name, DEFAULTS[name])
        if name == "REDIS_URL" and not value:
            return getattr(settings, "REDIS_URL", None)
        return value


def tracking_settings() -> TrackingSettings:
    """The current tracking settings (re-read each call, so ``override_settings`` works in tests)."""
    return TrackingSettings(getattr(settings, "TRACKING", {}) or {})
