"""adsite settings: the one place that reads the environment.

Nothing set gives the embedded mode: a SQLite file under ``var/``, an in-process feature store and
event path, Celery tasks run eagerly. ``DATABASE_URL`` alone selects another database (PostgreSQL)
and stays embedded otherwise. ``DATABASE_URL`` and ``REDIS_URL`` together give the services mode:
Redis holds the event stream, online features, counters, the cache and the Celery broker.
``REDIS_URL`` without ``DATABASE_URL`` is refused (``ImproperlyConfigured``): nothing would flush
the event stream into SQLite (``scripts/serve.sh`` starts Celery only in services mode). This is
the one rule; ``ADSITE_MODE`` says which mode it gave, and ``scripts/serve.sh`` asks for it.
``REDIS_CLUSTER=1`` on top of the services mode gives the scale-out mode: ``REDIS_URL`` names any node of a
Redis Cluster (every Redis client is a ``RedisCluster``, the cache too), and the Celery broker is
``CELERY_BROKER_URL`` (RabbitMQ, ``amqp://``; required there: a Redis Cluster cannot be a broker), with
no result backend (no task's result is read).

Every app keeps its own settings in one namespaced dict (``TRACKING``, ``INFERENCE``, ``ADS``) whose
defaults live in the app's ``conf.py``; this module only overrides them from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    return float(value) if value is not None else default


def _env_list(name: str, default: list[str]) -> list[str]:
    value = _env(name)
    if value is None:
        return default
    return [part.strip() for part in value.split(",") if part.strip()]


# Off unless asked for: `make run` and `make dev` set DJANGO_DEBUG=1 (README "The two commands").
DEBUG = _env_bool("DJANGO_DEBUG", False)
VAR_DIR = Path(_env("ADSITE_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _development_secret_key() -> str:
    """DEBUG without DJANGO_SECRET_KEY: a random key made once per checkout (``var/secret_key``, mode
    0600), never a key printed in the source (signed click links would be forgeable with it)."""
    import secrets
    import time

    path = VAR_DIR / "secret_key"
    for _ in range(100):  # several processes may start at once: one creates it, the others read it
        try:
            key = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            key = ""
        if key:
            return key
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            time.sleep(0.02)
            continue
        key = secrets.token_urlsafe(50)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key)
        return key
    raise ImproperlyConfigured(f"{path} stays empty: remove it, or set DJANGO_SECRET_KEY")


SECRET_KEY = _env("DJANGO_SECRET_KEY")
if SECRET_KEY is None:
    # Outside DEBUG only a key this checkout already made (`make run` in it: manage.py commands then work
    # without flags); a fresh production checkout must be given one.
    if not DEBUG and not (VAR_DIR / "secret_key").is_file():
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = _development_secret_key()
# Key rotation: the previous keys (comma-separated) still verify what they signed (sessions, click and
# impression links) until those expire.
SECRET_KEY_FALLBACKS = _env_list("DJANGO_SECRET_KEY_FALLBACKS", [])

# /metrics: "local" (this host only), "token" (Authorization: Bearer $METRICS_TOKEN, or this host),
# or "public"
METRICS_ACCESS = _env("ADSITE_METRICS_ACCESS", "token" if _env("ADSITE_METRICS_TOKEN") else "local")
METRICS_TOKEN = _env("ADSITE_METRICS_TOKEN", "")

ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "adsite.ops",
    "adsite.content",
    "adsite.dashboard",
    "adsite.ads",
    "tracking",
    "inference",
    "inference.registry",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    # outermost: counts every request answered, whichever layer answers it (dashboard requests /s)
    "adsite.ops.middleware.http_requests_counted",
    # under /api/, a 404/405/500 that no API view answered is JSON too (adsite/ops/api_errors.py)
    "adsite.ops.api_errors.api_errors_json",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tracking.middleware.IdentityCookieMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "adsite.urls"
WSGI_APPLICATION = "adsite.wsgi.application"
# The production web server (scripts/serve.sh: granian over adsite/rsgi.py) buffers each request body before
# Django sees it; a body over this size is answered 413 unread. Above the collect endpoint's own limit
# (TRACKING_MAX_BODY_BYTES), so that endpoint still quarantines and answers its own 413.
ADSITE_SERVER = {
    "MAX_BODY_BYTES": _env_int("ADSITE_MAX_BODY_BYTES", 10 * 1024 * 1024),
    # requests one web process runs at once: 1 (inline, services mode); embedded mode's one process uses 8
    "THREADS": _env_int("ADSITE_WEB_THREADS", 1),
    # requests one web process may hold (running + waiting) before it answers new ones 503 + Retry-After at
    # once (adsite/rsgi.py); 0 turns shedding off. Chosen from the knee measured in docs/reliability.md.
    "MAX_IN_FLIGHT": _env_int("ADSITE_MAX_IN_FLIGHT", 32),
    # GET /api/v1/users/{id}/interests of a remembered token answered before Django's handler (adsite/ops/hot_routes.py)
    "HOT_ROUTES": _env_bool("ADSITE_HOT_ROUTES", True),
    # a web process holding more than its share of the clients' keep-alive connections closes some after
    # their answers, so that they reconnect to another process (adsite/ops/connection_balance.py)
    "BALANCE_CONNECTIONS": _env_bool("ADSITE_WEB_BALANCE", True),
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = _env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "adsite.sqlite3"),
            # WAL lets readers run beside the single writer; IMMEDIATE transactions take the write
            # lock up front so that concurrent writers queue (busy timeout) instead of failing.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, Celery -------------------------------------------------------------------------
REDIS_URL = _env("REDIS_URL")
if REDIS_URL and not DATABASE_URL:
    # A mixed mode would buffer events into a Redis stream that nothing flushes (no Celery runs in
    # embedded mode) and keep features in Redis beside a SQLite file: a misconfiguration.
    raise ImproperlyConfigured(
        "REDIS_URL is set but DATABASE_URL is not: set both (services mode: PostgreSQL and Redis) or "
        "neither (embedded mode: SQLite, in-process features). See README.md, section 'Modes'."
    )
REDIS_CLUSTER = _env_bool("REDIS_CLUSTER", False)
if REDIS_CLUSTER and not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_CLUSTER=1 but REDIS_URL is not set: in the scale-out mode REDIS_URL names any node of the "
        "Redis Cluster (e.g. redis://10.0.0.5:7000/0). See docs/scaling.md."
    )
ADSITE_MODE = "scale-out" if REDIS_CLUSTER else "services" if REDIS_URL else "embedded"

# Every Redis client of the site fails fast on a Redis that stopped answering (inference/redis_clients.py).
CACHES: dict[str, dict[str, Any]]
if REDIS_CLUSTER:
    # the same guard and timeouts through the one client factory (a RedisCluster reached through REDIS_URL)
    CACHES = {"default": {"BACKEND": "inference.redis_clients.ClusterRedisCache", "LOCATION": REDIS_URL}}
elif REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # short timeouts and the guarded pool: a hung Redis must not hang the pages that use the cache
            "OPTIONS": {
                "pool_class": "inference.redis_clients.GuardedConnectionPool",
                "socket_timeout": 0.25,
                "socket_connect_timeout": 0.25,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The Celery broker: CELERY_BROKER_URL where set (RabbitMQ, ``amqp://user:password@host:5672/vhost``), else
# the services mode's Redis. A Redis Cluster cannot be a Celery broker (kombu's Redis transport needs one
# node), so scale-out mode (REDIS_CLUSTER=1) requires an AMQP broker, and keeps no task results: nothing in
# the site reads one (tasks write what they did to the database: training runs, the ledger).
CELERY_BROKER_URL = _env("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_RESULT_BACKEND: str | None = REDIS_URL or "cache+memory://"
if REDIS_CLUSTER:
    if not CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ImproperlyConfigured(
            "REDIS_CLUSTER=1 (scale-out mode) needs CELERY_BROKER_URL set to a RabbitMQ broker "
            "(amqp://user:password@host:5672/vhost): a Redis Cluster cannot be a Celery broker. "
            "See docs/scaling.md."
        )
    CELERY_RESULT_BACKEND = None
    CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = _env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600)
CELERY_TASK_TIME_LIMIT = _env_int("CELERY_TASK_TIME_LIMIT", 900)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# one log line when beat cannot send (the broker is down) and one when it can again (adsite/ops/beat.py)
CELERY_BEAT_SCHEDULER = "adsite.ops.beat:OutageQuietScheduler"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "flush-events": {"task": "tracking.flush_events", "schedule": _env_float("TRACKING_FLUSH_SECONDS", 2.0)},
    # feature updates that failed while Redis was unreachable (tracking.features_backlog)
    "features-catch-up": {"task": "tracking.features_catch_up", "schedule": 10.0},
    "purge-expired-events": {"task": "tracking.purge_expired", "schedule": 3600.0},
    # PostgreSQL: the events table's day partitions, TRACKING["PARTITIONS_AHEAD_DAYS"] ahead
    "ensure-event-partitions": {"task": "tracking.partitions_ensure", "schedule": 3600.0},
    # AdClick rows (every click request, with its outcome) past ADS["CLICK_RETENTION_DAYS"]
    "purge-expired-clicks": {"task": "ads.purge_clicks", "schedule": 3600.0},
    # click rows billed while the database would not take them (adsite/ads/services/billing.py)
    "settle-click-rows": {"task": "ads.click_rows_settle", "schedule": 5.0},
    # reservations whose answers the ledger lost, kept until voided (adsite/ads/services/reservations.py)
    "void-lost-reservations": {"task": "ads.reservations_void", "schedule": 5.0},
    "dashboard-rollup": {"task": "dashboard.rollup", "schedule": 30.0},
}

# --- Apps' namespaced settings (defaults in each app's conf.py) ------------------------------------
TRACKING: dict[str, Any] = {
    "CONSENT_REQUIRED": _env_bool("TRACKING_CONSENT_REQUIRED", False),
    # README "Edge mode": off, private (DNT/GPC visitors) or all
    "EDGE_MODE": _env("TRACKING_EDGE_MODE", "off"),
    "RETENTION_DAYS": _env_int("TRACKING_RETENTION_DAYS", 395),
    "PARTITIONS_AHEAD_DAYS": _env_int("TRACKING_PARTITIONS_AHEAD_DAYS", 7),
    "MAX_BODY_BYTES": _env_int("TRACKING_MAX_BODY_BYTES", 256 * 1024),
    "BUFFER": "redis" if REDIS_URL else "database",
    "TRUST_X_FORWARDED_FOR": _env_bool("TRACKING_TRUST_X_FORWARDED_FOR", False),
    "QUARANTINE_BUDGET_BYTES": _env_int("TRACKING_QUARANTINE_BUDGET_BYTES", 2 * 1024 * 1024),
    "QUARANTINE_BUDGET_ROWS": _env_int("TRACKING_QUARANTINE_BUDGET_ROWS", 2_000),
    "QUARANTINE_BUDGET_WINDOW_S": _env_int("TRACKING_QUARANTINE_BUDGET_WINDOW_S", 600),
    "DEDUPE_TTL_SECONDS": _env_int("TRACKING_DEDUPE_TTL_SECONDS", 7 * 24 * 3600),
    "FLUSH_BATCH": _env_int("TRACKING_FLUSH_BATCH", 5000),
    "FLUSH_RECLAIM_IDLE_MS": _env_int("TRACKING_FLUSH_RECLAIM_IDLE_MS", 60_000),
    # Redis names of the event buffer and its ledger counters (several sites can share one Redis).
    "STREAM_KEY": _env("TRACKING_STREAM_KEY", "adsite:events"),
    "LEDGER_KEY": _env("TRACKING_LEDGER_KEY", "adsite:ledger"),
    # scale-out: the buffer in this many streams, spread over the cluster's masters (tracking/buffer/)
    "STREAM_SHARDS": _env_int("TRACKING_STREAM_SHARDS", 8 if REDIS_CLUSTER else 1),
    # test hook: a flush exits right after inserting a batch, before acknowledging it
    # tracker.js (rendered into each page's config): engaged seconds per page_ping, seconds per flush.
    "TRACKER_PING_SECONDS": _env_float("TRACKING_TRACKER_PING_SECONDS", 15.0),
    "TRACKER_FLUSH_SECONDS": _env_float("TRACKING_TRACKER_FLUSH_SECONDS", 5.0),
}
INFERENCE: dict[str, Any] = {
    "BUDGET_MS": _env_float("INFERENCE_BUDGET_MS", 5.0),
    "STORE": "redis" if REDIS_URL else "memory",
    # embedded server: rebuild the in-process feature store from the Event table when a process starts serving
    "STORE_REBUILD_ON_START": _env_bool("INFERENCE_STORE_REBUILD_ON_START", False),
    "MODEL_DIR": _env("INFERENCE_MODEL_DIR", str(VAR_DIR / "models")),
    "DEVICE": _env("INFERENCE_DEVICE", "auto"),
    "RETRAIN_SECONDS": _env_float("INFERENCE_RETRAIN_SECONDS", 0.0),
    # where training runs (manage.py train's default and the Celery task's): "local" or "dask"; with
    # "dask", the scheduler address ("" = a LocalCluster on this machine) and the directory for the
    # training-set shards (shared storage when the workers are other machines; "" = the temp dir)
    "TRAINING_ENGINE": _env("INFERENCE_TRAINING_ENGINE", "local"),
    "TRAINING_SCHEDULER": _env("INFERENCE_TRAINING_SCHEDULER", ""),
    "TRAINING_SHARD_DIR": _env("INFERENCE_TRAINING_SHARD_DIR", ""),
    # training reads events through these (inference imports nothing from adsite/tracking itself)
    "RELOAD_POLL_SECONDS": _env_float("INFERENCE_RELOAD_POLL_SECONDS", 2.0),
    # training builds and judges the blend of the serving neural and gbdt versions (inference.models.blend)
    "BLEND": _env_bool("INFERENCE_BLEND", True),
    # serving fast paths (lleaves / ONNX Runtime), the serving device ("auto": CUDA when present, then
    # micro-batched) and where compiled boosters are cached on local disk ("" = the system temp dir)
    "FASTPATH": _env_bool("INFERENCE_FASTPATH", True),
    "SERVING_DEVICE": _env("INFERENCE_SERVING_DEVICE", "auto"),
    "COMPILED_CACHE_DIR": _env("INFERENCE_COMPILED_CACHE_DIR", str(VAR_DIR / "compiled")),
    "BATCH_MAX": _env_int("INFERENCE_BATCH_MAX", 64),
    "BATCH_WAIT_MS": _env_float("INFERENCE_BATCH_WAIT_MS", 1.0),
    "BATCH_QUEUE": _env_int("INFERENCE_BATCH_QUEUE", 256),
    # services mode: a visitor's interests recomputed by a worker after their events and served from Redis
    # while current (inference/serving/stored.py)
    "ANSWERS_ON_WRITE": _env_bool("INFERENCE_ANSWERS_ON_WRITE", bool(REDIS_URL)),
    "ANSWERS_DEBOUNCE_S": _env_float("INFERENCE_ANSWERS_DEBOUNCE_S", 0.5),
    "ANSWERS_MAX_AGE_S": _env_float("INFERENCE_ANSWERS_MAX_AGE_S", 300.0),
    # benchmarks and tests only: delay every neural model call by this many ms (a model too slow)
}
if INFERENCE["RETRAIN_SECONDS"] > 0:
    CELERY_BEAT_SCHEDULE["train-models"] = {
        "task": "inference.train_models",
        "schedule": INFERENCE["RETRAIN_SECONDS"],
        "kwargs": {"algorithm": "all", "activate": "auto"},
    }
DASHBOARD: dict[str, Any] = {
    # embedded mode (no beat): the web process rolls the dashboard's rollups on a thread of its own
    # (scripts/serve.sh sets it; tests and management commands leave it off)
    "ROLLUP_THREAD": _env_bool("DASHBOARD_ROLLUP_THREAD", False),
}
ADS: dict[str, Any] = {
    "BUDGET_MS": _env_float("ADS_BUDGET_MS", 10.0),
    "LEDGER": "redis" if REDIS_URL else "memory",
    "LEDGER_PATH": str(VAR_DIR / "ads_ledger.sqlite3"),
    "EXPLAIN_SAMPLE": _env_float("ADS_EXPLAIN_SAMPLE", 0.01),
    "SNAPSHOT_MAX_AGE_S": _env_float("ADS_SNAPSHOT_MAX_AGE_S", 1.0),
    "CLICK_MAX_AGE_S": _env_int("ADS_CLICK_MAX_AGE_S", 24 * 3600),
    "CLICK_SETTLE_AFTER_S": _env_float("ADS_CLICK_SETTLE_AFTER_S", 10.0),
    "CLICK_RETENTION_DAYS": _env_int("ADS_CLICK_RETENTION_DAYS", 395),
    "REPORT_RETENTION_DAYS": _env_int("ADS_REPORT_RETENTION_DAYS", 400),
    "WEAR_OUT": _env_bool("ADS_WEAR_OUT", True),
}

# Anonymous endpoints' rate limits (tracking/ratelimit.py): scope -> (per truncated address, per visitor)
# requests per PERIOD_S; ADSITE_RATE_LIMITS=0 switches them off (load benchmarks)
RATE_LIMITS = {
    "ENABLED": _env_bool("ADSITE_RATE_LIMITS", True),
    "PERIOD_S": _env_float("ADSITE_RATE_LIMIT_PERIOD_S", 60.0),
    "SCOPES": {
        "collect": (_env_int("ADSITE_RATE_LIMIT_COLLECT_IP", 1200), _env_int("ADSITE_RATE_LIMIT_COLLECT_VISITOR", 240)),
        "click": (_env_int("ADSITE_RATE_LIMIT_CLICK_IP", 300), _env_int("ADSITE_RATE_LIMIT_CLICK_VISITOR", 30)),
        "impression": (_env_int("ADSITE_RATE_LIMIT_IMPRESSION_IP", 1200), _env_int("ADSITE_RATE_LIMIT_IMPRESSION_VISITOR", 300)),
        "page": (_env_int("ADSITE_RATE_LIMIT_PAGE_IP", 1200), _env_int("ADSITE_RATE_LIMIT_PAGE_VISITOR", 240)),
    },
}

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's TokenAuthentication with a valid token remembered per process for 10 s: no database
        # query per API call (~1.5 ms of a ~14 ms ad decision here; docs/benchmarks.md)
        "inference.rest.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "adsite.ops.openapi.ApiAutoSchema",  # the contract from the views' own classes
    # every API error as {"errors": {name: message}} (adsite/ops/api_errors.py; README "HTTP interface")
    "EXCEPTION_HANDLER": "adsite.ops.api_errors.api_exception_handler",
    # per API client (token or staff account), fixed windows (inference/rest/throttling.py); over: 429
    "DEFAULT_THROTTLE_RATES": {
        "interests": _env("API_THROTTLE_INTERESTS", "120000/minute"),
        "interests_batch": _env("API_THROTTLE_INTERESTS_BATCH", "6000/minute"),
        "decisions": _env("API_THROTTLE_DECISIONS", "120000/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "adsite API",
    "DESCRIPTION": "Clickstream collection, interest predictions and ad decisions.",
    "VERSION": "1.0.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    # the enums' component names (each from the constant the server checks against)
    "ENUM_NAME_OVERRIDES": {
        "EventTypeEnum": "inference.events.EVENT_TYPES",
        "RejectionReasonEnum": "tracking.schema.REJECTION_REASONS",
        "CollectErrorCodeEnum": "tracking.views.BODY_ERRORS",
        "PrivacyRefusalEnum": "tracking.consent.PRIVACY_REFUSALS",
        "ModelStatusEnum": "inference.registry.models.ModelVersion.Status",
        "ModelAlgorithmEnum": "inference.registry.models.ModelVersion.Algorithm",
        "CreativeKindEnum": "adsite.ads.models.Creative.Kind",
    },
    # Swagger UI / Redoc assets come from our own static files (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Auth, i18n, static ---------------------------------------------------------------------------
# the demo's admin/admin works in DEBUG only (adsite/ops/auth.py); `manage.py check --deploy` flags it
AUTHENTICATION_BACKENDS = ["adsite.ops.auth.DemoPasswordRefusedBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/dashboard/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/dashboard/login/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # collectstatic fills it; WhiteNoise warns when it is missing
STATICFILES_DIRS: list[Path] = []
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production: DJANGO_DEBUG=0) --------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # Trust X-Forwarded-Proto only behind a proxy of ours that sets it (and strips a client's own)
    if _env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = _env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # /healthz and /readyz are probed over plain HTTP from inside the host.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # a repeated WARNING or worse is written once a minute with a count (adsite/ops/log_repeats.py)
    "filters": {"repeats": {"()": "adsite.ops.log_repeats.repeated_record_filter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["repeats"]}},
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO")},
    # Django's own console handler (DEBUG) would print each 5xx a second time, unfiltered: one handler
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"level": "ERROR"},
        # Dask's client, scheduler and nannies log every connection and worker at INFO: with the dask
        # training engine that buried the progress bars; a lost or restarted worker is a WARNING
        "distributed": {"level": "WARNING"},
    },
}
