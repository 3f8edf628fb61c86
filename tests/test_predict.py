"""Genre prediction for audio files: preprocessing as in training, lengths, formats, model files, hybrid,
and the module layering that keeps prediction apart from training."""
from __future__ import annotations

import ast
import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from conftest import make_dataset, write_audio

import genrestudy
from genrestudy.extractors import backbones, features
from genrestudy.models import modelfile, modelschema
from genrestudy.networks import endtoend, training
from genrestudy.run import predict, study
from genrestudy.data.audio import AudioError, load_audio
from genrestudy.signals.images import ImageParams, build_image_set, mel_images
from genrestudy.signals.segments import ClipTooShortError

GENRES = ("blues", "jazz", "rock")
PARAMS = ImageParams(n_segments=3, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256, n_mels=32,
                     image_size=32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three genres × two 3.5 s clips, imaged with PARAMS through the study's own pipeline."""
    base = tmp_path_factory.mktemp("predict")
    root = make_dataset(base / "audio", genres=GENRES, clips=2, seconds=3.5)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("data", "cache", "figures", "results"):
            mp.setenv(f"GENRESTUDY_{name.upper()}", str(base / name))
        found = study.locate_data(str(root))
        image_set = build_image_set(study.scan(found, n_jobs=1), PARAMS, synthetic=found.synthetic, n_jobs=1)
    return {"base": base, "root": root, "image_set": image_set}


@pytest.fixture(scope="module")
def e2e(dataset):
    """An (untrained) end-to-end model file with PARAMS and GENRES, loaded."""
    network = endtoend.build_model(len(GENRES), image_size=32, input_size=32, dense_units=8, seed=0)
    header = endtoend.model_metadata(classes=GENRES, image_params=asdict(PARAMS), input_size=32, image_size=32,
                                     weights="random-init-seed0", synthetic=False, training={})
    path = modelfile.save_keras_model(network, dataset["base"] / "e2e.keras", metadata=header)
    return predict.load_model(path)


@pytest.fixture(scope="module")
def hybrid(dataset):
    """MobileNetV2 features (small and quick at 32 px) → LightGBM, saved and loaded as a hybrid model."""
    image_set = dataset["image_set"]
    feature_set = features.extract_features(image_set, backbone="MobileNetV2", weights=None, input_size=32,
                                            precision="float32", cache_root=dataset["base"] / "cache",
                                            progress=False)
    booster = lgb.train({"objective": "multiclass", "num_class": len(GENRES), "min_data_in_leaf": 1,
                        "min_data_in_bin": 1, "verbosity": -1, "seed": 0},
                       lgb.Dataset(np.asarray(feature_set.features), label=feature_set.labels), num_boost_round=5)
    path = predict.save_hybrid_model(dataset["base"] / "hybrid.zip", booster,
                                     **predict.hybrid_settings(feature_set, image_set))
    return {"model": predict.load_model(path), "path": path, "booster": booster, "feature_set": feature_set}


def track_rows(image_set, path):
    return np.flatnonzero(image_set.segments["path"].to_numpy() == str(path))


# ---------------------------------------------------------------- exactly the training preprocessing

def test_new_audio_is_imaged_and_fed_exactly_as_training_images(dataset, e2e):
    image_set = dataset["image_set"]
    path = image_set.segments["path"].iloc[0]
    rows = track_rows(image_set, path)
    signal, _ = load_audio(path, sample_rate=PARAMS.sample_rate)
    images = np.concatenate(list((mel_images(clip, PARAMS) for clip in predict.clip_chunks(signal, PARAMS))))
    np.testing.assert_array_equal(images, image_set.images[rows])

    x, _ = training.ImageBatches(image_set.images, rows, image_set.labels, batch_size=len(rows))[0]
    as_trained = training.predict_padded(e2e.network, x, PARAMS.n_segments)
    np.testing.assert_allclose(e2e.segment_probabilities(images), as_trained, rtol=1e-5, atol=1e-7)
    result = predict.predict_file(path, e2e)
    np.testing.assert_allclose(list(result.probabilities.values()), as_trained.mean(axis=0), rtol=1e-5)


def test_hybrid_prediction_equals_the_booster_on_the_extracted_features(dataset, hybrid):
    image_set, model = dataset["image_set"], hybrid["model"]
    assert isinstance(model, predict.HybridModel) and model.classes == list(GENRES)
    for path in image_set.segments["path"].unique()[::2]:
        rows = track_rows(image_set, path)
        expected = hybrid["booster"].predict(np.asarray(hybrid["feature_set"].features)[rows]).mean(axis=0)
        result = predict.predict_file(path, model)
        assert result.segments == len(rows)
        np.testing.assert_allclose(list(result.probabilities.values()), expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- any length, rate, channels, format

@pytest.mark.parametrize("suffix, seconds, rate, channels, segments", [
    (".wav", 1.2, 22050, 1, 1),       # one segment
    (".wav", 2.5, 44100, 2, 2),       # stereo, resampled
    (".flac", 2.9, 16000, 1, 3),      # short of a clip by less than pad_seconds: all 3 segments
    (".ogg", 7.2, 22050, 2, 7),       # longer than a clip: clip by clip, 3 + 3 + 1
    (".au", 6.8, 8000, 1, 6),         # a tail shorter than a segment is left out
    (".mp3", 4.5, 44100, 2, 4),
])
def test_any_length_rate_channels_and_format(tmp_path, e2e, suffix, seconds, rate, channels, segments):
    path = write_audio(tmp_path / f"clip{suffix}", seconds=seconds, sample_rate=rate, channels=channels)
    result = predict.predict_file(path, e2e)
    assert result.ok and result.segments == segments
    assert list(result.probabilities) == list(GENRES)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.genre == max(result.probabilities, key=result.probabilities.get)
    assert result.to_dict() == {"path": str(path), "genre": result.genre, "probabilities": result.probabilities,
                                "segments": segments}
    top = result.top(3)
    assert [g for g, _ in top][0] == result.genre and [p for _, p in top] == sorted([p for _, p in top], reverse=True)


def test_track_probability_is_the_mean_of_segment_probabilities(tmp_path, e2e):
    path = write_audio(tmp_path / "long.wav", seconds=7.0, freq=300.0)
    signal, _ = load_audio(path, sample_rate=PARAMS.sample_rate)
    per_segment = np.concatenate([e2e.segment_probabilities(images)
                                  for images in (mel_images(clip, PARAMS) for clip in predict.clip_chunks(signal, PARAMS))])
    assert per_segment.shape == (7, 3)
    result = predict.predict_file(path, e2e)
    np.testing.assert_allclose(list(result.probabilities.values()), per_segment.mean(axis=0), rtol=1e-6)


# ---------------------------------------------------------------- bad audio

def test_a_clip_shorter_than_one_segment_is_refused(tmp_path, e2e):
    path = write_audio(tmp_path / "short.wav", seconds=0.6)
    with pytest.raises(ClipTooShortError, match=r"^clip of 0.6 s is shorter than the minimum of 1 s \(one 1 s segment; "):
        predict.predict_file(path, e2e)


def test_bad_files_fail_alone_and_the_others_are_predicted(tmp_path, e2e):
    good1 = write_audio(tmp_path / "a.wav", seconds=2.0)
    short = write_audio(tmp_path / "short.flac", seconds=0.5)
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("this is not audio\n")
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    good2 = write_audio(tmp_path / "b.ogg", seconds=3.0, channels=2, sample_rate=32000)
    missing = tmp_path / "missing.mp3"
    results = predict.predict_files([good1, short, garbage, empty, good2, missing], e2e)
    assert [r.path for r in results] == [str(p) for p in (good1, short, garbage, empty, good2, missing)]
    assert [r.ok for r in results] == [True, False, False, False, True, False]
    assert results[0].segments == 2 and results[4].segments == 3
    errors = {r.path: r.error for r in results if not r.ok}
    assert "is shorter than the minimum of" in errors[str(short)]
    assert "not a .wav file" in errors[str(garbage)]
    assert "empty" in errors[str(empty)] and "not found" in errors[str(missing)]
    assert all("\n" not in e for e in errors.values())
    assert results[1].to_dict() == {"path": str(short), "error": errors[str(short)]}
    with pytest.raises(AudioError):
        predict.predict_file(garbage, e2e)


# ---------------------------------------------------------------- model files

def _zip(path, entries: dict):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def test_files_that_are_not_our_models_are_refused_in_one_line(tmp_path, e2e):
    good = modelfile.read_header(e2e.path)
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    plain = tmp_path / "plain.keras"
    e2e.network.save(plain)
    cases = {
        text: "not a zip archive",
        plain: "Keras model without genrestudy's genrestudy.json",
        _zip(tmp_path / "other.zip", {"a.txt": "x"}): "zip archive without",
        _zip(tmp_path / "badjson.zip", {"genrestudy.json": "{nope"}): "unreadable",
        _zip(tmp_path / "format.zip", {"genrestudy.json": json.dumps({**good, "format": "x"})}): "format",
        _zip(tmp_path / "future.zip", {"genrestudy.json": json.dumps({**good, "format_version": 99})}): "version",
        _zip(tmp_path / "kind.zip", {"genrestudy.json": json.dumps({**good, "kind": "svm"})}): "kind",
        _zip(tmp_path / "classes.zip", {"genrestudy.json": json.dumps({**good, "classes": ["a", "a"]})}): "classes",
        _zip(tmp_path / "params.zip",
             {"genrestudy.json": json.dumps({**good, "image_params": {"image_size": 2}})}): "image parameters",
        _zip(tmp_path / "lacks.zip", {"genrestudy.json": json.dumps({k: v for k, v in good.items()
                                                                    if k != "classes"})}): "lacks classes",
    }
    for path, reason in cases.items():
        with pytest.raises(modelfile.ModelFileError) as info:
            predict.load_model(path)
        message = str(info.value)
        assert message.startswith(f"not a genrestudy model: {path}") and reason in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="no model file"):
        predict.load_model(tmp_path / "nothing.keras")


def test_a_header_on_a_damaged_archive_is_refused(tmp_path, e2e):
    header = modelfile.read_header(e2e.path)
    damaged = _zip(tmp_path / "damaged.keras", {"genrestudy.json": json.dumps(header), "config.json": "{}"})
    with pytest.raises(modelfile.ModelFileError, match="^not a genrestudy model: .*config.json holds 2 bytes, its header "
                                                      "records .*: damaged or altered"):
        predict.load_model(damaged)
    # a file written before the payload hashes: Keras itself finds the damage
    legacy = {k: v for k, v in header.items() if k not in (modelfile.PAYLOAD_FIELD, modelfile.PAYLOAD_SIZES)}
    damaged = _zip(tmp_path / "legacy.keras", {"genrestudy.json": json.dumps(legacy), "config.json": "{}"})
    with pytest.raises(modelfile.ModelFileError, match="^not a genrestudy model: .*Keras cannot load it"):
        predict.load_model(damaged)
    hybrid_header = {**legacy, "kind": "hybrid", "seed": 0, "precision": "float32",
                     "backbone_fingerprint": "sha256:" + "0" * 64}
    no_booster = _zip(tmp_path / "nobooster.zip", {"genrestudy.json": json.dumps(hybrid_header)})
    with pytest.raises(modelfile.ModelFileError, match="no readable booster.txt"):
        predict.load_model(no_booster)


def test_default_model_location(tmp_path, monkeypatch, e2e):
    monkeypatch.setenv("GENRESTUDY_DATA", str(tmp_path / "data"))
    assert modelfile.default_model_path() == tmp_path / "data" / "models" / "resnet50_end_to_end.keras"
    with pytest.raises(FileNotFoundError, match="04_finetune_resnet50"):
        predict.load_model()
    modelfile.default_model_path().parent.mkdir(parents=True)
    modelfile.default_model_path().write_bytes(e2e.path.read_bytes())
    assert predict.load_model().classes == list(GENRES)


def test_a_demo_model_never_replaces_a_real_data_model(tmp_path, dataset, e2e, caplog):
    network = endtoend.build_model(len(GENRES), image_size=32, input_size=32, dense_units=8, seed=0)
    header = {**e2e.header, "synthetic": True}
    target = tmp_path / "models" / "resnet50_end_to_end.keras"
    # nothing there, or a demo model there: saved (and replaced) in place
    assert modelfile.save_keras_model(network, target, metadata=header) == target
    assert modelfile.save_keras_model(network, target, metadata=header) == target
    # a real-data model there: kept; the demo model goes beside it, with a warning
    target.write_bytes(e2e.path.read_bytes())
    real = target.read_bytes()
    with caplog.at_level("WARNING", logger="genrestudy.models.modelfile"):
        saved = modelfile.save_keras_model(network, target, metadata=header)
    assert saved == target.with_name("resnet50_end_to_end.synthetic.keras") and saved.is_file()
    assert target.read_bytes() == real and "trained on real audio" in caplog.text
    assert modelfile.read_header(saved)["synthetic"] and not modelfile.read_header(target)["synthetic"]
    # a real-data model replaces anything; a file that is not ours is replaced as before
    assert modelfile.model_destination(target, synthetic=False) == target
    (tmp_path / "other.keras").write_bytes(b"not a model")
    assert modelfile.model_destination(tmp_path / "other.keras", synthetic=True) == tmp_path / "other.keras"


def test_end_to_end_header_and_description(e2e):
    assert e2e.kind == "end-to-end" and e2e.image_params == PARAMS and e2e.classes == list(GENRES)
    assert "end-to-end ResNet50" in e2e.describe() and "SYNTHETIC" not in e2e.describe()


# ---------------------------------------------------------------- the hybrid model file

def test_hybrid_file_holds_header_and_booster(hybrid):
    with zipfile.ZipFile(hybrid["path"]) as archive:
        assert sorted(archive.namelist()) == ["booster.txt", "genrestudy.json"]
    header = modelfile.read_header(hybrid["path"])
    assert header["kind"] == "hybrid" and header["backbone"] == "MobileNetV2" and header["input_size"] == 32
    assert header["weights"] == "random-init-seed0" and header["precision"] == "float32"
    assert ImageParams(**header["image_params"]) == PARAMS
    assert header["backbone_fingerprint"].startswith("sha256:")


def test_a_hybrid_whose_backbone_cannot_be_rebuilt_identically_is_refused(tmp_path, hybrid):
    with zipfile.ZipFile(hybrid["path"]) as archive:
        header = json.loads(archive.read("genrestudy.json"))
        booster = archive.read("booster.txt").decode()
    tampered = _zip(tmp_path / "tampered.zip",
                    {"genrestudy.json": json.dumps({**header, "backbone_fingerprint": "sha256:" + "0" * 64}),
                     "booster.txt": booster})
    with pytest.raises(ValueError, match="differs from the one the booster"):
        predict.load_model(tampered)


def test_hybrid_save_checks_its_inputs(dataset, hybrid):
    settings = predict.hybrid_settings(hybrid["feature_set"], dataset["image_set"])
    with pytest.raises(ValueError, match="3 classes, 2 class names"):
        predict.save_hybrid_model(dataset["base"] / "x.zip", hybrid["booster"], **{**settings, "classes": ["a", "b"]})
    with pytest.raises(ValueError, match="features, ResNet50 gives 2048"):
        predict.save_hybrid_model(dataset["base"] / "x.zip", hybrid["booster"], **{**settings, "backbone": "ResNet50"})
    with pytest.raises(ValueError, match="resolved one"):
        predict.save_hybrid_model(dataset["base"] / "x.zip", hybrid["booster"], **{**settings, "precision": "auto"})
    kaggle_like = features.FeatureSet(root=None, features=np.zeros((2, 3)), segments=hybrid["feature_set"].segments,
                                      meta={"source": "features_3_sec.csv"})
    with pytest.raises(ValueError, match="cannot predict from audio"):
        predict.hybrid_settings(kaggle_like, dataset["image_set"])
    other = features.FeatureSet(root=None, features=np.zeros((2, 3)), segments=hybrid["feature_set"].segments,
                                meta={**hybrid["feature_set"].meta, "image_cache": "elsewhere"})
    with pytest.raises(ValueError, match="image cache elsewhere"):
        predict.hybrid_settings(other, dataset["image_set"])


def test_hybrid_weights_from_a_file_must_match_their_checksum(tmp_path):
    weights = tmp_path / "backbone.weights.h5"
    weights.write_bytes(b"pretend weights")
    identity = backbones.weights_identity(weights)
    header = {"weights": identity, "weights_source": str(weights)}
    assert predict._weights_source(header, None) == str(weights)
    moved = tmp_path / "moved.weights.h5"
    moved.write_bytes(b"pretend weights")
    weights.unlink()
    assert predict._weights_source(header, moved) == str(moved)
    moved.write_bytes(b"other weights")
    with pytest.raises(ValueError, match="was trained with sha256"):
        predict._weights_source(header, moved)
    with pytest.raises(FileNotFoundError, match="come from a file"):
        predict._weights_source({"weights": identity}, None)
    assert predict._weights_source({"weights": "imagenet"}, None) == "imagenet"
    assert predict._weights_source({"weights": "random-init-seed3"}, None) is None


def test_a_hybrid_with_reduced_precision_features_loads_back(dataset, hybrid, tmp_path):
    """The saved fingerprint is of the float32 network; a bfloat16 build must still be accepted."""
    settings = {**predict.hybrid_settings(hybrid["feature_set"], dataset["image_set"]), "precision": "bfloat16"}
    path = predict.save_hybrid_model(tmp_path / "bf16.zip", hybrid["booster"], **settings)
    model = predict.load_model(path)
    assert model.header["precision"] == "bfloat16"
    probabilities = model.segment_probabilities(dataset["image_set"].images[:2])
    assert probabilities.shape == (2, len(model.classes)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)


# ---------------------------------------------------------------- the model-file format and the layering

def test_a_truncated_model_file_is_refused_in_one_line(tmp_path, e2e):
    data = e2e.path.read_bytes()
    for keep in (len(data) // 2, len(data) - 200, 100):
        cut = tmp_path / f"cut{keep}.keras"
        cut.write_bytes(data[:keep])
        with pytest.raises(modelfile.ModelFileError) as info:
            predict.load_model(cut)
        assert str(info.value).startswith(f"not a genrestudy model: {cut}") and "\n" not in str(info.value)


def test_a_method_can_register_a_new_kind_of_model_file(tmp_path, monkeypatch, e2e):
    # the registration ends with the test; the study's own kinds are there before it
    monkeypatch.setattr(modelfile, "_KINDS", {k: v for k, v in modelfile._KINDS.items() if k in ("end-to-end", "hybrid")})
    knn = {k: v for k, v in modelfile.read_header(e2e.path).items() if k not in ("backbone", "weights", "input_size")}
    knn.update(kind="toy", neighbours=5)
    with pytest.raises(modelfile.ModelFileError, match="kind 'toy', expected end-to-end or hybrid"):
        modelfile.check_header(knn, "toy.zip")
    neighbours = {"neighbours": modelschema.integer(1, 100)}
    assert modelfile.register_kind("toy", required=("neighbours",), fields=neighbours) == "toy"
    assert modelfile.kinds() == ("end-to-end", "hybrid", "toy")
    assert modelfile.check_header(knn, "toy.zip") == knn  # no backbone needed for this kind
    path = _zip(tmp_path / "toy.zip", {modelfile.HEADER_ENTRY: json.dumps(knn)})
    assert modelfile.read_header(path)["neighbours"] == 5
    with pytest.raises(modelfile.ModelFileError, match="lacks neighbours"):
        modelfile.check_header({k: v for k, v in knn.items() if k != "neighbours"}, "toy.zip")
    with pytest.raises(modelfile.ModelFileError, match="kind 'toy', expected end-to-end"):
        modelfile.check_header(knn, "toy.zip", kind="end-to-end")
    modelfile.register_kind("toy", required=("neighbours",), fields=neighbours)  # registering again is harmless
    with pytest.raises(ValueError, match="already registered"):
        modelfile.register_kind("toy", required=("k",), fields={"k": modelschema.integer(1, 9)})


def _package_imports(module: str) -> set[str]:
    """The genrestudy modules ``module`` (``"run.predict"``) imports, at the top or inside functions (parsed,
    not run), by their full names under ``genrestudy.``."""
    import importlib.util

    package = f"genrestudy.{module}".rpartition(".")[0]
    source = Path(genrestudy.__file__).parent.joinpath(*module.split(".")).with_suffix(".py").read_text()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module or ""
            if base == "genrestudy" or base.startswith("genrestudy."):
                subs = {f"{base}.{alias.name}" for alias in node.names}
                found |= {name for name in subs | {base} if _is_module(name)}
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("genrestudy."))
    return {name.removeprefix("genrestudy.") for name in found}


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a name imported from a module, not a module
        return False


def test_prediction_and_training_do_not_import_each_other():
    predict, endtoend = "run.predict", "networks.endtoend"
    assert endtoend not in _package_imports(predict)
    assert predict not in _package_imports(endtoend)
    # both read and write model files through the one module that defines the format
    assert "models.modelfile" in _package_imports(predict) and "models.modelfile" in _package_imports(endtoend)
    assert not {predict, endtoend} & (_package_imports("models.modelfile") | _package_imports("networks.training"))
