"""What inference announces to the apps above it (they connect receivers in their own ``apps.py``).

- ``store_rebuild_started()``: a full rebuild of the online feature store is about to replay every
  stored event (tracking empties its feature backlog there: the replay applies those events anyway).
"""

from __future__ import annotations

from django.dispatch import Signal

store_rebuild_started = Signal()
