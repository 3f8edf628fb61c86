"""What ``"auto"`` inference precision means on a CPU: the faster one, measured here once and cached.

A CPU flag does not say which arithmetic is faster: with AVX512-BF16 but no AMX, ResNet-50
at 224 px ran 1.4–1.6× *slower* in bfloat16 than in float32 (issue 26), while an AMX machine
ran it 2.9× faster. So the first inference with ``precision="auto"`` on a CPU times both
candidates on a probe of the backbones' own shape, ResNet-50's stem and first stage
(7×7/2 convolution, max pooling and three bottleneck blocks, 56×56×256, the layers where
most of a 224 px image's arithmetic sits), at 224 px, under the Keras dtype policy each
precision runs in: one warm-up call each (tracing), then :data:`REPEATS` timed calls taken in
turns (so other load falls on both), and compares the medians. Well under five seconds.

The answer is cached in the study's cache folder under a key of everything that decides it
(:func:`machine`: the CPU model, its flags, the thread count, the Keras backend and the
versions of the libraries that run the arithmetic), and a cached answer is used only when
its stored machine equals this one and its choice is the faster of its own stored medians
(bfloat16 only when clearly faster: :data:`MARGIN`).
A loaded machine makes the medians noisy: ``bench/reports/predict.md`` (2 CPUs at load ≈ 10)
saw two fresh caches answer differently in one run. The first answer is the one kept; delete
``<cache>/cpu-inference-precision/`` on a quiet machine to measure again.
Everything here runs only off a GPU (a GPU's "auto" is bfloat16, :mod:`genrestudy.device`).
"""
from __future__ import annotations

import logging
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import cache

log = logging.getLogger(__name__)

#: the precisions compared (float16 has no fast CPU path worth timing)
CANDIDATES = ("float32", "bfloat16")
#: timed calls per candidate (after one warm-up call), and the probe's batch and image side
REPEATS, BATCH, SIZE = 5, 2, 224
#: bfloat16 is chosen only when its median is below this fraction of float32's: float32 is exact, and
#: on a loaded machine two near-equal medians would otherwise flip the choice (and the caches keyed by it)
MARGIN = 0.9
KIND = "cpu-inference-precision"
#: bump when the probe or the rule changes: older answers are then measured again
VERSION = 1


def machine() -> dict:
    """What decides which precision is faster here: CPU model and flags, threads, backend, libraries."""
    fields: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())  # the first CPU's lines
    except OSError:
        pass
    model = next((fields[k] for k in ("model name", "Hardware", "CPU part") if fields.get(k)),
                 platform.processor() or platform.machine())
    flags = sorted((fields.get("flags") or fields.get("Features") or "").split())
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"version": VERSION, "cpu": model, "flags": flags, "threads": threads,
            "backend": os.environ.get("KERAS_BACKEND") or _keras_backend(),
            "libraries": cache.library_versions("keras", "tensorflow", "jax", "jaxlib", "torch", "numpy")}


def _keras_backend() -> str:
    import keras

    return keras.config.backend()


def probe(policy: str) -> Callable[[], object]:
    """A call of ResNet-50's stem and first stage (BATCH images of SIZE px) under Keras dtype ``policy``."""
    import keras
    from keras import layers

    def conv(x, filters, size, strides=1, relu=True):
        x = layers.Conv2D(filters, size, strides=strides, padding="same", dtype=policy)(x)
        return layers.Activation("relu", dtype=policy)(x) if relu else x

    inputs = keras.Input((SIZE, SIZE, 3))
    x = conv(inputs, 64, 7, strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", dtype=policy)(x)
    for block in range(3):
        shortcut = conv(x, 256, 1, relu=False) if block == 0 else x
        y = conv(conv(conv(x, 64, 1), 64, 3), 256, 1, relu=False)
        x = layers.Activation("relu", dtype=policy)(layers.Add(dtype=policy)([shortcut, y]))
    model = keras.Model(inputs, layers.GlobalAveragePooling2D(dtype="float32")(x))
    images = np.random.default_rng(0).uniform(-120, 150, size=(BATCH, SIZE, SIZE, 3)).astype(np.float32)
    return lambda: model.predict_on_batch(images)


def measure(policies: dict, *, timer: Callable[[], float] = time.perf_counter,
            make_probe: Callable[[str], Callable] = probe, repeats: int = REPEATS) -> dict:
    """``{"seconds": {precision: median s per call}, "choice": the faster (:func:`choice`)}`` over :data:`CANDIDATES`."""
    calls = {precision: make_probe(policies[precision]) for precision in CANDIDATES}
    for call in calls.values():
        call()  # warm-up: tracing and first-touch allocation are not what is compared
    times = {precision: [] for precision in CANDIDATES}
    for _ in range(repeats):
        for precision, call in calls.items():  # in turns, so that other load falls on both
            started = timer()
            call()
            times[precision].append(timer() - started)
    seconds = {precision: statistics.median(values) for precision, values in times.items()}
    return {"seconds": seconds, "choice": choice(seconds),
            "repeats": repeats, "probe": f"ResNet-50 stem + first stage, {BATCH} x {SIZE}px, median of {repeats}"}


def choice(seconds: dict) -> str:
    """bfloat16 when its median is clearly (:data:`MARGIN`) below float32's, else float32."""
    return "bfloat16" if seconds["bfloat16"] < MARGIN * seconds["float32"] else "float32"


def _checked(entry: Path, expected: dict) -> dict:
    """A cached answer, when it was measured on this machine and is consistent; else CacheError (re-measured)."""
    meta = cache.read_meta(entry)
    seconds = meta.get("seconds")
    if meta.get("machine") != expected:
        raise cache.CacheError(f"{entry}: measured on another machine or library set")
    if (not isinstance(seconds, dict) or set(seconds) != set(CANDIDATES)
            or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in seconds.values())):
        raise cache.CacheError(f"{entry}: no valid timings")
    if meta.get("choice") != choice(seconds):
        raise cache.CacheError(f"{entry}: its choice {meta.get('choice')!r} is not the faster of its timings")
    return meta


def fastest(policies: dict, *, cache_root=None, timer: Callable[[], float] = time.perf_counter,
            make_probe: Callable[[str], Callable] = probe) -> dict:
    """The cached (or now measured) answer for this machine: ``choice``, ``seconds``, ``machine``, ``measured_at``."""
    here = machine()
    key = cache.cache_key(KIND, here)

    def build(entry) -> dict:
        found = measure(policies, timer=timer, make_probe=make_probe)
        log.info("precision 'auto' on this CPU: %s (median s per probe call: %s), cached in %s", found["choice"],
                 ", ".join(f"{p} {s:.4f}" for p, s in found["seconds"].items()), entry)
        return {**found, "machine": here, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    return cache.open_or_build(KIND, key, open_entry=lambda entry: _checked(entry, here), build=build,
                               root=cache_root)
