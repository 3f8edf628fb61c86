"""Preprocessing benchmark: this pipeline vs the tutorial way, on the same clips, in one run.

The naive reference is written the way tutorials do it: for every segment,
``librosa.load(path, offset=…, duration=3)`` at its default rate, ``melspectrogram``,
``power_to_db(ref=np.max)``, scaled to 0–255 and resized with PIL to 224×224 RGB, one
process. Ours is the study's pipeline from a cold cache: manifest scan (each file decoded
to check it), then :func:`genrestudy.signals.images.build_image_set` (decode once per clip, one
spectrogram per clip sliced per segment, parallel over clips, written to the cache).

Usage::

    python bench/preprocess.py                 # 200 clips, ours vs naive
    python bench/preprocess.py --gtzan-size    # also 1000 × 30 s clips through ours (target ≤ 120 s)

Clips are the synthetic demo clips (30 s, 22050 Hz, like GTZAN); generating them is not timed.
The last line is ``speedup: <X>x (ours <a> s, naive <b> s, <n> clips)``.
Each run also writes a Markdown report of itself (date, command, machine, versions, load,
every printed line, wall time) to ``bench/reports/preprocess.md`` (``--report PATH``; see ``bench/report.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py, however this file is loaded
from report import add_report_option, bench_report, size_statement  # noqa: E402


def naive_images(paths: list[Path], n_segments: int = 10, seconds: float = 3.0) -> np.ndarray:
    import librosa
    from PIL import Image

    out = []
    for path in paths:
        for i in range(n_segments):
            y, sr = librosa.load(path, offset=i * seconds, duration=seconds)
            mel = librosa.feature.melspectrogram(y=y, sr=sr)
            db = librosa.power_to_db(mel, ref=np.max)
            scaled = (255 * (db - db.min()) / (db.max() - db.min() + 1e-9)).astype(np.uint8)
            image = Image.fromarray(scaled[::-1]).resize((224, 224), Image.BILINEAR).convert("RGB")
            out.append(np.asarray(image))
    return np.stack(out)


def ours_images(root: Path, cache: Path, n_jobs: int):
    os.environ["GENRESTUDY_CACHE"] = str(cache)
    from genrestudy.data.dataset import scan_dataset
    from genrestudy.signals.images import ImageParams, build_image_set

    manifest = scan_dataset(root, use_cache=False)
    return build_image_set(manifest, ImageParams(), n_jobs=n_jobs)


def make_clips(root: Path, n_clips: int) -> list[Path]:
    from genrestudy.data.demo import GENRES, generate_demo_dataset

    per_genre = int(np.ceil(n_clips / len(GENRES)))
    generate_demo_dataset(root, clips_per_genre=per_genre)
    paths = sorted((root / "genres_original").rglob("*.wav"))
    for extra in paths[n_clips:]:  # keep exactly n_clips
        extra.unlink()
    return paths[:n_clips]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200, help="clips in the ours-vs-naive comparison")
    parser.add_argument("--gtzan-size", action="store_true", help="also time 1000 × 30 s clips through ours")
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes for ours (-1: all cores)")
    add_report_option(parser, "preprocess")
    args = parser.parse_args(argv)
    size = size_statement(parser, args, ["clips", ("gtzan_size", lambda value, default: False)])
    with bench_report("preprocess", args.report, argv=argv, size=size,
                      libraries=("librosa", "soundfile", "scipy", "numba", "Pillow", "joblib")):
        return run(args)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        tmp = Path(tmp)
        paths = make_clips(tmp / "clips", args.clips)
        for p in paths:  # same warm page cache for both
            p.read_bytes()
        print(f"{len(paths)} clips of 30 s, {os.cpu_count()} cores")

        naive_images(paths[:1], n_segments=1)  # librosa's first-call set-up, not charged to naive
        naive, t_naive = timed(naive_images, paths)
        print(f"naive: {naive.shape[0]} images in {t_naive:.1f} s ({len(paths) / t_naive:.2f} clips/s)")
        ours, t_ours = timed(ours_images, tmp / "clips", tmp / "cache", args.n_jobs)
        print(f"ours:  {len(ours)} images in {t_ours:.1f} s ({len(paths) / t_ours:.2f} clips/s), "
              "cold cache, worker start-up included")
        a = naive[..., 0].astype(np.float32)
        b = np.asarray(ours.images, dtype=np.float32)
        corr = np.mean([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)])
        print(f"agreement with naive images: mean per-image correlation {corr:.3f} "
              "(naive min-max scales each image; ours maps a fixed 80 dB range)")
        _, t_again = timed(ours_images, tmp / "clips", tmp / "cache", args.n_jobs)
        print(f"ours again, warm cache: {t_again:.2f} s")

        if args.gtzan_size:
            big = make_clips(tmp / "gtzan-size", 1000)
            _, t_big = timed(ours_images, tmp / "gtzan-size", tmp / "cache-big", args.n_jobs)
            verdict = "meets" if t_big <= 120 else "MISSES"
            print(f"gtzan-size: {len(big)} clips × 30 s in {t_big:.1f} s ({verdict} the ≤ 120 s target)")
    print(f"speedup: {t_naive / t_ours:.1f}x (ours {t_ours:.1f} s, naive {t_naive:.1f} s, {len(paths)} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
