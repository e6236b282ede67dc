"""The public face of inference. Nothing else in ``inference`` is imported from outside it.

Returns frozen dataclasses only: no tensor, booster or ORM row crosses this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inference.backends import backends
from inference.evaluation.arguments import evaluation_arguments_add
from inference.events import AD_TYPES, CATEGORY_SLUG_RE, EVENT_TYPES, EventRecord, category_slugs
from inference.events_csv import GenericHeader, generic_header, timestamp_ms, timestamp_seconds
from inference.process_local import PerProcess
from inference.redis_clients import cluster_mode, cluster_nodes, redis_client, reply_timeout_s, server_down
from inference.rest.errors import ApiErrorsSerializer
from inference.rest.fields import (
    ClosedSerializer,
    StrictBooleanField,
    StrictSlugField,
    StrictUserIdField,
    UniqueListField,
)
from inference.serving.deadline import Deadline
from inference.serving.interests import FALLBACK_REASONS, SERVED_BY, Interests
from inference.signals import categories_requested, store_rebuild_started, stored_events_requested
from inference.store.base import FeatureStorePartlyApplied, FeatureStoreUnavailable
from inference.user_ids import USER_ID_MAX, USER_ID_PATTERN, USER_ID_RULE, user_id_valid

__all__ = [
    # the REST building blocks every API of the site shares (one id rule, closed bodies, one error body)
    "ApiErrorsSerializer",
    "ClosedSerializer",
    "StrictBooleanField",
    "StrictSlugField",
    "StrictUserIdField",
    "UniqueListField",
    # the served-path evaluation (``manage.py evaluate_serving`` drives it with tracking's import)
    "serving_evaluate",
    # one value per process, the process's own after a fork (the composition root and the predictor)
    "PerProcess",
    "evaluation_arguments_add",
    "serving_table",
    "events_read",
    "AD_TYPES",
    "CATEGORY_SLUG_RE",
    "EVENT_TYPES",
    "FALLBACK_REASONS",
    "SERVED_BY",
    "category_slugs",
    "Deadline",
    "EventRecord",
    "FeatureStorePartlyApplied",
    "FeatureStoreUnavailable",
    "GenericHeader",
    "InterestProfile",
    "Interests",
    "ModelVersionInfo",
    "ServingStatus",
    "ShadowSetting",
    "TrainingRunInfo",
    "USER_ID_MAX",
    "USER_ID_PATTERN",
    "USER_ID_RULE",
    "events_observe",
    "answers_refresh",
    "generic_header",
    "timestamp_ms",
    "timestamp_seconds",
    "active_model_versions",
    "active_rankers",
    "ActiveRanker",
    "population_interests",
    "cluster_mode",
    "cluster_nodes",
    "redis_client",
    "reply_timeout_s",
    "server_down",
    "api_rate_throttle",
    "api_client_throttled",
    "THROTTLED_WAIT_ENVIRON",
    "predict_interests",
    "prior_interests_replay",
    "model_version_activate",
    "model_version_retire",
    "model_version_rollback",
    "model_versions",
    "serving_status",
    "shadow_setting_clear",
    "shadow_setting_get",
    "shadow_setting_set",
    "store_rebuild",
    "store_rebuild_started",
    "stored_events_requested",
    "categories_requested",
    "training_run",
    "training_runs_recent",
    "training_start",
    "user_forget",
    "user_interest_profile",
    "user_id_valid",
    "window_hit",
    "category_taxonomy",
    "interests_hot_route",
    "api_client_remembered",
]


def events_observe(records: Sequence[EventRecord], *, answers_refresh: bool = True) -> None:
    """Update the online features with accepted, non-bot events (called in the collect request).

    With ``INFERENCE["ANSWERS_ON_WRITE"]`` (and ``answers_refresh``: False for an import of past events) the
    visitors' stored answers are recomputed by a worker shortly after (``serving/stored.py``); never here.

    One atomic batch (one Redis round trip in services mode). Raises :class:`FeatureStoreUnavailable`
    (exported here) when the store cannot be reached; nothing of the batch was applied then, except
    when the connection failed after Redis ran the batch (a timeout on the reply). On a Redis Cluster a
    master failing under the batch may leave it applied for some visitors (each whole) and not others:
    :class:`FeatureStorePartlyApplied` (a ``FeatureStoreUnavailable``) names the visitors it reached.
    """
    if not records:
        return
    from inference.conf import inference_setting
    from inference.store import feature_store

    store = feature_store()
    store.observe(records)
    if answers_refresh and inference_setting("ANSWERS_ON_WRITE"):  # these visitors' stored answers: recomputed off this request
        from inference.serving.stored import answers_refresh_schedule

        answers_refresh_schedule(store, list(dict.fromkeys(r.user_id for r in records)),
                                 debounce_s=float(inference_setting("ANSWERS_DEBOUNCE_S")))


def answers_refresh(user_ids: Sequence[str]) -> int:
    """Recompute and store the interests of ``user_ids`` (the debounced write side of stored answers; a
    worker's task). Returns how many answers were stored; stops at a store that cannot be reached."""
    from inference.conf import inference_setting
    from inference.serving.runtime import predictor

    current = predictor()
    stored = 0
    for user_id in user_ids:
        deadline = Deadline(float(inference_setting("ANSWERS_BUDGET_MS")))
        try:
            stored += current.answer_refresh(user_id, deadline=deadline) is not None
        except FeatureStoreUnavailable:
            break
    return stored


def user_forget(user_id: str) -> None:
    """Delete everything inference holds about one user (the privacy operation)."""
    from inference.store import feature_store

    feature_store().forget(user_id)


def store_rebuild(records: Iterable[Sequence[EventRecord]] | Iterable[EventRecord]) -> int:
    """Clear the online feature store and replay ``records`` (time-ordered events or chunks of them).

    Embedded mode calls it at start-up (the in-process store does not survive a restart); in
    services mode it repairs Redis from the event history. Returns the number of events replayed.
    """
    from inference.store import feature_store

    return feature_store().rebuild(records)


def predict_interests(user_id: str, *, deadline: Deadline | None = None, top: int = 10) -> Interests:
    """The user's predicted interests within the deadline (default ``INFERENCE["BUDGET_MS"]``).

    Never raises: the chain neural -> gbdt -> prior always answers, and the answer says which model
    served and why (``fallback_reason``). An unknown user gets a cold-start answer.
    """
    from inference.serving.runtime import predictor

    deadline = deadline if deadline is not None else Deadline.from_settings()
    try:
        current = predictor()
    except Exception:  # the predictor could not be built at all: an empty, honest answer
        import logging

        logging.getLogger(__name__).exception("inference.predictor_unavailable")
        return Interests((), "prior", "none", "error", deadline.elapsed_ms())
    return current.predict(user_id, deadline=deadline, top=top)


def population_interests(*, deadline: Deadline | None = None, top: int = 10) -> Interests:
    """The population's interests: the answer for a visitor with no history (read its ``shares()``
    beside a visitor's to get an interest lift). Never raises, like ``predict_interests``."""
    return predict_interests("", deadline=deadline, top=top)


def prior_interests_replay(events: Sequence[EventRecord], *, top: int = 10) -> tuple[dict[str, Interests], Interests]:
    """What the prior answers each user of ``events``, and a visitor without history, after those events.

    The events go through the feature code the online store applies (``states_replay``, then the
    serving read-out) and the prior is built from the same events (``prior_train``): the answers are the
    serving prior's for a site whose whole history is ``events``. For judging ad selection on a log the
    site did not record itself (``adsite.ads.offpolicy``); the served chain reads the live store instead.
    Users' features are read at their own last event, the population's at the last event overall.
    """
    from inference.features.readout import population_features, user_features
    from inference.features.state import states_replay
    from inference.models.prior import prior_train

    ordered = sorted(events, key=lambda e: e.ts)
    users, population_state = states_replay(ordered)
    prior = prior_train(events=ordered, categories=sorted({c for e in ordered for c in e.categories}))
    now = ordered[-1].ts if ordered else 0.0
    population = population_features(population_state, now)
    last_ts: dict[str, float] = {}
    for event in ordered:
        last_ts[event.user_id] = event.ts

    def answer(features: Any, at: float) -> Interests:
        ranking = prior.predict(features, population, now=at, top=top)
        return Interests(
            scores=tuple((slug, float(score)) for slug, score in ranking), served_by="prior", model_version="replay",
            fallback_reason=None if features is not None else "cold_start", elapsed_ms=0.0,
            history_events=int(features.events) if features is not None else 0,
        )

    answers = {user: answer(user_features(state, last_ts[user]), last_ts[user]) for user, state in users.items()}
    return answers, answer(None, now)


@dataclass(frozen=True, slots=True)
class ServingStatus:
    """What this process serves: for the readiness probe and the dashboard."""

    started: bool
    loaded: dict[str, str]  # algorithm -> version
    load_errors: dict[str, str]
    breakers: dict[str, str]  # algorithm -> closed / half_open / open
    registry_error: str
    # the shadow this process holds: version, algorithm, sample_rate, top_k, breaker; error (empty: none)
    shadow: dict[str, str] = field(default_factory=dict)


def serving_status(*, start: bool = True) -> ServingStatus:
    """The predictor's state in this process (``start``: build it first if it is not yet built)."""
    from inference.serving.runtime import predictor, predictor_loaded

    current = predictor_loaded()
    if current is None and start:
        try:
            current = predictor()
        except Exception as exc:
            return ServingStatus(False, {}, {}, {}, f"{type(exc).__name__}: {exc}")
    if current is None:
        return ServingStatus(False, {}, {}, {}, "")
    return ServingStatus(
        started=True,
        loaded=current.loaded(),
        load_errors=current.load_errors(),
        breakers=current.breaker_states(),
        registry_error=current.last_refresh_error,
        shadow=current.shadow_status(),
    )


def active_model_versions() -> dict[str, str]:
    """algorithm -> the version the registry marks active (empty before the first training)."""
    from inference.registry.selectors import active_model_versions as registry_active

    return {algorithm: active.version for algorithm, active in registry_active().items()}


@dataclass(frozen=True, slots=True)
class ActiveRanker:
    """An active version as the chain orders it."""

    algorithm: str
    version: str
    # NDCG@5 on the validation slice of the latest training run that judged it (None: never scored)
    validation_score: float | None


def active_rankers() -> tuple[ActiveRanker, ...]:
    """The active versions in the order every predictor tries them: best NDCG@5 on the validation slice
    first, whatever the algorithm (then the prior answers). One query."""
    from inference.registry.selectors import active_model_versions as registry_active
    from inference.serving.slots import serving_order

    active = registry_active()
    order = serving_order({name: row.validation_score for name, row in active.items()})
    return tuple(
        ActiveRanker(algorithm=name, version=active[name].version, validation_score=active[name].validation_score)
        for name in order
    )


@dataclass(frozen=True, slots=True)
class InterestProfile:
    """A user's online interest features as the feature store reads them now (for the dashboard).

    ``decayed_share[label]`` is the category's share of the user's decayed interest for the half-life
    ``label`` (``1h``, ``1d``, ``7d``, ``30d``), best first; ``counts`` the raw (undecayed) counts.
    """

    user_id: str
    events: int
    last_ts: float
    half_lives: tuple[str, ...]
    decayed_share: dict[str, tuple[tuple[str, float], ...]]
    counts: tuple[tuple[str, float], ...]
    type_counts: dict[str, float]
    device: str


def user_interest_profile(user_id: str) -> InterestProfile:
    """The user's current decayed category weights from the online feature store.

    An unknown user reads as an empty profile. Raises ``inference.store.FeatureStoreUnavailable`` when
    the store cannot be reached.
    """
    from inference.features.definitions import HALF_LIVES
    from inference.store import feature_store

    user = feature_store().read(user_id).user
    labels = tuple(label for label, _seconds in HALF_LIVES)
    shares = {
        label: tuple(sorted(((c, float(v)) for c, v in share.items()), key=lambda item: -item[1]))
        for label, share in zip(labels, user.decayed_share, strict=False)
    }
    return InterestProfile(
        user_id=user_id,
        events=int(user.events),
        last_ts=float(user.last_ts),
        half_lives=labels,
        decayed_share=shares,
        counts=tuple(sorted(((c, float(v)) for c, v in user.counts.items()), key=lambda item: -item[1])),
        type_counts={k: float(v) for k, v in user.type_counts.items()},
        device=str(user.device),
    )


@dataclass(frozen=True, slots=True)
class ShadowSetting:
    """Shadow mode as configured in the registry: ``version`` scores ``sample_rate`` of the requests a
    model served, after the answer, and its top-``top_k`` overlap and latency are recorded."""

    version: str
    algorithm: str
    status: str  # the version's registry status (candidate or retired)
    sample_rate: float
    top_k: int
    actor: str
    updated_at: datetime


def shadow_setting_get() -> ShadowSetting | None:
    """The configured shadow (None: shadow mode is off). One query."""
    from inference.registry.selectors import shadow_config_get

    row = shadow_config_get()
    if row is None:
        return None
    return ShadowSetting(
        version=row.version.version,
        algorithm=row.version.algorithm,
        status=row.version.status,
        sample_rate=row.sample_rate,
        top_k=row.top_k,
        actor=row.actor,
        updated_at=row.updated_at,
    )


def shadow_setting_set(*, version: str, sample_rate: float, top_k: int = 5, actor: str = "") -> ShadowSetting:
    """Shadow ``version`` on ``sample_rate`` of the served requests; every web process picks it up on
    its next registry poll. Raises ``inference.registry.services.RegistryError`` for an unknown or
    active version, or a rate outside (0, 1]."""
    from inference.registry.services import shadow_config_set

    shadow_config_set(version=version, sample_rate=sample_rate, top_k=top_k, actor=actor)
    setting = shadow_setting_get()
    assert setting is not None
    return setting


def shadow_setting_clear() -> str | None:
    """Turn shadow mode off; returns the version that was shadowing (None when none was)."""
    from inference.registry.services import shadow_config_clear

    return shadow_config_clear()


# --- the registry, for the dashboard (frozen copies, never ORM rows) ------------------------------


@dataclass(frozen=True, slots=True)
class ModelVersionInfo:
    version: str
    algorithm: str
    status: str  # candidate, active, retired
    created_at: datetime
    activated_at: datetime | None
    data_from: datetime | None
    data_to: datetime | None
    training_seconds: float
    # {"slice": {...}, "results": {"model": {"ndcg@5": .., "per_category": {..}}, "popularity": {..}}, ...}
    metrics: dict[str, Any]
    # why it last stopped serving (its latest retirement in the activation audit: a withdrawal below the best
    # baseline, a blend whose member changed, an operator's retirement); "" when it never did
    stopped_because: str


@dataclass(frozen=True, slots=True)
class TrainingRunInfo:
    id: int
    status: str
    stage: str
    percent: float
    message: str
    outcome: dict[str, Any]
    error: str
    started_at: datetime
    finished_at: datetime | None


def _version_info(row: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        version=row.version,
        algorithm=row.algorithm,
        status=row.status,
        created_at=row.created_at,
        activated_at=row.activated_at,
        data_from=row.data_from,
        data_to=row.data_to,
        training_seconds=row.training_seconds,
        metrics=dict(row.metrics or {}),
        stopped_because=str(getattr(row, "stopped_because", "") or ""),
    )


def _run_info(row: Any) -> TrainingRunInfo:
    return TrainingRunInfo(
        id=row.pk,
        status=row.status,
        stage=row.stage,
        percent=row.percent,
        message=row.message,
        outcome=dict(row.outcome or {}),
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def model_versions(*, limit: int = 50, versions: Sequence[str] | None = None) -> list[ModelVersionInfo]:
    """Registry versions, newest first (only ``versions`` when given). One query."""
    from inference.registry.selectors import model_versions_list

    rows = model_versions_list()
    if versions is not None:
        rows = rows.filter(version__in=list(versions))
    return [_version_info(row) for row in rows[:limit]]


def _training_runs_settle() -> None:
    """Record as failed the runs whose process died (``inference.registry.training``), so that what is
    read says what happened instead of ``running`` forever."""
    from inference.registry.run_lock import training_runs_abandoned_fail

    try:
        training_runs_abandoned_fail()
    except Exception:  # reading the runs must work even when this cannot (a read-only replica)
        import logging

        logging.getLogger(__name__).exception("inference.training_runs_settle_failed")


def training_runs_recent(*, limit: int = 5) -> list[TrainingRunInfo]:
    """The newest training runs; a run whose process died reads as ``failed``, with the reason."""
    from inference.registry.selectors import training_runs_recent as recent

    _training_runs_settle()
    return [_run_info(row) for row in recent(limit=limit)]


def training_run(*, run_id: int | None = None) -> TrainingRunInfo | None:
    """One training run's progress (the latest when ``run_id`` is None); a run whose process died reads
    as ``failed``, with the reason."""
    from inference.registry import selectors

    _training_runs_settle()

    row = (
        selectors.training_runs_recent(limit=1).first()
        if run_id is None
        else selectors.training_run_get(run_id=run_id)
    )
    return _run_info(row) if row is not None else None


def training_start(*, algorithm: str = "all", activate: str = "never", eager: bool = False) -> str:
    """Run the training task: enqueued (returns the task id), or here and now with ``eager``."""
    from inference.registry.tasks import train_models

    kwargs = {"algorithm": algorithm, "activate": activate}
    if eager:
        train_models.apply(kwargs=kwargs)
        return "eager"
    return str(train_models.delay(**kwargs).id)


def model_version_activate(*, version: str, actor: str) -> ModelVersionInfo:
    """Serve ``version``; every web process swaps it in on its next poll. Raises
    ``inference.registry.services.RegistryError`` for an unknown version."""
    from inference.registry.services import model_version_activate as activate

    return _version_info(activate(version=version, actor=actor))


def model_version_rollback(*, algorithm: str, actor: str) -> ModelVersionInfo:
    """Serve again the version that served before the current one; returns it."""
    from inference.registry.services import model_version_rollback as rollback

    return _version_info(rollback(algorithm=algorithm, actor=actor))


def model_version_rollback_target(*, algorithm: str) -> str | None:
    """The version a rollback of ``algorithm`` would serve again; None when there is none."""
    from inference.registry.selectors import model_version_rollback_target as target

    return target(algorithm=algorithm)


def model_version_retire(*, version: str, actor: str) -> ModelVersionInfo:
    from inference.registry.services import model_version_retire as retire

    return _version_info(retire(version=version, actor=actor))


def window_hit(key: str, *, limit: int, period_s: float, now: float | None = None, cost: int = 1) -> float:
    """The site's one rate limiter: count a hit of ``key`` (weighing ``cost``) in a fixed window of
    ``period_s`` seconds and answer the seconds to wait when the window's total is over ``limit``, else 0
    (``inference.rest.throttling``: Redis in services mode, in-process otherwise or while Redis is away)."""
    from inference.rest.throttling import window_hit as hit

    return hit(key, limit=limit, period_s=period_s, now=now, cost=cost)


def interests_hot_route() -> Callable[[str, str, list[str], dict[str, Any]], tuple[bytes, str] | None]:
    """The interests route's work for a server that answers it before Django's handler
    (``adsite.ops.hot_routes``), built once per worker. The returned function takes the raw ``Authorization``
    header, the path's user id, the ``top`` query values and the environ Django would receive, and answers
    ``(JSON body, Server-Timing header)``, or None when Django must answer: an unknown token, bad parameters,
    or a client over its rate (the verdict is then put in the environ, so DRF answers the 429 without counting
    the hit twice). The same code as the Django view's own hot path (``inference.rest.hot``)."""
    from inference.rest.hot import interests_body, interests_hot
    from inference.rest.throttling import InterestsRateThrottle

    def answer(authorization: str, user_id: str, top: list[str], environ: dict[str, Any]) -> tuple[bytes, str] | None:
        hot = interests_hot(authorization, user_id, top, throttle=InterestsRateThrottle)
        if hot is None:
            return None
        interests = hot[1]
        if isinstance(interests, float):
            environ[THROTTLED_WAIT_ENVIRON] = interests
            return None
        return interests_body(interests)

    return answer


def api_rate_throttle(scope: str) -> type[Any]:
    """A DRF throttle class counting each authenticated API client's requests in fixed windows at the rate
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]`` (``inference.rest.throttling``: in Redis, shared by
    every web process, or in-process without it), for another app's API view."""
    from inference.rest.throttling import FixedWindowUserRateThrottle

    throttle = _RATE_THROTTLES.get(scope)
    if throttle is None:
        name = "".join(part.title() for part in scope.split("_")) + "RateThrottle"
        throttle = _RATE_THROTTLES.setdefault(scope, type(name, (FixedWindowUserRateThrottle,), {"scope": scope}))
    return throttle


_RATE_THROTTLES: dict[str, type[Any]] = {}
# the WSGI environ key in which a server's hot route (``adsite.ops.hot_routes``) leaves the seconds a client over
# its rate must wait, for the view's ``check_throttles`` to refuse it without counting the hit again
THROTTLED_WAIT_ENVIRON = "adsite.throttled_wait"


def api_client_throttled(authorization: str, throttle: type[Any]) -> float | None:
    """Count one request of the client an ``Authorization`` header names (a token this process remembers:
    ``api_client_remembered``) against ``throttle``: None when it is under its rate, else the seconds to wait."""
    from inference.rest.authentication import CachedTokenAuthentication
    from inference.rest.hot import throttle_wait

    client = CachedTokenAuthentication.remembered(authorization)
    if client is None:
        return None
    return throttle_wait(throttle, client[0], client[1])


def api_client_remembered(authorization: str) -> Any | None:
    """The API client (a Django user) of an ``Authorization`` header whose token this process checked and
    remembers as valid, else None: no header, another scheme, an unknown or expired token (DRF's
    authentication decides those). For a route a server answers before Django's handler
    (``adsite.ops.hot_routes``), with the same token memory as the API's authentication."""
    from inference.rest.authentication import CachedTokenAuthentication

    client = CachedTokenAuthentication.remembered(authorization)
    return None if client is None else client[0]


TAXONOMY_CACHE_S = 30.0


def category_taxonomy() -> frozenset[str]:
    """The categories the site defines (``categories_requested``), re-read at most every 30 s:
    what live input may add to features and the population. Empty when none are defined (or the source
    fails): callers then leave categories as they are."""
    import time

    state = backends()
    read_at, known = state.taxonomy
    now = time.monotonic()
    if read_at and now - read_at < TAXONOMY_CACHE_S:
        return known
    from inference.signals import site_categories

    try:
        known = frozenset(site_categories())
    except Exception:  # a taxonomy that cannot be read must not stop collection
        import logging

        logging.getLogger(__name__).exception("inference.category_taxonomy_unavailable")
        known = frozenset()
    state.taxonomy = (now, known)
    return known


def category_taxonomy_reset() -> None:
    """Forget the cached taxonomy (tests, and after categories are created)."""
    backends().taxonomy = (0.0, frozenset())


def events_read(path: Any, *, format: str = "generic") -> list[EventRecord]:
    """Events of a generic CSV file or a MovieLens directory (``inference.evaluation.reading``)."""
    from inference.evaluation.reading import events_read as read

    return read(path, format=format)


def serving_evaluate(events: Sequence[EventRecord], **options: Any) -> dict[str, Any]:
    """A split replayed through import, training, the registry, the store and the predictor at the
    cut-off's clock (``inference.evaluation.serving``; imported on call: it loads the training stack)."""
    from inference.evaluation.serving import serving_evaluate as evaluate

    return evaluate(events, **options)


def serving_table(report: Any) -> str:
    """``serving_evaluate``'s report as the few lines of text the command prints."""
    from inference.evaluation.serving import serving_table as table

    return table(report)
