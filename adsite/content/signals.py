"""What the content app asks of the apps above it.

- ``placements_requested(request, placements, categories)``: a page is about to render its ad slots;
  a receiver answers ``{placement: SlotAd | None}`` (the ads app's, connected in its ``apps.py``). The
  first receiver's answer is used; a slot left empty, or a receiver that fails, gets the house ad.
"""

from __future__ import annotations

from django.dispatch import Signal

placements_requested = Signal()
