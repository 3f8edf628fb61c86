"""Measuring the cost of a step: wall time, peak memory in a fresh process, prediction latency.

Memory is the resident set size (RSS) of a *fresh* subprocess that runs only the step,
sampled by memory-profiler while it runs, so one step's allocations never hide in
another's, and the interpreter and the imports the step declares
(:func:`genrestudy.report.efficiency_steps.step`) are reported apart from the step itself
(``rss_before_mb``). The child enables GPU memory growth before it imports anything
(:func:`genrestudy.device.enable_memory_growth`), so no process, the parent included, takes
a whole GPU from the steps measured after it. Latency is timed after warm-up calls, over many repeats, and
reported as median and interquartile range per sample.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    if not name:
        raise ValueError(f"step must be 'module:function', got {target!r}")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def measure_step(target: str, kwargs: dict | None = None, *, interval: float = 0.02,
                 env: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``module:function(**kwargs)`` in a fresh Python process and measure it.

    The child enables GPU memory growth, imports the function's module and the modules the
    function declares (``step_imports``), records its RSS, then times the call alone. The
    parent samples the child's RSS (children included) with memory-profiler.

    Parameters
    ----------
    target : str
        ``"package.module:function"``; ``kwargs`` must be JSON-serialisable.
    interval : float
        RSS sampling period in seconds.
    env : dict, optional
        Extra environment variables for the child (e.g. ``KERAS_BACKEND``).

    Returns
    -------
    dict
        ``seconds`` (the call alone), ``peak_rss_mb`` (whole process), ``rss_before_mb``
        (after imports, before the call), ``step_rss_mb`` (peak minus before), ``result``
        (the function's return value if JSON-serialisable, else its ``repr``), ``imported``
        (the step's declared imports).

    Raises
    ------
    RuntimeError
        The step failed in the child (its last error line is in the message).
    """
    from memory_profiler import memory_usage

    with tempfile.TemporaryDirectory(prefix="genrestudy-step-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "genrestudy.efficiency", target, json.dumps(kwargs or {}), str(out)]
        from .device import MEMORY_GROWTH_ENV

        child_env = {**MEMORY_GROWTH_ENV, **os.environ, **(env or {})}
        proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = memory_usage(proc, interval=interval, include_children=True, multiprocess=False,
                               timeout=timeout, retval=False)
        stdout, stderr = proc.communicate()
        if proc.returncode != 0 or not out.is_file():
            last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "no output")
            raise RuntimeError(f"step {target} failed in its subprocess: {last}")
        report = json.loads(out.read_text())
    peak = float(max(samples)) * 1.048576 if samples else float("nan")  # MiB → MB
    report["peak_rss_mb"] = max(peak, report.pop("child_peak_mb", 0.0))
    report["step_rss_mb"] = report["peak_rss_mb"] - report["rss_before_mb"]
    return report


def _run_child(target: str, kwargs_json: str, out_path: str) -> None:
    import psutil

    from genrestudy import device

    device.enable_memory_growth()  # before any framework can take the GPU
    func = _resolve(target)
    imported = list(getattr(func, "step_imports", ()))
    for module in imported:
        importlib.import_module(module)
    me = psutil.Process()
    before = me.memory_info().rss / 1e6
    start = time.perf_counter()
    result = func(**json.loads(kwargs_json))
    seconds = time.perf_counter() - start
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        result = repr(result)[:200]
    child_peak = _own_peak_rss_mb()
    Path(out_path).write_text(json.dumps({"seconds": seconds, "rss_before_mb": before, "imported": imported,
                                          "child_peak_mb": child_peak, "result": result}))


class PeakRSS:
    """This process's peak resident memory (RSS) while a ``with`` block runs, sampled on a thread every
    ``interval`` s, in MB (1e6 bytes, as Table 8); ``before_mb`` is the RSS when the block began. The
    in-process measure of feature extraction (notebook 02), the small networks and the CGANs;
    :func:`measure_step` measures a step in a fresh process instead."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self._process, self.interval = psutil.Process(), interval
        self.before_mb = self.peak_mb = 0.0

    def _sample(self):
        while not self._done.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 1e6)

    def __enter__(self) -> "PeakRSS":
        self.before_mb = self.peak_mb = self._process.memory_info().rss / 1e6
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 1e6)


def _own_peak_rss_mb() -> float:
    """This process's peak RSS, which catches a peak shorter than the parent's sampling period.

    Linux's VmHWM belongs to the address space made at exec; ``ru_maxrss`` would not do, as
    Linux carries the parent's high-water mark across fork and exec into it. Where there is
    no /proc, 0 (the parent's samples stand alone).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def latency(predict: Callable, batch, *, repeats: int = 30, warmup: int = 3) -> dict:
    """Per-sample latency of ``predict(batch)``: median and interquartile range over ``repeats``.

    ``batch`` is anything with ``len()``; the time of each call is divided by its length.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    n = len(batch)
    for _ in range(warmup):
        predict(batch)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times[i] = (time.perf_counter() - start) / n
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"batch_size": n, "repeats": repeats, "median_s": float(median), "q1_s": float(q1),
            "q3_s": float(q3), "iqr_s": float(q3 - q1)}


def hardware() -> str:
    """One line naming the machine the measurements were taken on."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    ram = psutil.virtual_memory().total / 2 ** 30
    return f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, {platform.system()} {platform.release()}"


if __name__ == "__main__":
    _run_child(*sys.argv[1:4])
