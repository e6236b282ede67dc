"""Fast scoring paths for the models a web process serves, chosen by measurement (docs/benchmarks.md).

A loaded ``PairModel`` ranks one user by building the inputs (``model.inputs``) and calling
``model.score(sample)``; this module replaces only that ``score`` call of the *serving* copy of a model
(the instance attribute shadows the method; ``PairModel.predict`` calls ``self.score``), so training,
evaluation and the ranking code stay the models' own. Promises:

- gbdt on the CPU: the booster compiled to native code with lleaves (LLVM), one thread. Measured here
  ~7x faster than ``Booster.predict(num_threads=1)`` for one user's ~20 pair rows, with a far shorter
  tail (the booster's per-call set-up dominates at that size). The shared object is cached on local
  disk by the model's content hash and the host CPU, so a restart or a second worker does not compile
  again. Kept only if it reproduces the booster's scores on a probe sample; otherwise (or when lleaves
  is missing) the booster serves, with ``num_threads=1``. One compilation per cache directory at a time
  (a lock on the directory): a host's second worker waits for the first one's shared object instead of
  compiling it again. With ``background=True`` (the site's serving) a model not compiled yet serves at
  once through the booster while a thread compiles it, and switches to the compiled path when ready:
  LLVM takes seconds for a model of a few hundred trees (45 s on this 2-core machine at load 14 with
  four web processes compiling at once), and an activation must not wait for it (docs/scaling.md).
- neural on the CPU: the network exported to ONNX and run by ONNX Runtime with one thread, measured
  faster than eager PyTorch in ``inference_mode`` and than TorchScript here. Same probe check; the eager
  network is the fallback (it is needed anyway for training, evaluation and CUDA).
- neural on CUDA: the network is moved to the device once (resident) and concurrent requests of the
  process are micro-batched (:class:`MicroBatcher`, wait about 1 ms at most, bounded queue). A full
  queue or a late batch raises ``BatcherUnavailable``, which the predictor turns into a fall-through.

``accelerate(model, ...)`` returns the same model object with its ``score`` replaced and the path
taken in ``model.serving_path`` (``"lleaves"``, ``"booster"``, ``"onnxruntime"``, ``"torch"``,
``"torch-batched-cuda"``).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inference.serving.batcher import MicroBatcher

logger = logging.getLogger(__name__)

__all__ = [
    "accelerate",
    "compiled_dir_default",
    "gbdt_compiled_scorer",
    "neural_onnx_scorer",
    "neural_batched_scorer",
    "private_dir_ensure",
]

Scorer = Callable[[Any], np.ndarray]
# the fast path must reproduce the model's own scores to this (absolute, plus float32 rounding relative)
PROBE_TOLERANCE = 1e-4
PROBE_RELATIVE = 1e-5


def _probe_matches(model: Any, fast: Scorer, probe: Any) -> bool:
    if probe is None or probe.candidates.size == 0:
        return True
    expected = np.asarray(type(model).score(model, probe), dtype=np.float64)
    got = np.asarray(fast(probe), dtype=np.float64)
    return got.shape == expected.shape and bool(
        np.allclose(got, expected, atol=PROBE_TOLERANCE, rtol=PROBE_RELATIVE)
    )


# --- gbdt ---------------------------------------------------------------------------------------------
def _compiled_path(model_text: str, cache_dir: Path) -> Path:
    import lleaves
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    key = hashlib.sha256(
        "\n".join(
            [
                model_text,
                getattr(lleaves, "__version__", ""),
                llvm.get_host_cpu_name(),
                llvm.get_host_cpu_features().flatten(),
            ]
        ).encode()
    ).hexdigest()[:32]
    return cache_dir / f"lleaves-{key}.so"


def gbdt_compiled_scorer(model: Any, *, cache_dir: Path) -> Scorer:
    """``score`` through the lleaves-compiled booster (compiles once per model and host, then cached)."""
    import lleaves

    from inference.models.gbdt import _matrix

    private_dir_ensure(cache_dir)
    model_text = model.booster.model_to_string()
    target = _compiled_path(model_text, cache_dir)
    if target.exists():  # refuse a planted or tampered shared object before any work (checked again below)
        _owned_privately(target)
    fd, model_file = tempfile.mkstemp(suffix=".txt", dir=cache_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(model_text)
        compiled = lleaves.Model(model_file=model_file)
        with _compiling(cache_dir):  # a worker that waited here finds the other's shared object below
            if target.exists():
                _owned_privately(target)  # a planted or tampered shared object is never loaded
                compiled.compile(cache=str(target))
            else:  # compile to a private name, then publish atomically
                private = target.with_suffix(f".{os.getpid()}.tmp.so")
                compiled.compile(cache=str(private))
                os.replace(private, target)
    finally:
        os.unlink(model_file)

    def score(sample: Any) -> np.ndarray:
        if sample.candidates.size == 0:
            return np.zeros(0)
        return np.asarray(compiled.predict(_matrix([sample]).astype(np.float64), n_jobs=1), dtype=np.float64)

    return score


def gbdt_compiled_cached(model: Any, *, cache_dir: Path) -> bool:
    """Whether this model's shared object for this host is in ``cache_dir`` already (loading it is quick)."""
    try:
        return _compiled_path(model.booster.model_to_string(), cache_dir).is_file()
    except ImportError:  # no lleaves: nothing is ever compiled
        return False


class _compiling:
    """An exclusive lock on ``cache_dir`` (``flock`` on the directory itself: no lock file to leave behind)
    for as long as one process compiles into it."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._cache_dir, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _gbdt_fast(model: Any, cache_dir: Path, probe: Any) -> Scorer | None:
    """The compiled scorer if it reproduces the booster on ``probe``; None (logged) if not or on failure."""
    try:
        fast = gbdt_compiled_scorer(model, cache_dir=cache_dir)
    except Exception as exc:  # lleaves missing or failing: the booster still serves
        logger.warning("inference.fastpath_unavailable gbdt lleaves: %r", exc)
        return None
    if not _probe_matches(model, fast, probe):
        logger.error("inference.fastpath_mismatch gbdt lleaves: keeping the booster")
        return None
    return fast


def _gbdt_compile_later(model: Any, cache_dir: Path, probe: Any) -> threading.Thread:
    """Compile in a thread; the model switches to the compiled path when it is ready and checked (its
    ``score`` is one attribute: a request in flight finishes on the booster, the next one is compiled)."""

    def run() -> None:
        started = time.perf_counter()
        fast = _gbdt_fast(model, cache_dir, probe)
        if fast is not None:
            model.score = fast
            model.serving_path = "lleaves"
            logger.info("inference.fastpath_ready gbdt lleaves after %.1f s", time.perf_counter() - started)

    thread = threading.Thread(target=run, name="inference-gbdt-compile", daemon=True)
    thread.start()
    return thread


def _gbdt_booster_scorer(model: Any) -> Scorer:
    from inference.models.gbdt import _matrix

    booster = model.booster

    def score(sample: Any) -> np.ndarray:
        if sample.candidates.size == 0:
            return np.zeros(0)
        return np.asarray(booster.predict(_matrix([sample]), num_threads=1), dtype=np.float64)

    return score


# --- neural -------------------------------------------------------------------------------------------
_NEURAL_INPUTS = ("candidates", "rows", "items", "cats", "ages", "kinds")


def neural_onnx_scorer(model: Any) -> Scorer:
    """``score`` through ONNX Runtime (one thread) running the exported network."""
    import onnxruntime as ort
    import torch

    from inference.models.neural import _pack

    network = model.network
    example = _pack([_example_sample(model)], model.mean, model.std)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        # the TorchScript-based exporter: no extra dependency, exports this small static graph exactly
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            tuple(example[k] for k in _NEURAL_INPUTS),
            buffer,  # type: ignore[arg-type]  # a file object is accepted at run time
            input_names=list(_NEURAL_INPUTS),
            output_names=["scores"],
            dynamic_axes={
                "candidates": {0: "batch", 1: "candidates"},
                "rows": {0: "batch", 1: "candidates"},
                "items": {0: "batch"},
                "cats": {0: "batch"},
                "ages": {0: "batch"},
                "kinds": {0: "batch"},
                "scores": {0: "batch", 1: "candidates"},
            },
            dynamo=False,
            opset_version=17,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one thread of math per process
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    mean, std = model.mean, model.std

    def score(sample: Any) -> np.ndarray:
        if sample.candidates.size == 0:
            return np.zeros(0)
        packed = _pack([sample], mean, std)
        out = session.run(None, {k: packed[k].numpy() for k in _NEURAL_INPUTS})[0]
        return out[0, : sample.candidates.size].astype(np.float64)

    return score


def neural_batched_scorer(
    model: Any, *, device: str, max_batch: int, max_wait_ms: float, max_queue: int, timeout_ms: float
) -> tuple[Scorer, MicroBatcher[Any, np.ndarray]]:
    """``score`` through a micro-batcher over the network resident on ``device`` (CUDA)."""
    model.network.to(device).eval()
    batcher: MicroBatcher[Any, np.ndarray] = MicroBatcher(
        model.score_many, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, name="neural"
    )

    def score(sample: Any) -> np.ndarray:
        if sample.candidates.size == 0:
            return np.zeros(0)
        return batcher.submit(sample, timeout_ms=timeout_ms)

    return score, batcher


def _example_sample(model: Any) -> Any:
    """A sample with a few candidates (the population's popular ones) for exports and probes."""
    return model.inputs("", None, None, time.time())


# --- the entry point ----------------------------------------------------------------------------------
def accelerate(
    model: Any,
    *,
    device: str = "cpu",
    cache_dir: Path | None = None,
    compiled: bool = True,
    batch: Mapping[str, float] | None = None,
    batched: bool | None = None,
    background: bool = False,
) -> Any:
    """Give ``model`` (a loaded ``inference.models`` model) its fastest serving ``score`` measured here.

    ``compiled=False`` keeps the plain paths (booster with one thread / eager torch). ``device="cuda"``
    micro-batches the neural model on the GPU (``batch``: max_batch, max_wait_ms, max_queue, timeout_ms).
    ``batched`` forces micro-batching on or off (default: on for CUDA only; the tests batch on the CPU).
    ``background``: a gbdt model not compiled for this host yet serves through the booster at once and
    switches to the compiled path when a thread has compiled it (``model.compiling``: that thread).
    """
    algorithm = getattr(model, "algorithm", "")
    if algorithm == "blend":  # each member gets its own fast path; the blend averages what they answer
        for member in model.members:
            accelerate(
                member, device=device, cache_dir=cache_dir, compiled=compiled, batch=batch, batched=batched,
                background=background,
            )
        model.serving_path = "+".join(f"{m.algorithm}:{m.serving_path}" for m in model.members)
        return model
    probe = _example_sample(model) if algorithm in ("gbdt", "neural") else None
    score: Scorer | None = None
    later: Path | None = None
    path = "model"
    if algorithm == "gbdt":
        if compiled:
            cache = cache_dir or compiled_dir_default()
            if background and not gbdt_compiled_cached(model, cache_dir=cache):
                later = cache  # compiled after the booster is in place (below)
            else:
                fast = _gbdt_fast(model, cache, probe)
                if fast is not None:
                    score, path = fast, "lleaves"
        if score is None:
            score, path = _gbdt_booster_scorer(model), "booster"
    elif algorithm == "neural":
        if batched if batched is not None else device.startswith("cuda"):
            options = {
                "max_batch": 64,
                "max_wait_ms": 1.0,
                "max_queue": 256,
                "timeout_ms": 5.0,
                **(batch or {}),
            }
            score, model.batcher = neural_batched_scorer(
                model,
                device=device,
                max_batch=int(options["max_batch"]),
                max_wait_ms=float(options["max_wait_ms"]),
                max_queue=int(options["max_queue"]),
                timeout_ms=float(options["timeout_ms"]),
            )
            path = f"torch-batched-{device}"
        elif compiled:
            try:
                fast = neural_onnx_scorer(model)
                if _probe_matches(model, fast, probe):
                    score, path = fast, "onnxruntime"
                else:
                    logger.error("inference.fastpath_mismatch neural onnxruntime: keeping torch")
            except Exception as exc:
                logger.warning("inference.fastpath_unavailable neural onnxruntime: %r", exc)
        if score is None:
            path = path if path != "model" else "torch"
    if score is not None:
        model.score = score
    model.serving_path = path
    if later is not None:
        model.compiling = _gbdt_compile_later(model, later, probe)
    return model


def compiled_dir_default() -> Path:
    """A per-user directory under the system temp dir (the site's settings name a per-project one,
    ``var/compiled``); never a shared name another local user could create first."""
    return Path(tempfile.gettempdir()) / f"adsite-compiled-{os.getuid()}"


def _owned_privately(path: Path) -> None:
    """Raise ``PermissionError`` unless ``path`` is ours (this process's user), not a symbolic link, and
    writable by nobody else: compiled code is loaded into the process from here."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise PermissionError(f"{path} is a symbolic link")
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not {os.getuid()}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path} is writable by group or others (mode {stat.filemode(info.st_mode)})")


def private_dir_ensure(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing and check that it is private (``_owned_privately``)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owned_privately(path)
    return path
