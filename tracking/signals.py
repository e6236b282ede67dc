"""What tracking announces to the apps above it (they connect receivers in their own ``apps.py``).

- ``ad_events_accepted(records)``: the accepted, non-bot ad events (``ad_impression``, ``ad_click``)
  of one batch, as ``EventRecord``s, sent in the request after they were stored or buffered. A failing
  receiver is logged, never raised: the events are kept whatever a receiver does with them.
- ``visitor_deleted(user_id)``: a visitor's events, quarantine rows and features were deleted; each
  app deletes what it holds about them. A failing receiver's error reaches the caller (a deletion must
  not be reported done while some of it was not).
"""

from __future__ import annotations

from django.dispatch import Signal

ad_events_accepted = Signal()
visitor_deleted = Signal()
