"""inference: features, online feature store, models, training, evaluation, registry and serving.

Public face: :mod:`inference.api`. It imports nothing from ``adsite`` or ``tracking``.
"""
