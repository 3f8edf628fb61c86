"""Cache verification benchmark: checking a signal cache entry on open vs building it, in one run.

Every cache entry records each file's size, CRC-32, shape and dtype, and is checked against
them each time it is opened (:mod:`genrestudy.cache_check`). The check must stay a small
fraction of what it protects: rebuilding the entry. This script builds the signal cache of
``--clips`` synthetic 30 s clips at 22050 Hz (GTZAN's format; 1000 clips make GTZAN's 2.6 GB
entry, the study's largest; beyond 100 they are copies of the first 100 under other names), then times, in the same run:

* build: manifest scan and :func:`genrestudy.signals.signal_set.build_signal_set` from a cold cache
  (decoding every clip, writing ``signals.npy``, recording the checksums);
* verify: :func:`genrestudy.cache.check_entry` on that entry in a fresh process state (its
  in-process memory of checked files cleared), the page cache warm as right after a build;
* the same bytes through the alternatives considered (BLAKE2b, SHA-256), for the choice of CRC-32.

Usage::

    python bench/cache_verify.py                 # 100 clips (the demo set's 265 MB entry)
    python bench/cache_verify.py --clips 1000    # GTZAN's size: a 2.6 GB entry

The last line is ``verify/build: <r> (verify <a> s, build <b> s, <size> MB)``. Each run
writes its report to ``bench/reports/cache_verify.md`` (``--report PATH``; see ``bench/report.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py, however this file is loaded
from preprocess import make_clips  # noqa: E402
from report import add_report_option, bench_report, size_statement  # noqa: E402


def clips_of(root: Path, n_clips: int, distinct: int = 100) -> None:
    """``n_clips`` synthetic 30 s clips under ``root``: ``distinct`` generated, the rest copies of them
    under other names (generating is slow and not what is measured; decoding a copy costs the same)."""
    import shutil

    made = make_clips(root, min(n_clips, distinct))
    for n in range(len(made), n_clips):
        source = made[n % len(made)]
        shutil.copyfile(source, source.with_name(f"copy{n:05d}.{source.name}"))


def _hash_rate(path: Path, algorithm: str) -> float:
    """Seconds to hash ``path`` with ``hashlib.<algorithm>`` in 16 MiB blocks."""
    digest = hashlib.new(algorithm)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        for block in iter(lambda: fh.read(16 << 20), b""):
            digest.update(block)
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cache-verify-") as tmp:
        tmp = Path(tmp)
        clips_of(tmp / "clips", args.clips)
        os.environ["GENRESTUDY_CACHE"] = str(tmp / "cache")
        from genrestudy import cache, cache_check
        from genrestudy.data.dataset import scan_dataset
        from genrestudy.signals.signal_set import SegmentParams, build_signal_set

        print(f"{args.clips} clips of 30 s at 22050 Hz, {os.cpu_count()} cores")
        started = time.perf_counter()
        signals = build_signal_set(scan_dataset(tmp / "clips", use_cache=False), SegmentParams(), n_jobs=args.n_jobs)
        build = time.perf_counter() - started
        size = sum(p.stat().st_size for p in signals.root.iterdir() if p.is_file())
        print(f"build: {build:.1f} s for a {size / 1e6:.0f} MB entry (scan, decode, write, checksums)")
        verify = []
        for _ in range(args.repeats):
            cache_check._checked.clear()  # as a new process would: nothing remembered
            started = time.perf_counter()
            cache.check_entry(signals.root)
            verify.append(time.perf_counter() - started)
        best = min(verify)
        print(f"verify: {best:.2f} s best of {len(verify)} ({size / best / 1e9:.2f} GB/s; "
              f"all: {', '.join(f'{v:.2f}' for v in verify)} s)")
        started = time.perf_counter()
        cache.check_entry(signals.root)
        print(f"verify again in the same process (files unchanged): {time.perf_counter() - started:.4f} s")
        array = signals.root / "signals.npy"
        for algorithm in ("blake2b", "sha256"):
            seconds = _hash_rate(array, algorithm)
            print(f"alternative {algorithm}: {seconds:.2f} s for signals.npy ({array.stat().st_size / seconds / 1e9:.2f} GB/s)")
    print(f"verify/build: {best / build:.3f} (verify {best:.2f} s, build {build:.1f} s, {size / 1e6:.0f} MB)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=100, help="30 s clips in the entry (1000: GTZAN's size)")
    parser.add_argument("--repeats", type=int, default=3, help="verification runs (the best is reported)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="decoding threads of the build (-1: all cores)")
    add_report_option(parser, "cache_verify")
    args = parser.parse_args(argv)
    size = size_statement(parser, args, ["clips"])
    with bench_report("cache_verify", args.report, argv=argv, size=size, libraries=("soundfile", "soxr", "numpy")):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
