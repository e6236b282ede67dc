"""The model registry and training runs (a Django app, label ``inference_registry``).

Promises: every trained model is a :class:`ModelVersion` row whose artifacts sit in their own
directory under ``INFERENCE["MODEL_DIR"]``; at most one version per algorithm is ``active`` (a
database constraint); every activation, rollback and retirement is audited. Writes in
``services``, reads in ``selectors``; serving reads only ``selectors.active_model_versions``.
"""
