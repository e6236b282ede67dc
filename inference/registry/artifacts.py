"""A version's artifacts on disk: written whole or not at all, with the feature schema they were built on."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

from inference.registry import selectors

__all__ = ["artifact_save", "feature_schema_version"]


def artifact_save(model: Any, version: str) -> str:
    """Save ``model`` as ``MODEL_DIR/<version>``: written to a temporary directory beside it and renamed
    into place, so a version directory is either complete or absent."""
    root = selectors.model_dir()
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        model.save(temporary)
        temporary.rename(root / version)  # same filesystem: atomic
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return version


def feature_schema_version() -> str:
    """The feature schema the models of this code are built on (kept with every version)."""
    from inference.models.base import FEATURE_SCHEMA_VERSION

    return str(FEATURE_SCHEMA_VERSION)
