"""Micro-batching of concurrent model calls (for a model resident on a GPU).

A GPU scores 64 users in about the time it scores one, so when several requests of one process need the
neural model at once, their inputs are gathered into one batch. Promises:

- ``submit(item, timeout_ms=...)`` blocks the calling request thread until *its own* answer is ready
  (answers are matched to callers by position in the batch, never shared or swapped).
- A batch is closed when it holds ``max_batch`` items or when its first item has waited ``max_wait_ms``
  (about 1 ms): a lone request pays at most that extra wait.
- The queue is bounded (``max_queue``): when it is full, ``submit`` raises :class:`BatcherFull` at once
  rather than queueing work that cannot finish in time; a caller that has waited ``timeout_ms`` gets
  :class:`BatchTimeout` (its late answer is dropped). Both are :class:`BatcherUnavailable`, which the
  predictor turns into a fall-through to the next model with a reason (``over_budget`` / ``timeout``).
- An exception raised by the batch function reaches every caller of that batch; the worker survives.

The batch function runs on one worker thread per batcher, so the model itself is never called
concurrently. Nothing here needs CUDA: the tests drive it on the CPU with a fake scorer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["BatchTimeout", "BatcherFull", "BatcherUnavailable", "MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class BatcherUnavailable(RuntimeError):
    """The batcher could not answer in time; the caller should fall through to the next model."""

    reason = "over_budget"


class BatcherFull(BatcherUnavailable):
    """The bounded queue is full (more concurrent work than the device clears in time)."""

    reason = "over_budget"


class BatchTimeout(BatcherUnavailable):
    """The answer was not ready within the caller's timeout."""

    reason = "timeout"


class _Pending(Generic[T, R]):
    __slots__ = ("item", "done", "result", "error", "enqueued")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = threading.Event()
        self.result: R | None = None
        self.error: BaseException | None = None
        self.enqueued = time.perf_counter()


class MicroBatcher(Generic[T, R]):
    """Gathers concurrent ``submit`` calls into batches for ``batch_fn(items) -> results`` (same order)."""

    def __init__(
        self,
        batch_fn: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 1.0,
        max_queue: int = 256,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self._batch_fn = batch_fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Pending[T, R] | None] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self.batches = 0  # batches run so far (for metrics and tests)
        self.largest_batch = 0
        self._thread = threading.Thread(target=self._run, name=f"microbatch-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: T, *, timeout_ms: float) -> R:
        """This item's result; raises BatcherFull, BatchTimeout, or what the batch function raised."""
        if self._closed.is_set():
            raise BatcherFull("batcher closed")
        pending: _Pending[T, R] = _Pending(item)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise BatcherFull(f"queue full ({self._queue.maxsize})") from None
        if not pending.done.wait(max(0.0, timeout_ms) / 1000.0):
            raise BatchTimeout(f"no answer within {timeout_ms:.3f} ms")
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def queued(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the worker; calls already queued get BatcherFull."""
        self._closed.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=5)
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending.error = BatcherFull("batcher closed")
                pending.done.set()

    # --- the worker -------------------------------------------------------------------------------
    def _gather(self, first: _Pending[T, R]) -> list[_Pending[T, R]]:
        batch = [first]
        # the wait is bounded from the moment the first item was queued, not from when the worker saw it
        until = first.enqueued + self.max_wait_s
        while len(batch) < self.max_batch:
            left = until - time.perf_counter()
            try:
                pending = self._queue.get_nowait() if left <= 0 else self._queue.get(timeout=left)
            except queue.Empty:
                break
            if pending is None:  # close() while gathering: finish this batch, then stop
                self._closed.set()
                break
            batch.append(pending)
        return batch

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                first = self._queue.get(timeout=0.1)  # wakes up now and then to notice close()
            except queue.Empty:
                continue
            if first is None:
                break
            batch = self._gather(first)
            try:
                results = list(self._batch_fn([p.item for p in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)}")
            except Exception as exc:  # every caller of this batch sees the failure; the worker goes on
                for pending in batch:
                    pending.error = exc
                    pending.done.set()
            else:
                for pending, result in zip(batch, results, strict=True):
                    pending.result = result
                    pending.done.set()
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))
