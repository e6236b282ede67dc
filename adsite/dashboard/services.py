"""Staff actions of the dashboard. Each one calls the owning app's service and writes an
``AuditEntry`` (who, what, target, details, whether it worked), also when the action fails.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import close_old_connections

from adsite.dashboard.conf import dashboard_setting
from adsite.dashboard.models import AuditEntry

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ActionFailed(Exception):
    """The owning app refused the action (e.g. nothing to roll back to); the message says why."""


def audit_entry_create(
    *,
    actor: AbstractBaseUser | AnonymousUser,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    ok: bool = True,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=actor.get_username() if getattr(actor, "pk", None) else "anonymous",
        action=action,
        target=target[:255],
        details=details or {},
        ok=ok,
    )


def _audited(
    *,
    actor: Any,
    action: str,
    target: str,
    details: dict[str, Any],
    call: Callable[[], T],
    describe: Callable[[T], dict[str, Any]],
) -> T:
    try:
        result = call()
    except Exception as exc:
        audit_entry_create(
            actor=actor, action=action, target=target, details={**details, "error": str(exc)[:500]}, ok=False
        )
        raise ActionFailed(str(exc)) from exc
    audit_entry_create(actor=actor, action=action, target=target, details={**details, **describe(result)})
    return result


def _actor_label(actor: Any) -> str:
    return f"dashboard:{actor.get_username()}"


def _train_in_thread(kwargs: dict[str, Any]) -> None:
    from inference import api as inference_api

    try:
        inference_api.training_start(**kwargs, eager=True)
    except Exception:
        logger.exception("dashboard.training_failed")
    finally:
        close_old_connections()


def training_start(*, actor: Any, algorithm: str = "all", activate: str = "never") -> str:
    """Enqueue ``inference.train_models``. With eager Celery (embedded mode) the task runs on a
    background thread instead, so the request returns at once and the page can show its progress."""
    from inference import api as inference_api

    kwargs: dict[str, Any] = {"algorithm": algorithm, "activate": activate}

    def call() -> str:
        if not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
            return inference_api.training_start(**kwargs)
        if not dashboard_setting("TRAIN_IN_BACKGROUND"):
            return inference_api.training_start(**kwargs, eager=True)
        threading.Thread(target=_train_in_thread, args=(kwargs,), daemon=True, name="dashboard-train").start()
        return "thread"

    return _audited(
        actor=actor,
        action="model.train",
        target=algorithm,
        details=kwargs,
        call=call,
        describe=lambda r: {"task": r},
    )


def model_activate(*, actor: Any, version: str) -> str:
    from inference import api as registry

    row = _audited(
        actor=actor,
        action="model.activate",
        target=version,
        details={},
        call=lambda: registry.model_version_activate(version=version, actor=_actor_label(actor)),
        describe=lambda r: {"algorithm": r.algorithm},
    )
    return row.version


def model_rollback(*, actor: Any, algorithm: str) -> str:
    from inference import api as registry

    row = _audited(
        actor=actor,
        action="model.rollback",
        target=algorithm,
        details={},
        call=lambda: registry.model_version_rollback(algorithm=algorithm, actor=_actor_label(actor)),
        describe=lambda r: {"now_serving": r.version},
    )
    return row.version


def model_retire(*, actor: Any, version: str) -> str:
    from inference import api as registry

    row = _audited(
        actor=actor,
        action="model.retire",
        target=version,
        details={},
        call=lambda: registry.model_version_retire(version=version, actor=_actor_label(actor)),
        describe=lambda r: {"algorithm": r.algorithm},
    )
    return row.version


def shadow_set(*, actor: Any, version: str, sample_rate: float, top_k: int) -> Any:
    """Shadow ``version`` on ``sample_rate`` of the model-served requests (every web process picks it
    up on its next registry poll)."""
    from inference import api as inference_api

    return _audited(
        actor=actor,
        action="model.shadow",
        target=version,
        details={"sample_rate": sample_rate, "top_k": top_k},
        call=lambda: inference_api.shadow_setting_set(
            version=version, sample_rate=sample_rate, top_k=top_k, actor=_actor_label(actor)
        ),
        describe=lambda r: {"algorithm": r.algorithm},
    )


def shadow_stop(*, actor: Any) -> str | None:
    """Turn shadow mode off; returns the version that was shadowing."""
    from inference import api as inference_api

    def call() -> str | None:
        stopped = inference_api.shadow_setting_clear()
        if stopped is None:
            raise ValueError("no version is shadowing")
        return stopped

    return _audited(
        actor=actor,
        action="model.shadow_stop",
        target="shadow",
        details={},
        call=call,
        describe=lambda r: {"version": r},
    )


def visitor_delete(*, actor: Any, user_id: str) -> Any:
    """The privacy operation (tracking's ``user_data_delete``: events, quarantine rows, features)."""
    from tracking import api as tracking_api

    return _audited(
        actor=actor,
        action="visitor.delete",
        target=user_id,
        details={},
        call=lambda: tracking_api.user_data_delete(user_id=user_id),
        describe=lambda r: {"events": r.events, "quarantined": r.quarantined},
    )


def quarantine_replay(*, actor: Any, ids: Sequence[int]) -> Any:
    from tracking import api as tracking_api

    return _audited(
        actor=actor,
        action="quarantine.replay",
        target=f"{len(ids)} rows",
        details={"ids": list(ids)[:100]},
        call=lambda: tracking_api.quarantined_replay(ids=ids),
        describe=lambda r: {
            "replayed": r.replayed,
            "accepted": r.accepted,
            "duplicate": r.duplicate,
            "rejected": r.rejected,
            "unreadable": r.unreadable,
        },
    )


# --- ads ------------------------------------------------------------------------------------------


def campaign_status_set(*, actor: Any, campaign_id: int, status: str) -> Any:
    """Pause (``paused``) or resume (``active``) a campaign through the ads service."""
    from adsite.ads import selectors as ads_selectors
    from adsite.ads.services import staff as ads

    before = _changes(ads_selectors.campaign_get(campaign_id=campaign_id), ["status"])
    return _audited(
        actor=actor,
        action="campaign.pause" if status == "paused" else "campaign.resume",
        target=f"campaign {campaign_id}",
        details={"status": status},
        call=lambda: ads.campaign_status_set(campaign_id=campaign_id, status=status),
        describe=lambda r: {"campaign": str(r), "changes": _with_new(before, r)},
    )


def creative_active_set(*, actor: Any, creative_id: int, active: bool) -> Any:
    from adsite.ads.services import staff as ads

    return _audited(
        actor=actor,
        action="creative.resume" if active else "creative.pause",
        target=f"creative {creative_id}",
        details={"active": active},
        call=lambda: ads.creative_active_set(creative_id=creative_id, active=active),
        describe=lambda r: {"creative": r.name, "campaign_id": r.campaign_id},
    )


def _changed(fields: dict[str, Any], changed: Sequence[str] | None) -> list[str]:
    return sorted(changed if changed is not None else fields)


def _audit_value(value: Any) -> Any:
    """A field value as the audit trail keeps it (JSON): a related row by its name, a decimal or a
    date as text, a file by its name."""
    from decimal import Decimal

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):  # 0.5000 and 0.5 are one amount
        return f"{value.normalize():f}"
    if isinstance(value, dict | list):
        return value
    if hasattr(value, "pk") and hasattr(value, "_meta"):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(getattr(value, "name", value))


def _changes(row: Any, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{field: {"old": ..., "new": ...}}`` of ``row`` before a save, the new values filled in later."""
    return {name: {"old": _audit_value(getattr(row, name, None)) if row is not None else None} for name in fields}


def _with_new(changes: dict[str, dict[str, Any]], saved: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for name, change in changes.items():
        new = _audit_value(getattr(saved, name, None))
        if new != change["old"]:
            out[name] = {"old": change["old"], "new": new}
    return out


def campaign_save(
    *,
    actor: Any,
    fields: dict[str, Any],
    campaign_id: int | None = None,
    changed: Sequence[str] | None = None,
) -> Any:
    """Create (no ``campaign_id``) or update a campaign; the audit entry names the changed fields."""
    from adsite.ads import selectors as ads_selectors
    from adsite.ads.services import staff as ads

    names = _changed(fields, changed)
    before = _changes(ads_selectors.campaign_get(campaign_id=campaign_id) if campaign_id else None, names)

    def call() -> Any:
        if campaign_id is None:
            return ads.campaign_create(fields=fields)
        return ads.campaign_update(campaign_id=campaign_id, fields=fields)

    return _audited(
        actor=actor,
        action="campaign.create" if campaign_id is None else "campaign.update",
        target=f"campaign {campaign_id}" if campaign_id else str(fields.get("name", ""))[:200],
        details={"fields": names},
        call=call,
        describe=lambda r: {"campaign_id": r.id, "campaign": str(r), "changes": _with_new(before, r)},
    )


def creative_save(
    *,
    actor: Any,
    fields: dict[str, Any],
    creative_id: int | None = None,
    changed: Sequence[str] | None = None,
) -> Any:
    from adsite.ads import selectors as ads_selectors
    from adsite.ads.services import staff as ads

    names = _changed(fields, changed)
    before = _changes(ads_selectors.creative_get(creative_id=creative_id) if creative_id else None, names)

    def call() -> Any:
        if creative_id is None:
            return ads.creative_create(fields=fields)
        return ads.creative_update(creative_id=creative_id, fields=fields)

    return _audited(
        actor=actor,
        action="creative.create" if creative_id is None else "creative.update",
        target=f"creative {creative_id}" if creative_id else str(fields.get("name", ""))[:200],
        details={"fields": names},
        call=call,
        describe=lambda r: {
            "creative_id": r.id,
            "campaign_id": r.campaign_id,
            "changes": _with_new(before, r),
        },
    )
