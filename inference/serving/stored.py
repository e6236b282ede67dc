"""Answers kept fresh on write: a visitor's interests computed after their events, read back while current.

The write side: ``events_observe`` (the collect request) flags each visitor whose features changed
(``answers_schedule``: one pipelined ``SET NX`` per batch) and enqueues one recompute task for the newly
flagged ones, ``INFERENCE["ANSWERS_DEBOUNCE_S"]`` later; events arriving meanwhile ride on it (debounced).
The task is handed to the broker by a thread of the web process (``RecomputePublisher``), so the accepting
request never waits on the broker.
The task (a Celery worker, never the accepting request) clears each flag, reads the feature version, runs
the whole chain live and stores the answer with that version if the preferred model gave it.

The read side, ``Predictor.predict`` at the current time: one round trip reads the version and the stored
answer. It is served only when it is *current*: the same feature version (no event since it was computed),
computed by the model the chain prefers now (the first with a loaded version, and that version), at most
``INFERENCE["ANSWERS_MAX_AGE_S"]`` old, with at least the ``top`` asked for. Otherwise the request predicts
live within its budget, as before. While a shadow model runs, every read predicts live: the shadow is
compared with live answers only, and stored reads would hide from it the traffic it is meant to see. A stored answer is what the live chain said at its time: the same
``served_by``, ``model_version``, ``fallback_reason``, probabilities and history; its ``Server-Timing`` stage is ``stored``.

Only the Redis store keeps answers (services mode); the in-process store has no worker to compute them and
its live reads cost no round trip.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from inference.serving.interests import Interests

logger = logging.getLogger(__name__)

__all__ = ["AnswerStore", "RecomputePublisher", "StoredAnswer", "StoredAnswers", "answer_decode", "answer_encode"]


class AnswerStore(Protocol):
    """What the Redis feature store offers for stored answers (``inference/store/redis.py``)."""

    def answer_read(self, user_id: str) -> tuple[int, str | None]: ...

    def answer_write(self, user_id: str, payload: str, *, ttl_s: float) -> None: ...

    def answers_schedule(self, user_ids: Sequence[str], *, debounce_s: float) -> list[str]: ...

    def answer_claim(self, user_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    version: int  # the feature version it was computed from
    computed_at: float  # wall-clock seconds
    scores: tuple[tuple[str, float], ...]
    served_by: str
    model_version: str
    fallback_reason: str | None
    probabilities: tuple[float, ...] = ()  # calibrated, one per score (empty: not calibrated)
    history_events: int = 0


def answer_encode(answer: Interests, *, version: int, computed_at: float) -> str:
    return orjson.dumps(
        {"v": version, "at": computed_at, "s": answer.scores, "b": answer.served_by,
         "m": answer.model_version, "r": answer.fallback_reason, "p": answer.probabilities,
         "h": answer.history_events}
    ).decode()


def answer_decode(payload: str | bytes) -> StoredAnswer:
    raw = orjson.loads(payload)
    return StoredAnswer(
        version=int(raw["v"]),
        computed_at=float(raw["at"]),
        scores=tuple((str(c), float(s)) for c, s in raw["s"]),
        served_by=str(raw["b"]),
        model_version=str(raw["m"]),
        fallback_reason=raw["r"],
        probabilities=tuple(float(p) for p in raw.get("p", ())),
        history_events=int(raw.get("h", 0)),
    )


class StoredAnswers:
    """The predictor's view of the stored answers: read one if current, write one after a recompute."""

    def __init__(self, store: AnswerStore, *, max_age_s: float, top: int, debounce_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self.top = top  # categories kept per answer: the most a request may ask for
        self.debounce_s = debounce_s

    def current(self, user_id: str, *, preferred: tuple[str, str] | None, top: int, now: float) -> StoredAnswer | None:
        """The stored answer if it is current for ``preferred`` = (model, version) the chain would try
        first now; None if there is none or it is stale. Raises ``FeatureStoreUnavailable``."""
        version, payload = self.store.answer_read(user_id)
        if payload is None or preferred is None:
            return None
        try:
            stored = answer_decode(payload)
        except (ValueError, KeyError, TypeError):  # a malformed entry is stale, never an error
            return None
        if (
            stored.version != version
            or (stored.served_by, stored.model_version) != preferred
            or now - stored.computed_at > self.max_age_s
            or top > self.top
        ):
            return None
        return stored

    def write(self, user_id: str, answer: Interests, *, version: int, computed_at: float) -> None:
        self.store.answer_write(
            user_id, answer_encode(answer, version=version, computed_at=computed_at), ttl_s=self.max_age_s
        )


class RecomputePublisher:
    """Hands recompute tasks to Celery from a thread of this process, never from the request that accepted
    the events: a broker that is slow or away (a stopped Redis, an unreachable RabbitMQ) stalls this thread,
    not the collect request. Users flagged meanwhile are coalesced into one task (up to ``BATCH`` users);
    when ``QUEUED_MAX`` are waiting, more are dropped (their flags expire, their next events flag them
    again, and their reads predict live meanwhile). One thread per process, started on first use (after a
    fork, in the child)."""

    BATCH = 500
    QUEUED_MAX = 10_000

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[list[str], float]] = queue.Queue(maxsize=self.QUEUED_MAX)
        self._pid: int | None = None
        self._lock = threading.Lock()
        self.published = 0  # tasks handed to the broker by this process

    def submit(self, user_ids: list[str], *, debounce_s: float) -> bool:
        """Queue one recompute of ``user_ids`` (``debounce_s`` after now); False if dropped (queue full)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.Queue(maxsize=self.QUEUED_MAX)
                    threading.Thread(target=self._run, args=(self._queue,), name="adsite-answers",
                                     daemon=True).start()
                    self._pid = os.getpid()
        try:
            self._queue.put_nowait((user_ids, time.monotonic() + debounce_s))
        except queue.Full:
            logger.warning("inference.answers_queue_full: %d users not recomputed", len(user_ids))
            return False
        return True

    def _run(self, pending: queue.Queue[tuple[list[str], float]]) -> None:
        from inference.tasks import answers_refresh

        while True:
            users, due = pending.get()
            batch = list(users)
            while len(batch) < self.BATCH:
                try:
                    more, due = pending.get_nowait()
                except queue.Empty:
                    break
                batch.extend(more)
            try:  # the last users' debounce decides the whole batch's countdown
                answers_refresh.apply_async(args=(batch,), countdown=max(0.0, due - time.monotonic()), retry=False)
                self.published += 1
            except Exception:
                logger.warning("inference.answers_publish_failed: %d users not recomputed", len(batch),
                               exc_info=True)


publisher = RecomputePublisher()


def answers_refresh_schedule(store: object, user_ids: Sequence[str], *, debounce_s: float) -> int:
    """After ``user_ids``' features changed: flag them and queue one recompute, ``debounce_s`` later, for
    those not already waiting for one (``RecomputePublisher``). Returns how many were queued. Never raises:
    a stored answer that is not refreshed is stale (its version is behind) and the read predicts live."""
    schedule = getattr(store, "answers_schedule", None)
    if schedule is None or not user_ids:
        return 0
    try:
        fresh = schedule(user_ids, debounce_s=debounce_s)
    except Exception:
        logger.warning("inference.answers_schedule_failed", exc_info=True)
        return 0
    if fresh and publisher.submit(list(fresh), debounce_s=debounce_s):
        return len(fresh)
    return 0
