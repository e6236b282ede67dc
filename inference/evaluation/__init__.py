"""Offline evaluation of interest prediction, exactly as ``../shared/EVALUATION.md`` specifies.

``reading`` turns a clickstream file into :class:`~inference.events.EventRecord` objects, ``protocol``
splits them (time or user split) into a training side and test cases, ``baselines`` and the models
score the cases, ``metrics`` turns scores into NDCG@5, Recall@3 and AUC with bootstrap intervals, and
``runner`` ties those together for ``manage.py evaluate_interests``.
"""
