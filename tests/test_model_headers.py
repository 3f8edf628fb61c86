"""Model-file headers: bounded reading, one schema for every field, escaped genre names, messages naming the part."""
from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio

from genrestudy.signals import spectral
from genrestudy.models import knn, knn_model, modelfile
from genrestudy.networks import endtoend
from genrestudy.run import cli, predict
from genrestudy.signals.images import ImageParams
from genrestudy.data.kaggle_tables import read_kaggle_features

CLASSES = ["calm", "lively", "sombre"]


def _knn_file(path, classes=CLASSES):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, len(spectral.FEATURE_NAMES)))
    y = np.arange(24) % len(classes)
    X[:, 0] += y * 5
    return knn_model.save_knn_model(path, knn.knn_pipeline(4).fit(X, y), X, y, classes=classes,
                                    image_params={"n_segments": 2, "segment_seconds": 1.0},
                                    spectral_params=spectral.SpectralParams(n_fft=1024, hop_length=512),
                                    synthetic=False, selection="test")


@pytest.fixture
def knn_file(tmp_path):
    return {"path": _knn_file(tmp_path / "knn.zip"), "song": write_audio(tmp_path / "song.wav", seconds=2.2)}


def _entries(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _with_header(source, target, **changes):
    """``source`` with header fields changed (a ``None`` value removes the field); the payload as it was."""
    entries = _entries(source)
    header = json.loads(entries[modelfile.HEADER_ENTRY])
    header.update(changes)
    header = {k: v for k, v in header.items() if v is not None}
    return _write(target, {**entries, modelfile.HEADER_ENTRY: json.dumps(header).encode()})


def _predict(capsys, model, song) -> tuple[int, list[str], str]:
    status = cli.main(["predict", "--model", str(model), str(song)])
    out = capsys.readouterr()
    return status, out.err.strip().splitlines(), out.out


# ---------------------------------------------------------------- 3: bounded reading

def test_a_header_that_inflates_to_gigabytes_is_refused_before_reading_it(knn_file, tmp_path, capsys):
    # defect: a 1.6 MB file whose genrestudy.json inflated to 1.5-2 GB took 3.2 GB and 97 s
    entries = _entries(knn_file["path"])
    header = json.loads(entries[modelfile.HEADER_ENTRY])
    padded = json.dumps({**header, "note": " " * (64 << 20)}).encode()  # valid JSON, 64 MB, ~64 kB zipped
    bomb = _write(tmp_path / "bomb.zip", {**entries, modelfile.HEADER_ENTRY: padded})
    assert bomb.stat().st_size < 2 << 20
    started = time.perf_counter()
    status, err, _ = _predict(capsys, bomb, knn_file["song"])
    assert time.perf_counter() - started < 10
    assert status == 2 and len(err) == 1 and "genrestudy.json would inflate to 6711" in err[0], err


def test_a_payload_bomb_is_refused_by_its_size_before_it_is_hashed(knn_file, tmp_path, monkeypatch):
    # defect: a 3 GB payload bomb was refused only after hashing it for 29 s
    entries = _entries(knn_file["path"])
    bomb = _write(tmp_path / "bomb.zip", {**entries, knn_model.FEATURES_ENTRY: bytes(64 << 20)})
    hashed = []
    monkeypatch.setattr(modelfile, "_sha256", lambda *a, **k: hashed.append(a[1]) or "sha256:" + "0" * 64)
    with pytest.raises(modelfile.ModelFileError, match=r"train_features.npy holds 67108864 bytes, its header records"):
        predict.load_model(bomb)
    assert hashed == []


def test_an_entry_of_a_file_without_recorded_sizes_is_capped(knn_file, tmp_path, monkeypatch):
    # written before sizes and hashes were recorded: nothing to compare, the cap still holds
    old = _with_header(knn_file["path"], tmp_path / "old.zip", **{modelfile.PAYLOAD_FIELD: None,
                                                                  modelfile.PAYLOAD_SIZES: None})
    assert isinstance(predict.load_model(old), knn_model.KnnModel)
    monkeypatch.setattr(modelfile, "MAX_ENTRY_BYTES", 1000)
    with pytest.raises(modelfile.ModelFileError, match="would inflate to .* more than the 1000 it may hold"):
        predict.load_model(old)


# ---------------------------------------------------------------- 4: one schema for every field

@pytest.mark.parametrize("field, value, expected", [
    ("spectral_params", {"n_fft": 1024, "hop_length": -5, "roll_percent": 0.85, "level": "segment"},
     "'spectral_params' holds bad spectral parameters: hop_length must be an integer from 1"),
    ("spectral_params", {"n_fft": 1024, "hop_length": 512.0}, "hop_length must be an integer"),
    ("spectral_params", {"n_fft": 1024, "hops": 512}, "holds unknown spectral parameters \"hops\""),
    ("spectral_params", [1024, 512], "'spectral_params' must be an object of spectral parameters"),
    ("spectral_params", "n_fft=1024", "'spectral_params' must be an object of spectral parameters"),
    ("spectral_params", {"level": "track"}, "level must be one of segment, clip"),
    ("spectral_params", {"roll_percent": 1.5}, "roll_percent must be a number above 0"),
    ("k", float("inf"), "header field 'k' must be an integer from 1"),
    ("k", "6", "header field 'k' must be an integer"),
    ("k", 6.7, "header field 'k' must be an integer"),
    ("k", True, "header field 'k' must be an integer"),
    ("k", 10**30, "header field 'k' must be an integer from 1 to"),
    ("k", 25, "header field 'k' is 25, more than its 24 training rows"),
    ("n_train", -1, "header field 'n_train' must be an integer from 1"),
    ("scaled", "yes", "header field 'scaled' must be true or false"),
    ("feature_names", [], "header field 'feature_names' must be 1 or more distinct feature names"),
    ("metric", "cosine", "header field 'metric' must be one of euclidean"),
    ("classes", ["a", ""], "header field 'classes' must be two or more distinct genre names"),
    ("image_params", {"n_segments": 10**9}, "n_segments must be an integer from 1 to 1000"),
    ("image_params", {"n_fft": float("nan")}, "n_fft must be an integer"),
    ("image_params", {"fmin": 9000.0, "fmax": 4000.0}, "fmin 9000.0 is not below fmax 4000"),
    ("image_params", {"segment_seconds": -3}, "segment_seconds must be a number above 0"),
    ("format_version", 0.5, "format version 0.5"),
])
def test_every_header_field_is_checked_in_one_line_with_exit_2(knn_file, tmp_path, capsys, field, value, expected):
    # defect: hop_length -5, k Infinity / "6" / 6.7 and a malformed spectral_params ended in a traceback, exit 1
    model = _with_header(knn_file["path"], tmp_path / "changed.zip", **{field: value})
    status, err, out = _predict(capsys, model, knn_file["song"])
    assert status == 2 and len(err) == 1 and out == "", err
    assert err[0].startswith(f"genrestudy predict: not a genrestudy model: {model} (") and expected in err[0], err


def test_every_kind_registers_a_schema_for_its_fields():
    from genrestudy import methods  # noqa: F401  (every kind the study writes)

    with pytest.raises(ValueError, match="no schema for its field"):
        modelfile.register_kind("toy-without-schema", required=("neighbours",))
    for kind in modelfile.kinds():
        required, own = modelfile._KINDS[kind]
        assert all(name in own or name in modelfile.COMMON_SCHEMA for name in required), kind


def test_an_end_to_end_file_whose_header_image_size_differs_from_its_network_is_refused(tmp_path, capsys):
    params = ImageParams(n_segments=2, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256, n_mels=32,
                         image_size=32)
    network = endtoend.build_model(3, image_size=32, input_size=32, dense_units=8, seed=0)
    header = endtoend.model_metadata(classes=CLASSES, image_params=asdict(params), input_size=32, image_size=32,
                                     weights="random-init-seed0", synthetic=False, training={})
    path = modelfile.save_keras_model(network, tmp_path / "e2e.keras", metadata=header)
    changed = _with_header(path, tmp_path / "e2e_64.keras", image_params={**asdict(params), "image_size": 64})
    status, err, _ = _predict(capsys, changed, write_audio(tmp_path / "song.wav", seconds=2.2))
    assert status == 2 and len(err) == 1, err
    assert "its network takes inputs of shape (32, 32, 3), its header implies (64, 64, 3)" in err[0]


# ---------------------------------------------------------------- 5: genre names escaped

def test_genre_names_from_a_header_reach_the_terminal_escaped(tmp_path, capsys):
    # defect: an ESC sequence from a model's header reached the terminal; a newline split the output
    classes = ["\x1b[2J\x1b[31mred", "two\nlines", "calm"]
    model = _knn_file(tmp_path / "knn.zip", classes=classes)
    status = cli.main(["predict", "--model", str(model), "--top", "3", str(write_audio(tmp_path / "s.wav", seconds=2.2))])
    out = capsys.readouterr().out
    assert status == 0 and "\x1b" not in out and out.count("\n") == 1, out
    assert "'\\x1b[2J\\x1b[31mred'" in out and "'two\\nlines'" in out and "calm " in out


# ---------------------------------------------------------------- 12: messages that name the part at fault

@pytest.mark.parametrize("entry, data, expected", [
    (knn_model.FEATURES_ENTRY, "features_of_7_columns", "no readable train_features.npy: (24, 7) float64 values"),
    (knn_model.FEATURES_ENTRY, "features_nan", "no readable train_features.npy: 1 values are NaN or infinite"),
    (knn_model.LABELS_ENTRY, "labels_out_of_range", "no readable train_labels.npy: labels 0..7 outside the 3"),
    (knn_model.LABELS_ENTRY, "labels_garbage", "no readable train_labels.npy: not a readable .npy array"),
    (knn_model.SCALER_ENTRY, "scaler_zero", "no readable scaler.json: scale must be"),
])
def test_a_damaged_knn_file_names_the_part_at_fault(knn_file, tmp_path, entry, data, expected):
    # defect: every fault found while rebuilding the pipeline was blamed on scaler.json
    entries = _entries(knn_file["path"])
    header = json.loads(entries.pop(modelfile.HEADER_ENTRY))
    X = np.load(__import__("io").BytesIO(entries[knn_model.FEATURES_ENTRY]))
    y = np.load(__import__("io").BytesIO(entries[knn_model.LABELS_ENTRY]))
    scaler = json.loads(entries[knn_model.SCALER_ENTRY])
    replaced = {"features_of_7_columns": knn_model._npy_bytes(X[:, :7]),
                "features_nan": knn_model._npy_bytes(np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X)),
                "labels_out_of_range": knn_model._npy_bytes(np.where(np.arange(len(y)) == 3, 7, y)),
                "labels_garbage": b"\x93NUMPY garbage",
                "scaler_zero": json.dumps({**scaler, "scale": [0.0] * len(scaler["scale"])}).encode()}[data]
    header = {k: v for k, v in header.items() if k not in (modelfile.PAYLOAD_FIELD, modelfile.PAYLOAD_SIZES)}
    path = tmp_path / "damaged.zip"
    modelfile.write_model_archive(path, header, {**entries, entry: replaced})  # hashes of the damaged entries
    with pytest.raises(modelfile.ModelFileError) as info:
        predict.load_model(path)
    assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)
    if entry != knn_model.SCALER_ENTRY:
        assert "scaler.json" not in str(info.value)


def test_a_kaggle_value_beyond_float32_is_not_called_infinite(tmp_path):
    frame = pd.DataFrame({"filename": ["blues.00000.0.wav", "rock.00000.0.wav"], "length": 66149,
                          "mfcc1_mean": [1.0, 1e39], "mfcc2_mean": [0.5, 0.25], "label": ["blues", "rock"]})
    frame.to_csv(tmp_path / "features_3_sec.csv", index=False)
    with pytest.raises(ValueError, match=r"too large for float32 \(1e\+39\) \(row 2, column 'mfcc1_mean'\)"):
        read_kaggle_features(tmp_path / "features_3_sec.csv")
    frame.loc[1, "mfcc1_mean"] = float("inf")
    frame.to_csv(tmp_path / "features_3_sec.csv", index=False)
    with pytest.raises(ValueError, match="the first infinite"):
        read_kaggle_features(tmp_path / "features_3_sec.csv")
