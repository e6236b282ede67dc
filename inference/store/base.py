"""The online feature store interface, shared by the in-process and the Redis backend.

A store applies ``inference.features.event_ops`` to per-user states and the population state
(``observe``), and reads a user's features and the population's at a time ``now`` in one round
trip (``read``). Unknown users read as empty features, never as an error. A backend that cannot be
reached raises :class:`FeatureStoreUnavailable` quickly; serving turns it into the population prior.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inference.events import EventRecord
from inference.features import FeatureState, PopulationFeatures, UserFeatures

__all__ = ["FeatureStore", "FeatureStorePartlyApplied", "FeatureStoreUnavailable", "StoreRead"]


class FeatureStoreUnavailable(Exception):
    """The feature store could not be reached (or answered too slowly); nothing was read or written."""


class FeatureStorePartlyApplied(FeatureStoreUnavailable):
    """A batch reached some visitors and not others (a Redis Cluster master failed under it): the updates
    of ``applied_users`` were applied, each whole; the other visitors' were not applied at all."""

    def __init__(self, message: str, *, applied_users: frozenset[str]) -> None:
        super().__init__(message)
        self.applied_users = applied_users


@dataclass(frozen=True, slots=True)
class StoreRead:
    """One user's features and the population's, read together at ``user.now``."""

    user: UserFeatures
    population: PopulationFeatures


class FeatureStore(ABC):
    """Per-user feature state and the population state; see the module docstring."""

    @abstractmethod
    def observe(self, records: Sequence[EventRecord]) -> None:
        """Apply the events (accepted, non-bot) atomically: one batch, no lost update under concurrency."""

    @abstractmethod
    def read(self, user_id: str, *, now: float | None = None) -> StoreRead:
        """The user's and the population's features at ``now`` (default: the current time)."""

    @abstractmethod
    def population(self, *, now: float | None = None) -> PopulationFeatures:
        """The population's features at ``now`` (may be cached for about a second)."""

    @abstractmethod
    def user_state(self, user_id: str) -> FeatureState:
        """The raw fields of one user (empty for an unknown user); for tests and inspection."""

    @abstractmethod
    def forget(self, user_id: str) -> None:
        """Delete everything held about one user (their past contribution to popularity stays)."""

    @abstractmethod
    def clear(self) -> None:
        """Delete every user and the population (rebuilds and tests)."""

    def rebuild(self, records: Iterable[Sequence[EventRecord]] | Iterable[EventRecord]) -> int:
        """Clear, then apply ``records`` (time-ordered; event records or chunks of them). Returns the count."""
        self.clear()
        seen = 0
        batch: list[EventRecord] = []
        for entry in records:
            if isinstance(entry, EventRecord):
                batch.append(entry)
                if len(batch) >= 1000:
                    self.observe(batch)
                    seen += len(batch)
                    batch = []
            else:
                chunk = list(entry)
                self.observe(chunk)
                seen += len(chunk)
        if batch:
            self.observe(batch)
            seen += len(batch)
        return seen
