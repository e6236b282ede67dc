"""Reservations whose answer the ad ledger lost, kept in the database until voided.

A reservation (``RedisLedger``) whose answer does not come back may have run: charged a CPM price, held the
visitor's caps and counted served impressions, while its decision served house ads. The process that lost
it voids it at its next reservation; it also hands it here (``reservation_lost_keep``, wired by the
platform), so that a process that dies first, or restarts, does not leave it counted. The beat's task
(``ads.reservations_void``) voids what is kept (``reservations_void``) and deletes it: a reservation voided
twice gives back nothing the second time, so the process and the task never need to agree on who did it.
The clicks' mirror image: a click billed while the database was away is kept in the ledger
(``billing.click_rows_settle``); a reservation lost while the ledger was away is kept in the database.
"""

from __future__ import annotations

import dataclasses
import logging

from django.db import DatabaseError

from adsite.ads.accounting import Charge, ReservationLost, ledger
from adsite.ads.models import LostReservation

__all__ = ["reservation_lost_keep", "reservations_void"]

logger = logging.getLogger(__name__)


def reservation_lost_keep(lost: ReservationLost) -> None:
    """Keep ``lost`` until a void gives back what it did. The database unreachable: it stays with the process
    that lost it alone (logged), which voids it at its next reservation as before."""
    try:
        LostReservation.objects.create(
            rid=lost.rid, user_id=lost.user_id, decided_at=lost.now, lost_at=lost.lost_at,
            charges=[dataclasses.asdict(charge) for charge in lost.charges],
        )
    except DatabaseError as exc:
        logger.warning("ads.reservation_lost_unsaved %s (kept by this process only): %s", lost.rid, exc)


def reservations_void(*, limit: int = 500, user_id: str | None = None) -> dict[str, int]:
    """Void the kept reservations, oldest first, and delete them (the beat's task; ``user_id``: one visitor's
    alone, before their data is deleted): how many were voided and the impressions given back. One lost too
    long ago to void stays counted (the ledger logs it). Raises ``LedgerUnavailable`` or the database's error
    while either is unreachable: what is kept stays kept for the next run."""
    voided = given = 0
    kept = LostReservation.objects.all() if user_id is None else LostReservation.objects.filter(user_id=user_id)
    for row in kept.order_by("lost_at")[:limit]:
        lost = ReservationLost(
            rid=row.rid, charges=tuple(Charge(**charge) for charge in row.charges), user_id=row.user_id,
            now=row.decided_at, lost_at=row.lost_at,
        )
        given += ledger().reservation_void(lost=lost)
        LostReservation.objects.filter(pk=row.pk).delete()
        voided += 1
    return {"voided": voided, "impressions": given}
