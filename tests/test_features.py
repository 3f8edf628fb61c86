"""Feature extraction and the backbones under it: preprocessing, BatchNorm folding, the precision rule,
streaming, the feature cache."""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from genrestudy import cache, device
from genrestudy.extractors import backbones, features
from genrestudy.report import plots
from genrestudy.signals.images import open_image_set

SMALL = 32  # smallest input most backbones accept; fast enough for unit tests


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two feature tables differ by more than rounding, at their own scale."""
    return np.abs(a - b).max() > 1e-3 * max(np.abs(a).max(), np.abs(b).max())


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def write_image_set(root: Path, *, n_per_genre: int = 4, size: int = SMALL, genres=("blues", "jazz", "rock"),
                    synthetic: bool = True, seed: int = 0):
    """A complete image cache entry, as genrestudy.signals.images writes one, with band-pattern images."""
    rng = np.random.default_rng(seed)
    rows, images = [], []
    grid = np.linspace(0, 1, size, dtype=np.float32)[:, None]
    for g, genre in enumerate(genres):
        for i in range(n_per_genre):
            track = f"{genre}.{i // 2:05d}"
            pattern = 127 + 100 * np.sin((g + 1) * 4 * np.pi * grid + i) * np.ones((1, size), np.float32)
            images.append(np.clip(pattern + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8))
            rows.append({"segment_id": len(rows), "track_id": track, "label": genre, "segment": i % 2,
                         "path": f"/data/{genre}/{track}.wav"})
    root.mkdir(parents=True)
    np.save(root / "images.npy", np.stack(images))
    segments = pd.DataFrame(rows)
    segments.to_csv(root / "segments.csv", index=False)
    clips = segments.drop_duplicates("track_id")[["track_id", "label", "path"]].assign(status="usable", reason="")
    clips.to_csv(root / "clips.csv", index=False)
    cache.finish(root, {"synthetic": synthetic, "params": {"image_size": size}})
    return open_image_set(root)


@pytest.fixture
def image_set(study_dirs):
    return write_image_set(study_dirs["cache"] / "images" / "testkey0000000000")


@pytest.fixture(scope="module")
def mobilenet():
    return backbones.build_backbone("MobileNetV2", input_size=SMALL, precision="float32", seed=0)


# ---------------------------------------------------------------- preprocessing

def test_resnet50_preprocessing_is_bgr_mean_subtracted_on_0_255():
    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[0, 1, 2] = (200, 100, 50)  # R, G, B
    image[0, 0, 0] = (255, 255, 255)
    x = backbones.preprocess_images(image, backbone="ResNet50")
    assert x.dtype == np.float32
    # BGR order, ImageNet BGR means subtracted, no scaling to [0, 1]
    np.testing.assert_allclose(x[0, 1, 2], [50 - 103.939, 100 - 116.779, 200 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(x[0, 0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(x[0, 3, 3], [-103.939, -116.779, -123.68], rtol=1e-6)


@pytest.mark.parametrize("backbone, black, white", [
    ("Xception", [-1, -1, -1], [1, 1, 1]),
    ("MobileNetV2", [-1, -1, -1], [1, 1, 1]),
    ("DenseNet201", [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
     [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]),
    ("EfficientNetB0", [0, 0, 0], [255, 255, 255]),  # the network normalises 0-255 itself
])
def test_each_backbone_gets_its_own_preprocessing(backbone, black, white):
    image = np.zeros((1, 2, 2, 3), np.uint8)
    image[0, 1, 1] = 255
    x = backbones.preprocess_images(image, backbone=backbone)
    np.testing.assert_allclose(x[0, 0, 0], black, rtol=1e-5)
    np.testing.assert_allclose(x[0, 1, 1], white, rtol=1e-5)


def test_rescaled_or_misshapen_images_are_rejected():
    with pytest.raises(ValueError, match="0-255"):
        backbones.preprocess_images(np.full((1, 4, 4, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"\(n, height, width, 3\)"):
        backbones.preprocess_images(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown backbone 'ResNet99'"):
        backbones.preprocess_images(np.zeros((1, 4, 4, 3), np.uint8), backbone="ResNet99")


# ---------------------------------------------------------------- backbones

@pytest.mark.parametrize("backbone", [
    "ResNet50", "EfficientNetB0", "Xception", "MobileNetV2",
    pytest.param("DenseNet201", marks=pytest.mark.slow),
    pytest.param("EfficientNetB6", marks=pytest.mark.slow),
    pytest.param("EfficientNetB7", marks=pytest.mark.slow),
])
def test_every_backbone_builds_and_extracts(backbone):
    spec = backbones.backbone_spec(backbone)
    size = max(SMALL, spec.min_size)
    model = backbones.build_backbone(backbone, input_size=size, image_size=SMALL, precision="float32")
    assert not model.trainable and model.output.shape[-1] == spec.n_features
    grey = np.random.default_rng(1).integers(0, 256, (3, SMALL, SMALL), dtype=np.uint8)
    out = features.stream_features(model, grey, backbone=backbone, batch_size=2, progress=False)
    assert out.shape == (3, spec.n_features) and out.dtype == np.float32
    features.check_features(out)


def test_folded_batchnorm_gives_the_plain_networks_features():
    keras.utils.set_random_seed(0)
    app = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SMALL, SMALL, 3))
    plain = keras.Model(app.input, keras.layers.GlobalAveragePooling2D()(app.output))
    x = backbones.preprocess_images(np.random.default_rng(2).integers(0, 256, (4, SMALL, SMALL, 3), dtype=np.uint8))
    expected = plain.predict_on_batch(x)

    folded = backbones.build_backbone("ResNet50", input_size=SMALL, precision="float32", seed=0)
    names = [layer.name for layer in folded.layers[1].layers]
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in folded.layers[1].layers)
    assert "conv1_bn" in names  # replaced in place, the graph keeps its names
    np.testing.assert_allclose(folded.predict_on_batch(x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    reduced = backbones.build_backbone("ResNet50", input_size=SMALL, precision="bfloat16", seed=0)
    inner = reduced.layers[1]
    assert inner.get_layer("conv2_block1_1_conv").dtype_policy.name == "bfloat16"  # weights kept in bf16
    assert inner.get_layer("conv2_block1_1_conv").kernel.dtype == "bfloat16"
    assert cosine_rows(reduced.predict_on_batch(x), expected).min() >= 0.99


def test_random_initialisation_is_fixed_by_the_seed(mobilenet):
    x = backbones.preprocess_images(np.random.default_rng(3).integers(0, 256, (2, SMALL, SMALL, 3), dtype=np.uint8),
                                   backbone="MobileNetV2")
    again = backbones.build_backbone("MobileNetV2", input_size=SMALL, precision="float32", seed=0)
    other = backbones.build_backbone("MobileNetV2", input_size=SMALL, precision="float32", seed=1)
    np.testing.assert_array_equal(again.predict_on_batch(x), mobilenet.predict_on_batch(x))
    assert differ(other.predict_on_batch(x), mobilenet.predict_on_batch(x))


def test_bad_backbone_arguments_fail_with_one_line():
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.build_backbone("VGG16")
    with pytest.raises(ValueError, match="Xception needs input_size >= 71, got 32"):
        backbones.build_backbone("Xception", input_size=32)
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        backbones.build_backbone("MobileNetV2", input_size=SMALL, precision="half")
    with pytest.raises(FileNotFoundError, match="weights file .*nope.h5 not found"):
        backbones.build_backbone("MobileNetV2", input_size=SMALL, weights="/nope/nope.h5")


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # inside Keras' save_weights
def test_local_weights_file_is_loaded_and_identified_by_its_hash(tmp_path, mobilenet):
    keras.utils.set_random_seed(5)
    app = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SMALL, SMALL, 3))
    path = tmp_path / "mobilenet.weights.h5"
    app.save_weights(path)
    plain = keras.Model(app.input, keras.layers.GlobalAveragePooling2D()(app.output))
    loaded = backbones.build_backbone("MobileNetV2", input_size=SMALL, weights=path, precision="float32", seed=0)
    x = backbones.preprocess_images(np.random.default_rng(4).integers(0, 256, (2, SMALL, SMALL, 3), dtype=np.uint8),
                                   backbone="MobileNetV2")
    expected = plain.predict_on_batch(x)
    np.testing.assert_allclose(loaded.predict_on_batch(x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    identity = backbones.weights_identity(path)
    assert identity.startswith("sha256:") and len(identity) == len("sha256:") + 64
    assert backbones.weights_identity(None, seed=3) == "random-init-seed3"
    assert backbones.weights_identity("imagenet") == "imagenet"


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
@pytest.mark.parametrize("backbone, size, expected_file", [
    ("ResNet50", 32, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("MobileNetV2", 96, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"),
    ("MobileNetV2", 100, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    ("EfficientNetB0", 32, "efficientnetb0_notop.h5"),
    ("Xception", 71, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_imagenet_offline_says_which_file_goes_where(monkeypatch, tmp_path, backbone, size, expected_file):
    from keras.src.utils import file_utils

    asked = []

    def offline_get_file(fname, origin=None, **kwargs):
        asked.append(fname)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline_get_file)
    monkeypatch.setattr(backbones, "_keras_models_dir", lambda: tmp_path / "models")
    with pytest.raises(FileNotFoundError) as err:
        backbones.build_backbone(backbone, weights="imagenet", input_size=size, precision="float32")
    message = str(err.value)
    assert asked == [expected_file]  # our table names the file Keras itself looks for
    assert "\n" not in message
    assert f"place {expected_file} in {tmp_path / 'models'}" in message
    assert "weights=<path" in message and "Name or service not known" in message


# ---------------------------------------------------------------- precision

@pytest.mark.parametrize("where, faster, inference, training", [
    ("gpu", "float32", "bfloat16", "bfloat16"),
    ("cpu", "bfloat16", "bfloat16", "float32"),
    ("cpu", "float32", "float32", "float32"),
])
def test_one_precision_rule_for_inference_and_training(monkeypatch, where, faster, inference, training):
    monkeypatch.setattr(device, "accelerator", lambda: where)
    # a CPU's "auto" inference is the measured faster one (genrestudy.precision_choice), whatever its flags say
    monkeypatch.setattr(device, "cpu_inference_precision", lambda: faster)
    monkeypatch.setattr(device, "cpu_supports_bfloat16", lambda: faster == "float32")
    assert device.resolve_precision("auto", training=False) == inference
    assert device.resolve_precision("auto", training=True) == training
    # a named precision is taken as it is
    assert device.resolve_precision("float32", training=False) == "float32"
    assert device.resolve_precision("bfloat16", training=True) == "bfloat16"


def test_unknown_precisions_are_refused_in_one_line():
    assert device.resolve_precision("float16", training=False) == "float16"  # inference only, on request
    with pytest.raises(ValueError, match="^unknown precision 'int8' for inference; "
                                         "expected one of auto, float32, bfloat16, float16$"):
        device.resolve_precision("int8", training=False)
    with pytest.raises(ValueError, match="^unknown precision 'float16' for training; expected one of auto, "
                                         "float32, bfloat16$"):
        device.resolve_precision("float16", training=True)
    with pytest.raises(TypeError):
        device.resolve_precision("auto")  # which rule applies must be said


def test_a_stored_precision_falls_back_to_float32_where_it_cannot_run(monkeypatch):
    monkeypatch.setattr(device, "accelerator", lambda: "cpu")
    monkeypatch.setattr(device, "cpu_inference_precision", lambda: "float32")
    assert [device.runnable_precision(p) for p in ("float32", "bfloat16", "float16")] == ["float32"] * 3
    monkeypatch.setattr(device, "cpu_inference_precision", lambda: "bfloat16")
    assert device.runnable_precision("bfloat16") == "bfloat16"
    assert device.runnable_precision("float16") == "float32"
    monkeypatch.setattr(device, "accelerator", lambda: "gpu")
    assert device.runnable_precision("float16") == "float16"


def test_accelerator_matches_the_backend(monkeypatch):
    import keras

    # what the backend itself lists decides, whichever it is
    seen = keras.distribution.list_devices("gpu") if keras.config.backend() != "torch" else []
    assert device.accelerator() == ("gpu" if seen else "cpu")
    monkeypatch.setattr(keras.distribution, "list_devices", lambda kind=None: ["gpu:0"] if kind == "gpu" else [])
    if keras.config.backend() != "torch":
        assert device.accelerator() == "gpu"
    monkeypatch.setattr(keras.distribution, "list_devices", lambda kind=None: [])
    assert device.accelerator() == "cpu"


# ---------------------------------------------------------------- streaming

class CountingModel:
    """Wraps a model and records the batch sizes predict_on_batch is called with."""

    def __init__(self, model):
        self.model, self.output, self.sizes = model, model.output, []

    def predict_on_batch(self, x):
        self.sizes.append(len(x))
        return self.model.predict_on_batch(x)


def test_streaming_pads_to_fixed_batches_and_matches_one_big_batch(mobilenet):
    grey = np.random.default_rng(5).integers(0, 256, (7, SMALL, SMALL), dtype=np.uint8)
    counting = CountingModel(mobilenet)
    streamed = features.stream_features(counting, grey, backbone="MobileNetV2", batch_size=3, progress=False)
    assert counting.sizes == [3, 3, 3]  # one traced shape, last batch padded
    whole = mobilenet.predict_on_batch(
        backbones.preprocess_images(np.repeat(grey[..., None], 3, axis=-1), backbone="MobileNetV2"))
    np.testing.assert_allclose(streamed, whole, rtol=1e-4, atol=1e-5 * np.abs(whole).max())
    rgb = features.stream_features(mobilenet, np.repeat(grey[..., None], 3, axis=-1), backbone="MobileNetV2",
                                   batch_size=7, progress=False)
    np.testing.assert_allclose(rgb, whole, rtol=1e-4, atol=1e-5 * np.abs(whole).max())
    assert features.stream_features(mobilenet, grey[:0], backbone="MobileNetV2", progress=False).shape == (0, 1280)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        features.stream_features(mobilenet, grey, backbone="MobileNetV2", batch_size=0)
    with pytest.raises(ValueError, match="got shape"):
        features.stream_features(mobilenet, grey[..., None], backbone="MobileNetV2")


def _rss_file_kb() -> int:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["RssFile"].split()[0])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read RssFile")
def test_streamed_rows_leave_the_process_resident_set(tmp_path):
    n, size = 400, 224
    path = tmp_path / "images.npy"
    writer = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size))
    writer[:] = np.arange(n, dtype=np.uint8)[:, None, None]
    writer.flush()
    del writer
    images = np.load(path, mmap_mode="r")[50:]  # a view that does not start at the file's first row
    before = _rss_file_kb()
    total = sum(int(np.array(images[i:i + 50]).sum()) for i in range(0, len(images), 50))
    touched = _rss_file_kb()
    for i in range(0, len(images), 50):
        features._release_pages(images, i, i + 50)
    released = _rss_file_kb()
    mapped_kb = images.nbytes / 1024
    assert touched - before > 0.8 * mapped_kb
    assert touched - released > 0.8 * mapped_kb
    # the data are still there, read back from the page cache
    assert sum(int(np.array(images[i:i + 50]).sum()) for i in range(0, len(images), 50)) == total
    assert int(images[0, 0, 0]) == 50


# ---------------------------------------------------------------- the feature cache

def test_extract_features_caches_by_everything_that_determines_them(image_set, monkeypatch):
    kwargs = dict(backbone="MobileNetV2", input_size=SMALL, batch_size=5, precision="float32", progress=False)
    first = features.extract_features(image_set, **kwargs)
    assert first.features.shape == (12, 1280) and first.features.dtype == np.float32
    assert isinstance(first.features, np.memmap) and not first.features.flags.writeable
    pd.testing.assert_frame_equal(first.segments, image_set.segments)
    assert first.classes == ["blues", "jazz", "rock"] and list(first.labels[:5]) == [0, 0, 0, 0, 1]
    assert first.synthetic and len(first) == 12
    meta = first.meta
    assert meta["backbone"] == "MobileNetV2" and meta["weights"] == "random-init-seed0"
    assert meta["image_cache"] == image_set.key and meta["precision"] == "float32"
    assert "preprocess_input" in meta["preprocessing"] and meta["n_features"] == 1280
    assert meta["extraction"]["images_per_second"] > 0 and meta["extraction"]["peak_rss_mb"] > 0
    features.check_features(first.features)

    def no_build(*args, **kw):
        raise AssertionError("a cached feature set must not rebuild the network")

    with monkeypatch.context() as patched:
        patched.setattr(features, "build_backbone", no_build)
        started = time.perf_counter()
        again = features.extract_features(image_set, **dict(kwargs, batch_size=7))  # batch size: speed only
        assert time.perf_counter() - started < 2.0
    assert again.root == first.root
    np.testing.assert_array_equal(again.features, first.features)

    reseeded = features.extract_features(image_set, **dict(kwargs, seed=1))
    assert reseeded.root != first.root and reseeded.meta["weights"] == "random-init-seed1"
    assert differ(reseeded.features, first.features)
    reduced = features.extract_features(image_set, **dict(kwargs, precision="bfloat16"))
    assert reduced.root not in (first.root, reseeded.root) and reduced.meta["precision"] == "bfloat16"
    assert cosine_rows(reduced.features, first.features).min() >= 0.99


def test_feature_cache_entries_are_checked_when_opened(tmp_path):
    with pytest.raises(cache.CacheError, match="not a complete feature cache"):
        features.open_feature_set(tmp_path)
    cache.save_array(tmp_path / "features.npy", np.zeros((3, 4), np.float32))
    pd.DataFrame({"segment_id": [0, 1], "track_id": ["a", "b"], "label": ["x", "y"]}).to_csv(
        tmp_path / "segments.csv", index=False)
    cache.finish(tmp_path, {})
    with pytest.raises(cache.CacheError, match="2 segment rows but 3 feature rows"):
        features.open_feature_set(tmp_path)


def test_in_memory_feature_set():
    table = pd.DataFrame({"segment_id": [0, 1, 2], "track_id": ["a", "b", "c"], "label": ["rock", "blues", "rock"]})
    fs = features.FeatureSet(root=None, features=np.eye(3, dtype=np.float32), segments=table, meta={})
    assert fs.classes == ["blues", "rock"] and list(fs.labels) == [1, 0, 1]
    assert not fs.synthetic and len(fs) == 3


# ---------------------------------------------------------------- checks and views

def test_degenerate_features_are_caught():
    healthy = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    summary = features.check_features(healthy)
    assert summary["distinct_rows"] == 20 and summary["constant_dims_fraction"] == 0
    with pytest.raises(ValueError, match="every dimension is constant"):
        features.check_features(np.ones((20, 8), np.float32))
    with pytest.raises(ValueError, match="1 non-finite values"):
        features.check_features(np.where(np.arange(160).reshape(20, 8) == 7, np.nan, healthy))
    half_dead = healthy.copy()
    half_dead[:, :4] = 0
    assert features.feature_summary(half_dead)["zero_dims_fraction"] == 0.5


def test_projection_figure(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"segment_id": range(30), "track_id": [f"t{i}" for i in range(30)],
                          "label": np.repeat(["blues", "jazz", "rock"], 10)})
    x = rng.normal(size=(30, 16)) + np.repeat(np.eye(3, 16) * 5, 10, axis=0)
    fs = features.FeatureSet(root=None, features=x.astype(np.float32), segments=table,
                             meta={"backbone": "ResNet50", "weights": "imagenet", "precision": "float32"})
    xy = features.project_features(fs.features, method="pca")
    assert xy.shape == (30, 2)
    # the genres separate along the projection
    centres = np.stack([xy[fs.labels == k].mean(axis=0) for k in range(3)])
    assert np.linalg.norm(centres[0] - centres[1]) > 2
    assert features.project_features(fs.features, method="tsne").shape == (30, 2)
    with pytest.raises(ValueError, match="unknown projection method 'umap'"):
        features.project_features(fs.features, method="umap")
    fig = plots.plot_feature_projection(fs)
    assert len(fig.axes[0].collections) == 3
    assert "ResNet50" in fig.axes[0].get_title()


@pytest.mark.parametrize("label", ["NA", "None", "null", "nan"])
def test_a_genre_named_like_a_missing_value_reads_back_as_its_name(tmp_path, label):
    cache.save_array(tmp_path / "features.npy", np.zeros((2, 4), np.float32))
    pd.DataFrame({"segment_id": [0, 1], "track_id": ["NA.00000", "rock.00000"], "label": [label, "rock"],
                  "path": ["a.wav", "b.wav"]}).to_csv(tmp_path / "segments.csv", index=False)
    cache.finish(tmp_path, {})
    fs = features.open_feature_set(tmp_path)
    assert fs.segments["label"].tolist() == [label, "rock"] and fs.segments["track_id"][0] == "NA.00000"
    assert sorted(fs.classes) == sorted([label, "rock"])
