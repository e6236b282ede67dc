"""Reads behind the audit page: the staff actions recorded, newest first."""

from __future__ import annotations

from adsite.dashboard.models import AuditEntry


def audit_list(*, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    query = AuditEntry.objects.all()
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return list(query.order_by("-id")[:limit])
