"""Interest features, written once.

- ``ops.event_ops(record)``: how one event changes a user's and the population's state, as
  commutative operations on flat fields (the only place that interprets an event);
- ``state.FeatureState``: those fields held in process (memory store, training replay);
- ``readout.user_features`` / ``readout.population_features``: the features at a time ``now``;
- ``pairs.pair_features`` / ``pairs.candidate_categories``: per (user, category) rows for the models.

The online store (``inference.store``) and the training-set builder (``inference.training.dataset``)
call exactly these functions, so serving and training compute the same features.
"""

from inference.features.definitions import (
    FEATURE_SCHEMA_VERSION,
    HALF_LIVES,
    INTEREST_TYPES,
    POPULATION_HALF_LIVES,
    SEQUENCE_LENGTH,
    SEQUENCE_TYPES,
    SESSIONS_KEPT,
)
from inference.features.ops import Ops, SeqItem, event_ops
from inference.features.pairs import PAIR_FEATURE_NAMES, candidate_categories, pair_features
from inference.features.readout import PopulationFeatures, UserFeatures, population_features, user_features
from inference.features.state import FeatureState, states_replay

__all__ = [
    "FEATURE_SCHEMA_VERSION",
    "HALF_LIVES",
    "INTEREST_TYPES",
    "PAIR_FEATURE_NAMES",
    "POPULATION_HALF_LIVES",
    "SEQUENCE_LENGTH",
    "SEQUENCE_TYPES",
    "SESSIONS_KEPT",
    "FeatureState",
    "Ops",
    "PopulationFeatures",
    "SeqItem",
    "UserFeatures",
    "candidate_categories",
    "event_ops",
    "pair_features",
    "population_features",
    "states_replay",
    "user_features",
]
