"""The REST face of inference (DRF): interests for one user or a batch, and the staff registry API.

The per-request path of the interests endpoints parses its two parameters by hand and builds the
response dict by hand: no ORM and no serializer on the hot path. Serializers here describe the
schema for drf-spectacular only (and validate the staff endpoints, which are not hot).
"""
