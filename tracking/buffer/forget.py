"""A deleted visitor's events still in the buffer: removed from the streams, and a tombstone that stops
any the flush has already taken."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from inference import api as inference_api
from tracking.buffer.streams import redis_client, shards
from tracking.conf import tracking_settings
from tracking.storage import Row

logger = logging.getLogger(__name__)


FORGET_TTL_S = 7 * 24 * 3600  # how long a deleted visitor's tombstone stops their buffered events


def _forgotten_key(user_id: str) -> str:
    return f"{tracking_settings().STREAM_KEY}:forgotten:{user_id}"


def stream_forget(user_id: str, *, now_us: int) -> int:
    """Delete a visitor's events still in the buffer (the privacy operation); the number removed.

    Leaves a tombstone (the deletion time) that ``stream_flush`` honours, so that events a flush had
    already read when this ran, or that were received before the deletion and are appended later (a
    retry), never reach the table. Events received after the deletion are stored as usual.
    """
    conf = tracking_settings()
    client = redis_client(socket_timeout=5.0)
    client.set(_forgotten_key(user_id), now_us, ex=FORGET_TTL_S)
    return sum(_shard_forget(client, shard.stream, conf.STREAM_GROUP, user_id) for shard in shards())


def _shard_forget(client: redis.Redis, stream: str, group: str, user_id: str) -> int:
    removed = 0
    start = "-"
    while True:
        chunk: list[Any] = list(client.xrange(stream, min=start, max="+", count=1000))  # type: ignore[arg-type]
        if not chunk:
            return removed
        doomed: list[bytes] = []
        for entry_id, fields in chunk:
            try:
                row = json.loads(fields[b"e"])
            except (KeyError, TypeError, ValueError):
                continue
            if row[2] == user_id:
                doomed.append(entry_id)
        if doomed:
            pipe = client.pipeline(transaction=not inference_api.cluster_mode())  # one key: one slot
            pipe.xack(stream, group, *doomed)
            pipe.xdel(stream, *doomed)
            pipe.execute()
            removed += len(doomed)
        last = chunk[-1][0].decode() if isinstance(chunk[-1][0], bytes) else str(chunk[-1][0])
        start = "(" + last
        if len(chunk) < 1000:
            return removed


def _forgotten_filter(client: redis.Redis, rows: list[Row]) -> list[Row]:
    """Rows whose visitor was deleted after they were received are dropped (see ``stream_forget``)."""
    users = sorted({str(row[2]) for row in rows})
    if not users:
        return rows
    pipe = client.pipeline(transaction=False)  # one GET per visitor: their keys lie in many slots
    for user in users:
        pipe.get(_forgotten_key(user))
    stamps = pipe.execute()
    deleted_at = {user: int(stamp) for user, stamp in zip(users, stamps, strict=True) if stamp is not None}
    if not deleted_at:
        return rows
    return [row for row in rows if not (str(row[2]) in deleted_at and int(row[5]) <= deleted_at[str(row[2])])]
