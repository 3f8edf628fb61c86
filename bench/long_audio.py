"""Long-audio benchmark: peak memory of loading and predicting a long file, the old way vs block decoding.

The file is written here, in blocks, to a temporary folder: ``--minutes`` (default 120) of
44.1 kHz stereo 16-bit WAV (a tone plus noise; 2 h is about 1.3 GB on disk). Each measurement
runs in a fresh Python process, so one peak cannot hide another; its peak resident memory is the
process's high-water mark (``VmHWM``), in MB (1e6 bytes), and includes Python, NumPy and, for the
network models, Keras and TensorFlow.

* ``old``: the file decoded whole (``sf.read``), checked, mixed and resampled whole, then cut into
  clips, as :func:`genrestudy.run.predict.predict_file` did before block decoding (the code is copied
  here, the naive reference);
* ``new``: :func:`genrestudy.run.predict.predict_file` (:func:`genrestudy.data.audio.open_audio`'s blocks).

``load`` decodes to the study's mono 22050 Hz signal only (old: whole; new: :func:`probe_audio`
decodes every block and keeps none); the model kinds predict the file with a tiny random-init
model of that kind (32 px images, so the networks' arithmetic does not dominate the run time;
the memory that grows with the file's length is the audio's). Both ways' probabilities are
compared. The last line is ``peak memory: new <a> MB vs old <b> MB (largest of every kind) ...``.

Usage::

    python bench/long_audio.py                      # 2 h, every kind (a quarter of an hour here)
    python bench/long_audio.py --minutes 10 --kinds load end-to-end   # smoke-sized
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

KINDS = ("load", "end-to-end", "hybrid", "knn", "small-network")
CLASSES = ["blues", "jazz", "rock"]
IMAGE_PARAMS = {"n_segments": 10, "segment_seconds": 3.0, "n_fft": 2048, "hop_length": 512, "n_mels": 128,
                "image_size": 32}


def write_long_wav(path: Path, minutes: float, rate: int = 44100, channels: int = 2) -> Path:
    """``minutes`` of a 440 Hz tone plus noise, written one minute at a time."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(60 * rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as out:
        whole, rest = divmod(minutes * 60 * rate, 60 * rate)
        for n in range(int(whole) + (1 if rest else 0)):
            frames = 60 * rate if n < whole else int(rest)
            block = tone[:frames, None] + 0.05 * rng.standard_normal((frames, channels))
            out.write(block.astype(np.float32))
    return path


def make_models(folder: Path, kinds) -> dict:
    """A tiny random-init model file of each kind asked for (three genres, 32 px images)."""
    from dataclasses import asdict

    from genrestudy.models import modelfile
    from genrestudy.networks import endtoend
    from genrestudy.run import predict

    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    if "end-to-end" in kinds:
        network = endtoend.build_model(len(CLASSES), image_size=32, input_size=32, dense_units=8, seed=0)
        header = endtoend.model_metadata(classes=CLASSES, image_params=IMAGE_PARAMS, input_size=32, image_size=32,
                                         weights="random-init-seed0", synthetic=False, training={})
        made["end-to-end"] = modelfile.save_keras_model(network, folder / "e2e.keras", metadata=header)
    if "hybrid" in kinds:
        import lightgbm as lgb

        from genrestudy.extractors import backbones

        n_features = backbones.backbone_spec("MobileNetV2").n_features
        rng = np.random.default_rng(0)
        booster = lgb.train({"objective": "multiclass", "num_class": len(CLASSES), "verbosity": -1, "seed": 0,
                             "min_data_in_leaf": 1}, lgb.Dataset(rng.standard_normal((60, n_features)),
                                                                label=np.arange(60) % 3), num_boost_round=3)
        made["hybrid"] = predict.save_hybrid_model(folder / "hybrid.zip", booster, classes=CLASSES,
                                                   image_params=IMAGE_PARAMS, backbone="MobileNetV2",
                                                   input_size=32, precision="float32")
    if "knn" in kinds:
        from genrestudy.signals import spectral
        from genrestudy.models import knn, knn_model

        params = spectral.SpectralParams()
        rng = np.random.default_rng(0)
        segments = (0.1 * rng.standard_normal((12, 3 * 22050))).astype(np.float32)
        X = spectral.spectral_shape(segments, sample_rate=22050, **params.extractor_kwargs())
        y = np.arange(12) % 3
        made["knn"] = knn_model.save_knn_model(folder / "knn.zip", knn.knn_pipeline(3).fit(X, y), X, y,
                                               classes=CLASSES, image_params=IMAGE_PARAMS, spectral_params=params,
                                               synthetic=False)
    if "small-network" in kinds:
        from genrestudy.signals import sequences
        from genrestudy.networks import smallnets

        network = smallnets.build_network("net2", None, n_classes=len(CLASSES), image_size=32)
        header = smallnets.model_header("net2", classes=CLASSES, image_params=IMAGE_PARAMS, synthetic=False,
                                        sequence_params=sequences.SequenceParams(), net_size=32, training={})
        made["small-network"] = modelfile.save_keras_model(network, folder / "net2.keras", metadata=header)
    return {kind: str(path) for kind, path in made.items()}


# ---------------------------------------------------------------- one measurement (a child process)

def old_signal(path: str, sample_rate: int) -> np.ndarray:
    """The signal as load_audio made it before block decoding: everything at once (the naive reference)."""
    import soundfile as sf
    import soxr

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, np.float32(0))
    assert np.count_nonzero(np.abs(data) > 1e4) == 0
    signal = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        signal = soxr.resample(signal, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(signal, dtype=np.float32)


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def child(way: str, kind: str, audio: str, model_path: str | None) -> dict:
    from genrestudy import methods
    from genrestudy.run import predict
    from genrestudy.data.audio import probe_audio

    model = predict.load_model(model_path) if model_path else None
    before = vm_hwm_mb()
    started = time.perf_counter()
    out = {"way": way, "kind": kind}
    if kind == "load":
        if way == "old":
            out["samples"] = len(old_signal(audio, 22050))
        else:
            out["samples"] = probe_audio(audio).samples
    elif way == "old":
        signal = old_signal(audio, model.image_params.sample_rate)
        proba = np.concatenate([model.clip_probabilities(c) for c in predict.clip_chunks(signal, model.image_params)])
        out.update(segments=len(proba), probabilities=proba.mean(axis=0).tolist())
    else:
        result = predict.predict_file(audio, model)
        out.update(segments=result.segments, probabilities=list(result.probabilities.values()))
    out.update(seconds=time.perf_counter() - started, before_mb=before, peak_mb=vm_hwm_mb())
    return out


def measure(way: str, kind: str, audio: Path, model: str | None) -> dict:
    command = [sys.executable, __file__, "--child", way, kind, str(audio), model or ""]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TQDM_DISABLE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{way} {kind} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-long-audio-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        audio = write_long_wav(tmp / "long.wav", args.minutes)
        print(f"{args.minutes:g} min of 44.1 kHz stereo 16-bit WAV: {audio.stat().st_size / 1e6:.0f} MB on disk, "
              f"written in {time.perf_counter() - started:.0f} s")
        models = make_models(tmp / "models", args.kinds)
        worst = {"old": 0.0, "new": 0.0}
        for kind in args.kinds:
            rows = {way: measure(way, kind, audio, models.get(kind)) for way in ("old", "new")}
            old, new = rows["old"], rows["new"]
            for way, row in rows.items():
                worst[way] = max(worst[way], row["peak_mb"])
            agree = ""
            if "probabilities" in old:
                diff = float(np.max(np.abs(np.subtract(old["probabilities"], new["probabilities"]))))
                agree = f"; {new['segments']} segments, largest probability difference {diff:.1e}"
            print(f"{kind:>13}: peak RSS old {old['peak_mb']:7.0f} MB, new {new['peak_mb']:6.0f} MB "
                  f"({old['peak_mb'] / new['peak_mb']:.1f}x less; {new['before_mb']:.0f} MB before the audio), "
                  f"time old {old['seconds']:.0f} s, new {new['seconds']:.0f} s{agree}")
        print(f"peak memory: new {worst['new']:.0f} MB vs old {worst['old']:.0f} MB (largest of every kind; "
              f"target <= 1500 MB for 2 h), {args.minutes:g} min file")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        way, kind, audio, model = argv[1:5]
        print(json.dumps(child(way, kind, audio, model or None)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0, help="length of the file (default 120)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="what to measure")
    add_report_option(parser, "long_audio")
    args = parser.parse_args(argv)
    size = size_statement(parser, args, ["minutes", ("kinds", lambda value, default: not set(value) >= set(default))])
    with bench_report("long_audio", args.report, argv=argv, size=size,
                      libraries=("soundfile", "soxr", "keras", "tensorflow", "lightgbm", "scikit-learn")):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
