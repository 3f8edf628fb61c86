"""Benchmark: feature extraction the plain way vs genrestudy's pipeline, on the same images.

Plain way: every image loaded into RAM as a float32 array, ``preprocess_input`` on the
whole array, ``model.predict(x, batch_size=32)`` on the float32 Keras network.
Pipeline: :func:`genrestudy.extractors.backbones.build_backbone` + :func:`genrestudy.extractors.features.stream_features`
(BatchNormalization folded into the convolutions, reduced precision where the CPU has it,
fixed-size batches through the compiled predict function, the next batch read from the
memmap and preprocessed on a background thread).

Both networks carry the same weights (a random initialisation fixed by ``--seed``, saved
to a weights file and loaded into the pipeline through its ``weights=<path>`` option).
Throughput is measured on ``--n-images`` synthetic 224x224 images in ``--rounds``
alternating rounds (plain, pipeline, plain, ...) after one warm-up call each, so that load
from other processes on the machine falls on both; the CPU seconds each method used (all
threads) are reported beside it, a figure that other load disturbs less. The agreement is
the per-row cosine similarity of the two feature matrices. Peak memory is the peak resident
set size (VmHWM) of a separate process that runs the pipeline over a memmap of
``--rss-images`` images (all of them, or for about ``--rss-seconds`` with the full-size
output already resident), sampled meanwhile with psutil as a cross-check.

Ends with one line:
``speedup: <X>x (ours <a> img/s, naive <b> img/s, cosine <c>, peak RSS <m> MB)``.
Each run also writes a Markdown report of itself (date, command, machine, versions, load,
every printed line, wall time) to ``bench/reports/extract.md`` (``--report PATH``; see ``bench/report.py``).

Usage::

    .venv/bin/python bench/extract.py --n-images 256 --rss-images 10000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py, however this file is loaded
from report import add_report_option, bench_report, size_statement  # noqa: E402


def synthetic_images(path: Path, n: int, size: int, *, seed: int) -> np.ndarray:
    """A ``(n, size, size)`` uint8 memmap of spectrogram-like images, written in chunks."""
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size))
    rng = np.random.default_rng(seed)
    # smooth horizontal bands plus noise: closer to mel images than white noise, cheap to make
    rows = np.linspace(0, 1, size, dtype=np.float32)[:, None]
    for start in range(0, n, 256):
        stop = min(start + 256, n)
        freq = rng.uniform(2, 20, size=(stop - start, 1, 1)).astype(np.float32)
        base = 127 + 90 * np.sin(freq * rows[None] * np.pi)
        noise = rng.normal(0, 25, size=(stop - start, size, size)).astype(np.float32)
        images[start:stop] = np.clip(base + noise, 0, 255).astype(np.uint8)
    images.flush()
    del images
    return np.load(path, mmap_mode="r")


def rss_child(args: argparse.Namespace) -> None:
    """Run the pipeline over the memmap in this (separate) process; print its peak RSS as JSON."""
    from genrestudy.extractors import backbones, features

    images = np.load(args.images, mmap_mode="r")
    model = backbones.build_backbone(args.backbone, weights=args.weights, precision=args.precision,
                                    seed=args.seed)
    started = time.perf_counter()
    if not args.rss_seconds:
        out = features.stream_features(model, images, backbone=args.backbone, batch_size=args.batch_size,
                                       progress=False)
        done = len(out)
    else:
        # bounded run: the full-size output, touched so that it is resident as at the end of a
        # full run, filled chunk by chunk from the same memmap until the time is up
        out = np.zeros((len(images), int(model.output.shape[-1])), np.float32)
        out.fill(0.0)
        done, chunk = 0, 16 * args.batch_size
        while done < len(images) and time.perf_counter() - started < args.rss_seconds:
            out[done:done + chunk] = features.stream_features(model, images[done:done + chunk], backbone=args.backbone,
                                                              batch_size=args.batch_size, progress=False)
            done = min(done + chunk, len(images))
    seconds = time.perf_counter() - started
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    print(json.dumps({"images": done, "seconds": seconds, "vmhwm_mb": int(status["VmHWM"].split()[0]) / 1024,
                      "finite": bool(np.isfinite(out[:done]).all())}))


def measure_rss(args: argparse.Namespace, images_path: Path, weights_path: Path) -> dict:
    """Peak RSS of a child process streaming ``images_path`` through the pipeline."""
    import psutil

    cmd = [sys.executable, __file__, "--rss-child", "--images", str(images_path), "--weights", str(weights_path),
           "--backbone", args.backbone, "--precision", args.precision, "--batch-size", str(args.batch_size),
           "--seed", str(args.seed), "--rss-seconds", str(args.rss_seconds)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    proc, sampled = psutil.Process(child.pid), 0.0
    while child.poll() is None:
        try:
            sampled = max(sampled, proc.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"RSS child failed with exit code {child.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["sampled_mb"] = sampled
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=256, help="images for the throughput comparison")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per method")
    parser.add_argument("--rss-images", type=int, default=10000,
                        help="images of the memmap streamed for the peak-RSS measurement (0: skip)")
    parser.add_argument("--rss-seconds", type=float, default=0,
                        help="stop the peak-RSS run after about this many seconds (0: stream all --rss-images)")
    parser.add_argument("--backbone", default="ResNet50")
    parser.add_argument("--batch-size", type=int, default=32, help="pipeline batch size (naive uses 32)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the synthetic images go (default: a temp dir)")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    add_report_option(parser, "extract")
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args)
        return
    size = size_statement(parser, args, ["n_images", "rounds", "rss_images",
                                         ("rss_seconds", lambda value, default: value > 0 and (default == 0 or value < default))])
    with bench_report("extract", args.report, argv=argv, size=size,
                      libraries=("keras", "tensorflow", "h5py")) as report:
        run(args, report)


def run(args: argparse.Namespace, report) -> None:
    import keras
    import psutil

    from genrestudy import device
    from genrestudy.extractors import backbones, features

    report.note(f"Keras backend: {keras.config.backend()}")
    spec = backbones.backbone_spec(args.backbone)
    size = spec.input_size
    precision = device.resolve_precision(args.precision, training=False)
    # other processes on a small machine change both speeds; the load average says how busy it was
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-extract-") as tmp:
        tmp = Path(tmp)
        images = synthetic_images(tmp / "images.npy", args.n_images, size, seed=args.seed)

        keras.utils.set_random_seed(args.seed)
        app = getattr(keras.applications, spec.name)(include_top=False, weights=None, input_shape=(size, size, 3))
        weights_path = tmp / f"{spec.name.lower()}_seed{args.seed}.weights.h5"
        app.save_weights(weights_path)
        naive = keras.Model(app.input, keras.layers.GlobalAveragePooling2D()(app.output))
        ours = backbones.build_backbone(spec.name, weights=weights_path, precision=precision, seed=args.seed)

        # the plain way holds every image, as float32 RGB, in memory
        x = backbones.preprocess_images(np.repeat(np.asarray(images)[..., None], 3, axis=-1), backbone=spec.name)
        naive.predict(x[:32], batch_size=32, verbose=0)
        features.stream_features(ours, images[: args.batch_size], backbone=spec.name,
                                 batch_size=args.batch_size, progress=False)
        times = {"naive": 0.0, "ours": 0.0}
        cpu = {"naive": 0.0, "ours": 0.0}  # CPU seconds of all threads: less sensitive to other load
        this = psutil.Process()
        for round_ in range(args.rounds):
            started, cpu_started = time.perf_counter(), sum(this.cpu_times()[:2])
            y_naive = naive.predict(x, batch_size=32, verbose=0)
            times["naive"] += time.perf_counter() - started
            cpu["naive"] += sum(this.cpu_times()[:2]) - cpu_started
            started, cpu_started = time.perf_counter(), sum(this.cpu_times()[:2])
            y_ours = features.stream_features(ours, images, backbone=spec.name, batch_size=args.batch_size,
                                              progress=False)
            times["ours"] += time.perf_counter() - started
            cpu["ours"] += sum(this.cpu_times()[:2]) - cpu_started
            print(f"round {round_ + 1}: naive {times['naive'] / (round_ + 1):.2f} s/run, "
                  f"ours {times['ours'] / (round_ + 1):.2f} s/run (cumulative means)", flush=True)
        del x
        cos = np.sum(y_naive * y_ours, axis=1) / (np.linalg.norm(y_naive, axis=1) * np.linalg.norm(y_ours, axis=1))
        rate = {k: args.rounds * args.n_images / v for k, v in times.items()}
        print(f"{spec.name}, weights=random init (seed {args.seed}), {args.n_images} images of {size}x{size}, "
              f"{args.rounds} rounds; naive: float32 predict(batch_size=32) on arrays in RAM; "
              f"ours: {precision}, batch {args.batch_size}, streamed from a memmap")
        print(f"load average before / after the throughput runs: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} CPUs")
        n_done = args.rounds * args.n_images
        print(f"CPU time per image: naive {cpu['naive'] / n_done * 1000:.0f} ms, ours {cpu['ours'] / n_done * 1000:.0f} ms "
              f"(ratio {cpu['naive'] / cpu['ours']:.2f})")
        print(f"per-row cosine similarity: min {cos.min():.6f}, median {np.median(cos):.6f}; "
              f"max |diff| / max |naive| = {np.abs(y_naive - y_ours).max() / np.abs(y_naive).max():.2e}")

        peak = float("nan")
        if args.rss_images:
            big = synthetic_images(tmp / "images_rss.npy", args.rss_images, size, seed=args.seed + 1)
            print(f"streaming {args.rss_images} images ({big.nbytes / 2**20:.0f} MB memmap) in a child process ...",
                  flush=True)
            del big
            rss = measure_rss(args, tmp / "images_rss.npy", weights_path)
            peak = rss["vmhwm_mb"]
            print(f"RSS child: {rss['images']} images in {rss['seconds']:.1f} s "
                  f"({rss['images'] / rss['seconds']:.1f} img/s), peak RSS (VmHWM) {rss['vmhwm_mb']:.0f} MB, "
                  f"psutil-sampled max {rss['sampled_mb']:.0f} MB, finite features: {rss['finite']}")
    print(f"speedup: {rate['ours'] / rate['naive']:.2f}x (ours {rate['ours']:.1f} img/s, naive {rate['naive']:.1f} img/s, "
          f"cosine {cos.min():.6f}, peak RSS {peak:.0f} MB)")


if __name__ == "__main__":
    main()
