"""Benchmark: ``genrestudy predict`` seconds per file for every model kind, main's code against this checkout's.

One model file of each kind ``genrestudy predict`` reads is written once (random-init or
random-data weights: what a model has learned does not change its speed): the end-to-end
ResNet-50 and the hybrid (ResNet-50 features → LightGBM, its features recorded as bfloat16,
so that the "auto"/stored-precision rule decides how it runs) at the study's default image
parameters (224 px, 10 × 3 s segments), the spectral KNN and the Net2 small CNN. The same
``--n-files`` synthetic 30 s clips are then predicted by each model in a child process per
code base ("before": ``--before-lib``, main's ``lib`` by default; "after": this checkout's),
children taken in turns over ``--rounds`` rounds, each with an empty cache folder so that
the precision rule starts from scratch as on a new machine. Per model and code base: load
seconds, the median seconds per file after one warm-up file, the precision each network ran in
(a hybrid's: its stored precision as that code base runs it), and when the first file's result was available to print (main's
``predict_files`` returns every result at the end; ``iter_predictions`` yields each).

Ends with one line per model kind:
``<kind>: before <a> s/file, after <b> s/file (<ratio>x); precision before <p>, after <q>``.
Each run writes a Markdown report to ``bench/reports/predict.md`` (``--report PATH``).

Usage::

    nice .venv/bin/python bench/predict.py --n-files 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py, however this file is loaded
from report import add_report_option, bench_report, size_statement  # noqa: E402

HERE_LIB = Path(__file__).resolve().parent.parent / "lib"
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def write_files(folder: Path, n: int) -> list[Path]:
    """``n`` synthetic 30 s clips at 22050 Hz (tones, a beat, noise)."""
    import soundfile as sf

    rate, out = 22050, []
    t = np.arange(30 * rate) / rate
    for i in range(n):
        rng = np.random.default_rng(i)
        signal = (0.3 * np.sin(2 * np.pi * (110 + 55 * i) * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
                  + 0.05 * rng.standard_normal(len(t)))
        out.append(folder / f"clip{i}.wav")
        sf.write(out[-1], signal.astype(np.float32), rate)
    return out


def write_models(folder: Path) -> dict[str, Path]:
    """One model file of each kind, at the study's default image parameters."""
    import lightgbm as lgb

    from genrestudy.signals import spectral
    from genrestudy.models import knn, knn_model, modelfile
    from genrestudy.networks import endtoend, smallnets
    from genrestudy.run import predict
    from genrestudy.signals.images import ImageParams
    from genrestudy.signals.sequences import SequenceParams

    params, rng = ImageParams(), np.random.default_rng(0)
    network = endtoend.build_model(len(GENRES), image_size=params.image_size, seed=0)
    header = endtoend.model_metadata(classes=GENRES, image_params=asdict(params), input_size=224,
                                     image_size=params.image_size, weights="random-init-seed0", synthetic=True,
                                     training={})
    models = {"end-to-end": modelfile.save_keras_model(network, folder / "e2e.keras", metadata=header)}
    booster = lgb.train({"objective": "multiclass", "num_class": len(GENRES), "verbosity": -1, "min_data_in_leaf": 1},
                        lgb.Dataset(rng.normal(size=(100, 2048)), label=np.arange(100) % len(GENRES)),
                        num_boost_round=20)
    models["hybrid"] = predict.save_hybrid_model(folder / "hybrid.zip", booster, classes=GENRES, image_params=params,
                                                 backbone="ResNet50", precision="bfloat16", synthetic=True)
    sp = spectral.SpectralParams()
    X = rng.normal(size=(200, len(spectral.FEATURE_NAMES))) * 100 + 1000
    y = np.arange(200) % len(GENRES)
    models["knn"] = knn_model.save_knn_model(folder / "knn.zip", knn.knn_pipeline(5).fit(X, y), X, y, classes=GENRES,
                                             image_params=asdict(params), spectral_params=sp, synthetic=True,
                                             selection="bench")
    net = smallnets.build_network("net2", None, n_classes=len(GENRES))
    header = smallnets.model_header("net2", classes=GENRES, image_params=asdict(params), synthetic=True,
                                    sequence_params=SequenceParams(), net_size=180, training={})
    models["small-network"] = modelfile.save_keras_model(net, folder / "net2.keras", metadata=header)
    return models


def child(args: argparse.Namespace) -> None:
    """In a fresh process on ``PYTHONPATH``'s genrestudy: time every model over the files; print JSON."""
    import genrestudy.methods  # noqa: F401  (the methods register their model kinds)
    from genrestudy import device
    from genrestudy.run import predict

    models, files = json.loads(args.models), json.loads(args.files)
    started = time.perf_counter()
    auto = device.resolve_precision("auto", training=False)
    out = {"lib": str(Path(predict.__file__).parent.parent), "auto": auto,
           "auto_seconds": time.perf_counter() - started, "models": {}}
    try:  # this checkout: the probe's medians behind the choice (read from the cache it just wrote)
        from genrestudy import precision_choice

        out["probe_seconds"] = precision_choice.fastest(device.POLICIES)["seconds"]
    except ImportError:  # main: the choice came from the CPU flags
        out["probe_seconds"] = None
    for kind, path in models.items():
        started = time.perf_counter()
        model = predict.load_model(path)
        loaded = time.perf_counter() - started
        precision = ran_in(model, device)
        predict.predict_file(files[0], model)  # warm-up: tracing, first-touch allocation
        per_file = []
        for path_ in files:
            started = time.perf_counter()
            predict.predict_file(path_, model)
            per_file.append(time.perf_counter() - started)
        started = time.perf_counter()
        stream = getattr(predict, "iter_predictions", None)
        if stream is not None:
            next(iter(stream(files, model)))
        else:
            predict.predict_files(files, model)  # main: the first result comes with the last
        first = time.perf_counter() - started
        out["models"][kind] = {"load_s": loaded, "per_file_s": per_file, "median_s": statistics.median(per_file),
                               "policy": precision, "first_result_s": first}
    print(json.dumps(out))


def ran_in(model, device) -> str:
    """The arithmetic a loaded model's network computes in: a hybrid's is its stored precision as this code
    base runs it (``runnable_precision``); a Keras model's, the dtype policies of its layers (nested too)."""
    if model.kind == "hybrid":
        return device.runnable_precision(model.header["precision"])
    network = getattr(model, "network", None)
    if network is None:
        return "n/a (no network)"
    policies, todo = set(), list(network.layers)
    while todo:
        layer = todo.pop()
        todo.extend(getattr(layer, "layers", []))
        if layer.weights:
            policies.add(layer.dtype_policy.name)
    return "/".join(sorted(policies))


def run_child(lib: Path, models: dict, files: list, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(lib), "GENRESTUDY_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, __file__, "--child", "--models", json.dumps({k: str(v) for k, v in
                                                                                        models.items()}),
                           "--files", json.dumps([str(f) for f in files]), "--report", ""],
                          capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"child on {lib} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-files", type=int, default=3, help="30 s clips each model predicts (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=1, help="before/after children per code base, in turns")
    parser.add_argument("--before-lib", type=Path,
                        help="lib/ of the 'before' genrestudy (e.g. of `git worktree add ../before COMMIT`)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    add_report_option(parser, "predict")
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    if args.before_lib is None:
        parser.error("--before-lib LIB is needed: the lib/ folder of the code to compare against")
    size = size_statement(parser, args, ["n_files", "rounds"])
    with bench_report("predict", args.report, argv=argv, size=size,
                      libraries=("keras", "tensorflow", "lightgbm", "scikit-learn")) as report:
        run(args, report)


def run(args: argparse.Namespace, report) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp = Path(tmp)
        files = write_files(tmp, args.n_files)
        models = write_models(tmp)
        print(f"{len(files)} synthetic 30 s clips at 22050 Hz; models: " + ", ".join(models), flush=True)
        results = {"before": [], "after": []}
        for round_ in range(args.rounds):
            for side, lib in (("before", args.before_lib), ("after", HERE_LIB)):
                found = run_child(lib, models, files, tmp / f"cache-{side}-{round_}")
                results[side].append(found)
                probe = found.get("probe_seconds")
                measured = ("; probe medians " + ", ".join(f"{p} {s * 1000:.0f} ms" for p, s in probe.items())
                            if probe else "; from the CPU flags")
                print(f"round {round_ + 1} {side} ({found['lib']}): 'auto' inference precision here = "
                      f"{found['auto']} (resolved in {found['auto_seconds']:.1f} s from an empty cache, Keras import "
                      f"included{measured})", flush=True)
                for kind, r in found["models"].items():
                    print(f"  {kind}: load {r['load_s']:.1f} s, per file " +
                          ", ".join(f"{s:.2f}" for s in r["per_file_s"]) +
                          f" s, first result after {r['first_result_s']:.2f} s, policy {r['policy']}", flush=True)
    print(f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for kind in models:
        before = statistics.median(s for r in results["before"] for s in r["models"][kind]["per_file_s"])
        after = statistics.median(s for r in results["after"] for s in r["models"][kind]["per_file_s"])
        first_b = statistics.median(r["models"][kind]["first_result_s"] for r in results["before"])
        first_a = statistics.median(r["models"][kind]["first_result_s"] for r in results["after"])
        print(f"{kind}: before {before:.2f} s/file, after {after:.2f} s/file ({before / after:.2f}x); "
              f"precision before {results['before'][0]['models'][kind]['policy']}, "
              f"after {results['after'][0]['models'][kind]['policy']}; first result of {len(files)} files after "
              f"{first_b:.2f} s before, {first_a:.2f} s after")


if __name__ == "__main__":
    main()
