"""Celery tasks of inference serving: the debounced recompute of stored answers (``serving/stored.py``).

Thin: user ids in, ``inference.api.answers_refresh`` does the work. Safe to run twice: a second run stores
the same answer again (or a fresher one).
"""

from __future__ import annotations

from celery import shared_task


# acks_late off: an answer not refreshed is only stale (reads predict live); a redelivery is wasted work
@shared_task(name="inference.answers_refresh", soft_time_limit=50, time_limit=60, ignore_result=True, acks_late=False)
def answers_refresh(user_ids: list[str]) -> int:
    from inference.api import answers_refresh as refresh

    return refresh(user_ids)
