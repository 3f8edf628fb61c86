"""LightGBM's OpenCL learner (``device_type="gpu"``) vs its CPU learner on the same search: time and winner.

The PyPI wheel of LightGBM (4.x, Linux) is built with the OpenCL GPU learner; it needs an
OpenCL platform at run time (a GPU's driver, or on a CPU Debian's ``pocl-opencl-icd``). On a
generated problem (``bench/tune.py``'s, default 2,000 x 128, 10 classes) the same halving
search of the study (:func:`genrestudy.models.search.grid_search`: ``--budget`` points of Table 2,
rounds ``--min-rounds`` -> ``--rounds``, factor 3, warm-started survivors) runs twice:

* ``cpu``: the study's way, configurations side by side on ``--n-jobs`` threads
  (:func:`genrestudy.models.search.threads_per_fit`);
* ``gpu``: ``device_type="gpu"`` (:data:`genrestudy.models.classifiers.DEVICE_OPTIONS`), one fit at a
  time (one device), single-precision histograms (LightGBM's default ``gpu_use_dp=false``).

It prints each side's wall time and this process's CPU seconds (the steadier figure on a shared
machine: POCL's threads are the process's own), the time ratio, both winners and whether they agree, and how
many of the last rung's survivors agree. The study uses the GPU learner only if it gives the
same winner faster; on POCL the "device" is this CPU, so its time says nothing about a real
GPU (run it there: ``python bench/lightgbm_device.py`` on the GPU machine). Its first run here
(bench/reports/lightgbm_device.md) found neither: 52.7x the wall time and another winner, so
the study keeps ``device_type="cpu"``.

Without an OpenCL platform it says so in one line and exits 0 (nothing to compare).

Usage::

    nice python bench/lightgbm_device.py                 # a few minutes on 2 cores with POCL
    python bench/lightgbm_device.py --n-samples 600 --n-features 32 --budget 9 --rounds 9   # smoke run

The last line is ``device: gpu/cpu time <r>x; same winner: <yes|no>``. Each run writes its
report to ``bench/reports/lightgbm_device.md`` (``--report PATH``; see ``bench/report.py``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py and tune.py, however this is loaded
from report import add_report_option, bench_report, size_statement  # noqa: E402
from tune import make_problem  # noqa: E402


#: a two-round fit on LightGBM's GPU learner, run in a child process: an OpenCL driver that
#: crashes (POCL under pytest-xdist ended a test worker with a segmentation fault) takes the child
#: down, not the caller
_PROBE = """
import lightgbm as lgb, numpy as np
rng = np.random.default_rng(0)
X, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
lgb.train({"device_type": "gpu", "objective": "binary", "verbosity": -1, "num_threads": 1},
          lgb.Dataset(X, y), num_boost_round=2)
"""


def opencl_platform() -> str | None:
    """The OpenCL platform LightGBM's GPU learner finds (``clinfo -l``'s first line when there is one),
    or None when a two-round fit on ``device_type="gpu"`` fails or crashes in a child process."""
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None
    if probe.returncode != 0:
        return None
    if shutil.which("clinfo"):
        listing = subprocess.run(["clinfo", "-l"], capture_output=True, text=True, timeout=60).stdout.strip()
        return " / ".join(line.strip(" `-") for line in listing.splitlines()[:2]) or "an OpenCL platform"
    return "an OpenCL platform"


def timed_search(data, args, *, n_jobs: int):
    from genrestudy.models import search

    start, start_cpu = time.perf_counter(), time.process_time()
    result = search.grid_search(data, budget=args.budget, seed=args.seed, mode="halving", resource="rounds",
                                num_boost_round=args.rounds, min_resources=args.min_rounds,
                                early_stopping_rounds=args.early_stopping, n_jobs=n_jobs, progress=False)
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def run(args: argparse.Namespace) -> int:
    from genrestudy.models.classifiers import DEVICE_OPTIONS, STUDY_MAX_BIN, TrainingData

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    platform = opencl_platform()
    if platform is None:
        print("no OpenCL platform found: LightGBM's GPU learner cannot run here (on a CPU: apt-get install "
              "pocl-opencl-icd); nothing to compare")
        return 0
    print(f"OpenCL platform: {platform}", flush=True)
    X, y, train, valid = make_problem(args.n_samples, args.n_features, args.n_classes, args.class_sep, args.seed)
    print(f"problem: {args.n_samples} x {args.n_features}, {args.n_classes} classes; train {len(train)}, valid "
          f"{len(valid)}; halving over {args.budget} points of Table 2, {args.min_rounds} -> {args.rounds} rounds, "
          f"early stopping {args.early_stopping}, max_bin {STUDY_MAX_BIN}", flush=True)
    results = {}
    for device, n_jobs in (("cpu", args.n_jobs), ("gpu", 1)):
        data = TrainingData(X[train], y[train], X[valid], y[valid], num_class=args.n_classes,
                            training=DEVICE_OPTIONS[device])
        results[device] = timed_search(data, args, n_jobs=n_jobs)
        result, seconds, cpu_seconds = results[device]
        print(f"{device}: {result.n_fits} fits in {seconds:.1f} s wall, {cpu_seconds:.1f} s of this process's CPU "
              f"(n_jobs {n_jobs}, load average {os.getloadavg()[0]:.2f}); winner {result.best_params}, "
              f"validation accuracy {result.best_valid_accuracy:.4f}", flush=True)
    (cpu, cpu_s, cpu_cpu), (gpu, gpu_s, gpu_cpu) = results["cpu"], results["gpu"]
    last = {d: set(r.trace.loc[r.trace["rung"] == r.trace["rung"].max(), "candidate"]) for d, (r, *_) in results.items()}
    same = cpu.best_params == gpu.best_params
    print(f"last rung's candidates: {len(last['cpu'] & last['gpu'])} of {len(last['cpu'])} shared; winners' "
          f"validation accuracy gpu - cpu {100 * (gpu.best_valid_accuracy - cpu.best_valid_accuracy):+.2f} pt")
    print(f"load average at end {os.getloadavg()[0]:.2f}", flush=True)
    # on a shared machine the wall times depend on the load; the CPU seconds less so (POCL's threads are this process's)
    print(f"CPU seconds gpu/cpu: {gpu_cpu / cpu_cpu:.2f}x")
    print(f"device: gpu/cpu time {gpu_s / cpu_s:.2f}x; same winner: {'yes' if same else 'no'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--n-features", type=int, default=128)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--class-sep", type=float, default=2.0)
    parser.add_argument("--budget", type=int, default=27, help="points of Table 2 halved")
    parser.add_argument("--min-rounds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=27)
    parser.add_argument("--early-stopping", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=2, help="the CPU side's configurations side by side")
    parser.add_argument("--seed", type=int, default=0)
    add_report_option(parser, "lightgbm_device")
    args = parser.parse_args(argv)
    size = size_statement(parser, args, ["n_samples", "n_features", "n_classes", "budget", "rounds"])
    with bench_report("lightgbm_device", args.report, argv=argv, size=size, libraries=("lightgbm", "scikit-learn")):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
