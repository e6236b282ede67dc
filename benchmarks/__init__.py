"""Benchmarks (``make bench``). Figures are recorded in docs/benchmarks.md with the machine and date."""

from __future__ import annotations

import os
from pathlib import Path

# The public datasets (../shared/data beside the checkout, or where ADSITE_SHARED_DATA says: a checkout
# elsewhere); never copied into the project.
SHARED_DATA = Path(os.environ.get("ADSITE_SHARED_DATA") or Path(__file__).resolve().parent.parent.parent / "shared" / "data")
