"""Serving interest predictions within a deadline: the fallback chain neural -> gbdt -> prior.

``deadline`` (one per request, created at the edge), ``breaker`` (one circuit breaker per loaded
model), ``latency`` (recent p99 per model), ``predictor`` (the per-process object that loads the
active versions, hot-swaps new ones and answers), ``metrics`` (Prometheus). The public face is
``inference.api.predict_interests``.
"""
