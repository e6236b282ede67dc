"""tracking: records what visitors do, completely and safely.

Public face: :mod:`tracking.api`. Everything else in this package is internal to it.
"""
