"""Damaged model files: one line and exit 2 from ``genrestudy predict``, never a crash of the process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import asdict

import lightgbm as lgb
import numpy as np
import pytest
from conftest import write_audio

from genrestudy.models import boosterfile, modelfile, modelschema
from genrestudy.networks import endtoend
from genrestudy.run import predict
from genrestudy.signals.images import ImageParams

GENRES = ("blues", "jazz", "rock", "pop")
PARAMS = ImageParams(n_segments=3, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256, n_mels=32,
                     image_size=32)


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """A hybrid model file over MobileNetV2's 1280 features, its header and booster text, and a clip."""
    base = tmp_path_factory.mktemp("bad_models")
    rng = np.random.default_rng(0)
    booster = lgb.train({"objective": "multiclass", "num_class": len(GENRES), "min_data_in_leaf": 1,
                         "verbosity": -1}, lgb.Dataset(rng.normal(size=(40, 1280)), label=np.arange(40) % 4),
                        num_boost_round=3)
    path = predict.save_hybrid_model(base / "hybrid.zip", booster, classes=GENRES, image_params=PARAMS,
                                     backbone="MobileNetV2", input_size=32, synthetic=False)
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read(modelfile.HEADER_ENTRY))
        text = archive.read(predict.BOOSTER_ENTRY)
    return {"base": base, "path": path, "header": header, "text": text,
            "clip": write_audio(base / "clip.wav", seconds=1.3)}


def _rewrite(path, header: dict, booster: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(modelfile.HEADER_ENTRY, json.dumps(header))
        archive.writestr(predict.BOOSTER_ENTRY, booster)
    return path


def _damaged(text: bytes) -> dict[str, bytes]:
    """The booster text truncated at several points, with bytes flipped inside a tree, and replaced by garbage."""
    first_tree = text.index(b"\nTree=1\n")
    trees_end = text.index(b"end of trees")
    flipped = bytearray(text)
    for offset in range(first_tree + 40, first_tree + 48):
        flipped[offset] ^= 0x5A
    children = text.index(b"left_child=", first_tree)
    cycle = text[:children] + b"left_child=0" + text[text.index(b" ", children):]  # node 0 its own child
    return {"cut_in_header": text[:2000], "cut_in_trees": text[:first_tree + 300],
            "cut_before_end_of_trees": text[:trees_end - 5], "cut_in_parameters": text[:len(text) - 300],
            "flipped_in_a_tree": bytes(flipped), "cycle_in_a_tree": cycle,
            "garbage": bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8)),
            "printable_garbage": b"tree\n" + b"Tree=0\nnum_leaves\n" * 500}


CASES = ["cut_in_header", "cut_in_trees", "cut_before_end_of_trees", "cut_in_parameters", "flipped_in_a_tree",
         "cycle_in_a_tree", "garbage", "printable_garbage"]


def _predict_subprocess(model, clip) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", "import sys; from genrestudy.run import cli; sys.exit(cli.main())",
                           "predict", str(clip), "--model", str(model)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=model.parent)


@pytest.mark.parametrize("hashed", [False, True], ids=["written_before_hashes", "with_hashes"])
@pytest.mark.parametrize("case", CASES)
def test_a_damaged_booster_gives_one_line_and_exit_2_never_a_crash(hybrid, case, hashed):
    header = dict(hybrid["header"])
    if not hashed:
        header.pop(modelfile.PAYLOAD_FIELD), header.pop(modelfile.PAYLOAD_SIZES)
    damaged = _damaged(hybrid["text"])[case]
    model = _rewrite(hybrid["base"] / f"{case}_{hashed}.zip", header, damaged)
    done = _predict_subprocess(model, hybrid["clip"])
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"genrestudy predict: not a genrestudy model: {model} ("), lines
    assert done.stdout == "" and not list(model.parent.glob("core*"))
    if hashed:
        assert "booster.txt" in lines[0] and "damaged or altered" in lines[0]
    else:
        assert "no readable booster.txt" in lines[0]


def test_every_payload_entry_is_hashed_and_checked_before_parsing(hybrid, tmp_path):
    expected = hybrid["header"][modelfile.PAYLOAD_FIELD]
    assert set(expected) == {predict.BOOSTER_ENTRY} and expected[predict.BOOSTER_ENTRY].startswith("sha256:")
    assert predict.load_model(hybrid["path"]).booster.num_trees() == 12
    # a change LightGBM would take silently (a leaf value): only the hash sees it
    text = hybrid["text"]
    leaf = text.index(b"leaf_value=-") + len(b"leaf_value=-")
    altered = text[:leaf] + (b"2" if text[leaf:leaf + 1] != b"2" else b"3") + text[leaf + 1:]
    boosterfile.check_booster_text(altered)
    path = _rewrite(tmp_path / "altered.zip", hybrid["header"], altered)
    with pytest.raises(modelfile.ModelFileError, match="booster.txt does not match the SHA-256"):
        predict.load_model(path)
    extra = tmp_path / "extra.zip"
    extra.write_bytes(hybrid["path"].read_bytes())
    with zipfile.ZipFile(extra, "a") as archive:
        archive.writestr("payload.bin", b"x")
    with pytest.raises(modelfile.ModelFileError, match="entry payload.bin is not recorded in its header"):
        predict.load_model(extra)


def test_a_keras_model_file_records_and_checks_its_hashes(tmp_path):
    network = endtoend.build_model(len(GENRES), image_size=32, input_size=32, dense_units=8, seed=0)
    header = endtoend.model_metadata(classes=GENRES, image_params=asdict(PARAMS), input_size=32, image_size=32,
                                     weights="random-init-seed0", synthetic=False, training={})
    path = modelfile.save_keras_model(network, tmp_path / "e2e.keras", metadata=header)
    recorded = modelfile.read_header(path)[modelfile.PAYLOAD_FIELD]
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    assert set(recorded) == set(entries) - {modelfile.HEADER_ENTRY} and "model.weights.h5" in recorded
    weights = bytearray(entries["model.weights.h5"])
    weights[len(weights) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(damaged, "w") as archive:
        for name, data in {**entries, "model.weights.h5": bytes(weights)}.items():
            archive.writestr(name, data)
    with pytest.raises(modelfile.ModelFileError, match="model.weights.h5 does not match the SHA-256"):
        predict.load_model(damaged)


def test_a_new_kind_gets_the_hashes_for_free(tmp_path, monkeypatch, hybrid):
    from genrestudy import methods  # noqa: F401  (the study's own kinds, registered before the test's)

    monkeypatch.setattr(modelfile, "_KINDS", dict(modelfile._KINDS))
    monkeypatch.setattr(predict, "LOADERS", dict(predict.LOADERS))
    modelfile.register_kind("toy", required=("neighbours",), fields={"neighbours": modelschema.integer(1, 100)})
    loaded = []
    predict.register_loader("toy", lambda path, header, *, weights: loaded.append(
        modelfile.read_payload(path, header, "points.npy")) or "a toy model")
    header = modelfile.model_header("toy", classes=GENRES, image_params=asdict(PARAMS), synthetic=False,
                                    neighbours=5)
    path = tmp_path / "toy.zip"
    modelfile.write_model_archive(path, header, {"points.npy": b"0123456789"})
    assert predict.load_model(path) == "a toy model" and loaded == [b"0123456789"]
    altered = {"points.npy": b"0123456780", modelfile.HEADER_ENTRY: json.dumps(modelfile.read_header(path))}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in altered.items():
            archive.writestr(name, data)
    with pytest.raises(modelfile.ModelFileError, match="points.npy does not match the SHA-256"):
        predict.load_model(path)
    assert not loaded[1:]


@pytest.mark.parametrize("field, value, expected", [
    ("input_size", "abc", "header field 'input_size' must be an integer from 8 to 4096, got \"abc\""),
    ("seed", 1.5, "header field 'seed' must be an integer from 0 to 4294967295, got 1.5"),
    ("synthetic", "no", "header field 'synthetic' must be true or false"),
    ("backbone", ["ResNet50"], "header field 'backbone' must be one of ResNet50"),
    ("kind", ["hybrid"], "kind ['hybrid'], expected"),
    ("classes", [["a"], ["b"]], "header field 'classes' must be two or more distinct genre names"),
    ("image_params", {**asdict(PARAMS), "image_size": "32"},
     "header field 'image_params' holds bad image parameters: image_size must be an integer"),
    ("image_params", [1, 2], "header field 'image_params' must be an object of image parameters"),
    (modelfile.PAYLOAD_FIELD, {"booster.txt": "md5:1"}, "header field 'payload_sha256' must be an object"),
])
def test_a_header_field_of_the_wrong_type_is_named_in_one_line(hybrid, tmp_path, field, value, expected):
    path = _rewrite(tmp_path / "header.zip", {**hybrid["header"], field: value}, hybrid["text"])
    with pytest.raises(modelfile.ModelFileError) as info:
        predict.load_model(path)
    message = str(info.value)
    assert message.startswith(f"not a genrestudy model: {path} (") and expected in message, message
    assert "\n" not in message and "invalid literal" not in message


def test_the_booster_check_passes_every_kind_of_tree_lightgbm_writes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6))
    x[:, 0] = rng.integers(0, 20, 300)
    x[rng.random(300) < 0.1, 2] = np.nan
    labels = (x[:, 0] % 3).astype(int)
    kinds = {"categorical": ({"objective": "multiclass", "num_class": 3, "min_data_per_group": 5},
                             {"categorical_feature": [0]}, labels),
             "one_leaf": ({"objective": "multiclass", "num_class": 3, "min_data_in_leaf": 400}, {}, labels),
             "binary": ({"objective": "binary"}, {}, labels == 1),
             "linear": ({"objective": "regression", "linear_tree": True}, {}, x[:, 1] * 2 + x[:, 3])}
    for name, (params, dataset, y) in kinds.items():
        data = np.nan_to_num(x) if name == "linear" else x
        booster = lgb.train({**params, "verbosity": -1}, lgb.Dataset(data, label=y, **dataset), num_boost_round=5)
        text = booster.model_to_string()
        assert boosterfile.check_booster_text(text.encode()) == text, name
