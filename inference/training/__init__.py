"""Training data: point-in-time correct samples replayed from the event history (``dataset``)."""
