"""The flush group's consumers: names, leases, who holds pending entries, taking over from dead ones."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import redis

from tracking.buffer.streams import _text, redis_client, shards
from tracking.conf import tracking_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingHolder:
    """Entries delivered to one flush consumer and not yet acknowledged."""

    consumer: str
    pending: int
    idle_ms: int
    alive: bool


def _group_ensure(client: redis.Redis, stream: str, group: str) -> None:
    try:
        # From id 0: entries appended before the group existed are flushed too.
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise



def consumer_name() -> str:
    """This process's consumer name in the flush group: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _lease_key(stream: str, consumer: str) -> str:
    return f"{stream}:lease:{consumer}"


def _pid_running(pid: int) -> bool:
    """True if ``pid`` names a live process here (a zombie, killed and not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True  # no /proc: trust kill(0)


def _consumer_alive(client: redis.Redis, stream: str, name: str) -> bool:
    host, _, pid = name.rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        return _pid_running(int(pid))
    return bool(client.exists(_lease_key(stream, name)))




def pending_holders(*, client: redis.Redis | None = None, stream: str | None = None) -> list[PendingHolder]:
    """Who holds delivered, unacknowledged entries of the buffer (of one shard's ``stream``; default:
    every shard, a consumer listed once per shard it holds entries of), and whether each is alive."""
    conf = tracking_settings()
    client = client or redis_client(socket_timeout=5.0)
    if stream is None:
        return [holder for shard in shards() for holder in pending_holders(client=client, stream=shard.stream)]
    group = conf.STREAM_GROUP
    try:
        consumers = client.xinfo_consumers(stream, group)
    except redis.ResponseError:  # no stream or no group yet
        return []
    holders = []
    for info in consumers:
        name = _text(info["name"])
        holders.append(
            PendingHolder(
                consumer=name,
                pending=int(info["pending"]),
                idle_ms=int(info["idle"]),
                alive=_consumer_alive(client, stream, name),
            )
        )
    return holders


def _own_pending(
    client: redis.Redis, stream: str, group: str, consumer: str, count: int
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Entries delivered to this consumer and never acknowledged (deleted ones are acknowledged away)."""
    while True:
        response = client.xreadgroup(group, consumer, {stream: "0"}, count=count)
        entries = list(response[0][1]) if response else []  # type: ignore[index,arg-type]
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            client.xack(stream, group, *gone)
        live = [(entry_id, fields) for entry_id, fields in entries if fields]
        if live or not gone:
            return live


def _dead_claim(
    client: redis.Redis, stream: str, group: str, consumer: str, count: int
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Claim up to ``count`` entries held by dead consumers; forget dead consumers that hold none."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    for holder in pending_holders(client=client, stream=stream):
        if holder.consumer == consumer or holder.alive:
            continue
        if holder.pending == 0:
            # a dead consumer holding nothing: remove it so the group does not grow with every pid
            client.xgroup_delconsumer(stream, group, holder.consumer)
            continue
        if len(entries) >= count:
            continue
        pending = client.xpending_range(
            stream, group, min="-", max="+", count=count - len(entries), consumername=holder.consumer
        )
        ids = [item["message_id"] for item in pending]
        if ids:
            logger.warning(
                "tracking.flush_dead_consumer %s held %d entries: taken over",
                holder.consumer, len(ids),
            )
            # entries deleted meanwhile come back as nothing and leave the pending list
            claimed = client.xclaim(stream, group, consumer, min_idle_time=0, message_ids=ids)
            entries.extend(entry for entry in claimed if entry and entry[1])  # type: ignore[misc]
    return entries
