"""Reads behind the audit page: entries newest first, filtered by kind of action, actor or target
text, paged by id (one indexed query per page), each training start joined with the run it started
(its result: status, versions registered, whether they were activated, or the error)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from adsite.dashboard.models import AuditEntry

PAGE_SIZE = 50
# the families the filter offers: the first part of an action name ("campaign.pause" -> "campaign")
ACTION_KINDS = ("model", "campaign", "creative", "visitor", "quarantine")


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: Any
    actor: str
    action: str
    target: str
    ok: bool
    # {field: {"old": ..., "new": ...}} for edits; other details as (name, value) pairs
    changes: dict[str, dict[str, Any]]
    details: list[tuple[str, Any]]
    result: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class AuditPage:
    rows: list[AuditRow]
    kind: str
    actor: str
    query: str
    actors: list[str]
    older: int | None
    newer: int | None


def _training_results(entries: list[AuditEntry]) -> dict[int, dict[str, Any]]:
    """For each ``model.train`` entry, the first training run started at or after it (within 10 min)."""
    starts = [e for e in entries if e.action == "model.train" and e.ok]
    if not starts:
        return {}
    from inference import api as inference_api

    runs = sorted(inference_api.training_runs_recent(limit=200), key=lambda r: r.started_at)
    out: dict[int, dict[str, Any]] = {}
    taken: set[int] = set()
    window = timedelta(minutes=10)
    for entry in sorted(starts, key=lambda e: e.at):
        # the nearest run in time: a worker starts it just after the entry, an eager run (embedded
        # mode without the background thread) has finished before the entry is written
        near = [r for r in runs if r.id not in taken and abs(r.started_at - entry.at) <= window]
        if near:
            run = min(near, key=lambda r: abs(r.started_at - entry.at))
            taken.add(run.id)
            outcome = run.outcome if isinstance(run.outcome, dict) else {}
            out[entry.id] = {
                "run": run.id,
                "status": run.status,
                "message": run.message,
                "error": run.error[:300],
                # per algorithm: the version registered and why it was (or was not) activated
                "outcome": sorted((name, o) for name, o in outcome.items() if isinstance(o, dict)),
            }
    return out


def audit_page(
    *, kind: str = "", actor: str = "", query: str = "", before_id: int | None = None,
    after_id: int | None = None, limit: int = PAGE_SIZE,
) -> AuditPage:
    rows = AuditEntry.objects.all()
    if kind in ACTION_KINDS:
        rows = rows.filter(action__startswith=f"{kind}.")
    if actor:
        rows = rows.filter(actor_name=actor)
    if query:
        rows = rows.filter(target__icontains=query)
    base = rows
    if after_id is not None:  # the newer page: the next `limit` ids above, shown newest first
        entries = list(rows.filter(id__gt=after_id).order_by("id")[:limit])[::-1]
    else:
        if before_id is not None:
            rows = rows.filter(id__lt=before_id)
        entries = list(rows.order_by("-id")[: limit + 1])
    has_more = len(entries) > limit
    entries = entries[:limit]
    results = _training_results(entries)
    out = []
    for e in entries:
        details = dict(e.details or {})
        changes = details.pop("changes", None) or {}
        if changes:
            details.pop("fields", None)
        out.append(
            AuditRow(
                id=e.id, at=e.at, actor=e.actor_name, action=e.action, target=e.target, ok=e.ok,
                changes=changes if isinstance(changes, dict) else {},
                details=sorted(details.items()), result=results.get(e.id),
            )
        )
    older = out[-1].id if out and (has_more or after_id is not None) else None
    if older is not None and not base.filter(id__lt=older).exists():
        older = None
    newer = out[0].id if out and (before_id is not None or after_id is not None) else None
    if newer is not None and not base.filter(id__gt=newer).exists():
        newer = None
    actors = sorted(AuditEntry.objects.values_list("actor_name", flat=True).distinct()[:100])
    return AuditPage(rows=out, kind=kind, actor=actor, query=query, actors=actors, older=older, newer=newer)
