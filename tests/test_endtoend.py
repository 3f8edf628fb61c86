"""End-to-end ResNet-50 and the training machinery it uses: settings, augmentation, batched feeding,
the model, two-phase training, the trained-model cache, files, figures."""
from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict, replace

import h5py
import numpy as np
import pandas as pd
import pytest

from genrestudy import cache, device
from genrestudy.data import splits
from genrestudy.extractors import backbones
from genrestudy.models import modelfile
from genrestudy.networks import endtoend, training
from genrestudy.report import plots
from genrestudy.signals.images import ImageParams, open_image_set

CLASSES = ("blues", "jazz", "rock")
TINY_PARAMS = ImageParams(n_segments=3, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256,
                          n_mels=32, image_size=32)
TINY = endtoend.TrainSettings(input_size=32, head_epochs=1, finetune_epochs=1, finetune_blocks=1, batch_size=8,
                              patience=1, dense_units=16, seed=0)


def write_image_set(root, *, tracks_per_class: int = 4, params: ImageParams = TINY_PARAMS, seed: int = 0):
    """A small image cache entry written by hand: each genre a band of bright rows at its own height."""
    rng = np.random.default_rng(seed)
    size, k = params.image_size, params.n_segments
    images, rows, clips = [], [], []
    for c, genre in enumerate(CLASSES):
        for t in range(tracks_per_class):
            track = f"{genre}.{t:05d}"
            for s in range(k):
                img = rng.integers(0, 60, (size, size))
                img[4 + 8 * c:8 + 8 * c, :] += 150
                images.append(img.astype(np.uint8))
                rows.append({"segment_id": len(rows), "track_id": track, "label": genre, "segment": s,
                             "path": f"/nowhere/{genre}/{track}.wav"})
            clips.append({"track_id": track, "label": genre, "path": f"/nowhere/{genre}/{track}.wav",
                          "status": "usable", "reason": "", "segments": k})
    root.mkdir(parents=True, exist_ok=True)
    cache.save_array(root / "images.npy", np.stack(images))
    cache.write_csv(root / "segments.csv", pd.DataFrame(rows))
    cache.write_csv(root / "clips.csv", pd.DataFrame(clips))
    cache.finish(root, {"kind": "images", "params": asdict(params), "synthetic": True, "n_segments": len(rows)})
    return open_image_set(root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny image set, its track split, and one training run with TINY settings (cached)."""
    base = tmp_path_factory.mktemp("e2e")
    image_set = write_image_set(base / "images" / "tiny")
    split = splits.make_split(image_set.segments, "track", seed=0, fractions=(0.5, 0.25, 0.25))
    started = time.perf_counter()
    result = endtoend.train_end_to_end(image_set, split, settings=TINY, cache_root=base / "cache", progress=False)
    return {"image_set": image_set, "split": split, "result": result, "cache": base / "cache",
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- settings

def test_profiles_demo_is_small_and_paper_is_the_papers():
    demo, paper = endtoend.PROFILES["demo"], endtoend.PROFILES["paper"]
    assert demo.weights is None and demo.input_size <= 96 and demo.head_epochs + demo.finetune_epochs <= 4
    assert (paper.input_size, paper.weights) == (224, "imagenet")
    assert paper.head_epochs + paper.finetune_epochs == 25
    assert (paper.dense_units, paper.dropout) == (512, 0.5)


def test_training_settings_overrides():
    s = endtoend.training_settings("paper", input_size=None, finetune_blocks=3, augment=False)
    assert s.input_size == 224 and s.finetune_blocks == 3 and s.augmentation is None
    assert endtoend.training_settings("demo", augment=True).augmentation == training.Augmentation()
    with pytest.raises(ValueError, match="unknown training profile"):
        endtoend.training_settings("huge")
    with pytest.raises(ValueError, match="unknown training settings"):
        endtoend.training_settings("demo", epochs=3)


@pytest.mark.parametrize("bad", [dict(input_size=16), dict(finetune_blocks="some"), dict(finetune_blocks=-1),
                                 dict(dropout=1.0), dict(precision="float16"), dict(head_epochs=0, finetune_epochs=0),
                                 dict(batch_size=0), dict(head_learning_rate=0.0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        endtoend.TrainSettings(**bad)


def test_settings_round_trip_through_asdict():
    s = endtoend.TrainSettings(finetune_blocks="all")
    again = endtoend.TrainSettings(**json.loads(json.dumps(asdict(s))))
    assert again == s and isinstance(again.augmentation, training.Augmentation)


# ---------------------------------------------------------------- augmentation

def test_time_shift_is_a_circular_shift_along_time_only():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 16, 20)).astype(np.uint8)
    aug = training.Augmentation(time_shift=0.3, time_masks=0, freq_masks=0)
    out = aug.apply(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    shifted = 0
    for before, after in zip(images, out):
        matches = [s for s in range(-6, 7) if np.array_equal(np.roll(before, s, axis=1), after)]
        assert matches, "not a pure time shift (a flip or rotation would not match any roll)"
        shifted += matches[0] != 0
    assert shifted >= 3


def test_masks_silence_whole_bands_and_leave_the_rest():
    images = np.full((20, 32, 32), 200, dtype=np.uint8)
    aug = training.Augmentation(time_shift=0.0, time_masks=1, time_mask_width=0.25, freq_masks=1,
                                freq_mask_width=0.25)
    out = aug.apply(images, np.random.default_rng(0))
    assert set(np.unique(out)) <= {0, 200}
    for img in out:
        zero = img == 0
        cols, rows = zero.all(axis=0), zero.all(axis=1)
        # every silenced pixel lies in a fully silenced column or row
        assert np.array_equal(zero, cols[None, :] | rows[:, None])
        assert cols.sum() <= 8 and rows.sum() <= 8
    assert (out == 0).any()
    assert np.array_equal(images, np.full((20, 32, 32), 200)), "the input must not be changed"


def test_augmentation_is_deterministic_per_seed_and_validated():
    images = np.random.default_rng(0).integers(0, 256, (4, 24, 24)).astype(np.uint8)
    aug = training.Augmentation()
    a, b = aug.apply(images, np.random.default_rng(5)), aug.apply(images, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, aug.apply(images, np.random.default_rng(6)))
    for bad in (dict(time_shift=1.0), dict(time_mask_width=-0.1), dict(freq_masks=-1), dict(time_masks=1.5)):
        with pytest.raises(ValueError, match="invalid augmentation"):
            training.Augmentation(**bad)


# ---------------------------------------------------------------- feeding

def test_batches_feed_the_right_rows_preprocessed(tmp_path):
    image_set = write_image_set(tmp_path / "set")
    rows = np.arange(3, 30, 2)
    feed = training.ImageBatches(image_set.images, rows, image_set.labels, batch_size=4)
    assert isinstance(image_set.images, np.memmap)
    assert len(feed) == 4
    seen = []
    for i in range(len(feed)):
        x, y = feed[i]
        picked = feed.batch_rows(i)
        expected = backbones.preprocess_images(image_set.rgb(picked), backbone="ResNet50")
        np.testing.assert_array_equal(x, expected)
        np.testing.assert_array_equal(y, image_set.labels[picked])
        assert x.dtype == np.float32 and x.shape[1:] == (32, 32, 3)
        seen.extend(picked)
    assert sorted(seen) == rows.tolist()
    # caffe preprocessing keeps the 0-255 scale: BGR means subtracted, no division
    assert x.max() > 50 and x.min() < -50


def test_shuffling_changes_per_epoch_fixed_by_seed(tmp_path):
    image_set = write_image_set(tmp_path / "set")
    rows = np.arange(len(image_set))

    def orders(seed):
        feed = training.ImageBatches(image_set.images, rows, image_set.labels, batch_size=5, shuffle=True, seed=seed)
        out = []
        for _ in range(2):
            epoch = np.concatenate([feed.batch_rows(i) for i in range(len(feed))])
            assert sorted(epoch) == rows.tolist()
            out.append(epoch)
            feed.on_epoch_end()
        return out

    first, second = orders(0), orders(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(orders(1)[0], first[0])


def test_augmented_batches_differ_from_plain_ones_labels_do_not(tmp_path):
    image_set = write_image_set(tmp_path / "set")
    rows = np.arange(len(image_set))
    plain = training.ImageBatches(image_set.images, rows, image_set.labels, batch_size=8)
    aug = training.ImageBatches(image_set.images, rows, image_set.labels, batch_size=8,
                                augmentation=training.Augmentation(time_shift=0.2))
    (xp, yp), (xa, ya) = plain[0], aug[0]
    assert not np.array_equal(xp, xa)
    np.testing.assert_array_equal(yp, ya)
    np.testing.assert_array_equal(aug[0][0], xa)  # same epoch and batch: same augmentation


def test_bad_feeding_input_is_refused(tmp_path):
    image_set = write_image_set(tmp_path / "set")
    with pytest.raises(ValueError, match="rows must index"):
        training.ImageBatches(image_set.images, [0, len(image_set)], image_set.labels)
    with pytest.raises(ValueError, match="no rows"):
        training.ImageBatches(image_set.images, [], image_set.labels)
    with pytest.raises(ValueError, match="one class per image"):
        training.ImageBatches(image_set.images, [0], image_set.labels[:3])
    with pytest.raises(IndexError):
        training.ImageBatches(image_set.images, [0, 1], image_set.labels).batch_rows(5)


def test_batches_for_a_network_that_is_not_an_imagenet_backbone(tmp_path):
    image_set = write_image_set(tmp_path / "set")
    rows = np.arange(0, 12)
    grey = training.ImageBatches(image_set.images, rows, image_set.labels, preprocess=None, channels=1,
                                 batch_size=5)
    x, y = grey[0]
    picked = grey.batch_rows(0)
    # float32 0-255 grey values, nothing subtracted or scaled: the network scales them itself
    assert x.dtype == np.float32 and x.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(x[..., 0], image_set.images[picked].astype(np.float32))
    np.testing.assert_array_equal(y, image_set.labels[picked])
    x3, _ = training.ImageBatches(image_set.images, rows, image_set.labels, preprocess=None, batch_size=5)[0]
    assert x3.shape == (5, 32, 32, 3) and all(np.array_equal(x3[..., c], x[..., 0]) for c in range(3))
    with pytest.raises(ValueError, match="unknown backbone"):
        training.ImageBatches(image_set.images, rows, image_set.labels, preprocess="VGG99")
    with pytest.raises(ValueError, match="channels must be >= 1"):
        training.ImageBatches(image_set.images, rows, image_set.labels, preprocess=None, channels=0)


def test_the_training_machinery_trains_and_caches_a_small_network_of_another_kind(tmp_path, monkeypatch):
    """Not only ResNet-50: a tiny CNN on raw grey images, its own model kind, the same cache helper."""
    import keras

    monkeypatch.setattr(modelfile, "_KINDS", dict(modelfile._KINDS))  # the registration ends with the test
    from genrestudy.models import modelschema

    modelfile.register_kind("tiny-cnn", required=("layers",), fields={"layers": modelschema.integer(1, 1000)})
    image_set = write_image_set(tmp_path / "set")
    split = splits.make_split(image_set.segments, "track", seed=0, fractions=(0.5, 0.25, 0.25))
    rows = training.split_rows(split)

    def train():
        keras.utils.set_random_seed(0)
        with training.building_in("float32"):
            inputs = keras.Input((32, 32, 1))
            x = keras.layers.Rescaling(1 / 255)(inputs)
            x = keras.layers.Conv2D(4, 3, activation="relu")(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
            model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", dtype="float32")(x))
        feed = dict(preprocess=None, channels=1, batch_size=8)
        history, seconds = training.fit_phase(
            model, training.ImageBatches(image_set.images, rows["train"], image_set.labels, shuffle=True, **feed),
            training.ImageBatches(image_set.images, rows["valid"], image_set.labels, **feed),
            phase="only", learning_rate=1e-2, first_epoch=0, epochs=2, patience=1)
        header = modelfile.model_header("tiny-cnn", classes=image_set.classes, image_params=asdict(TINY_PARAMS),
                                        synthetic=True, layers=len(model.layers))
        return model, training.join_phases([history]), header

    first = training.cached_training("tiny", "key0", train, root=tmp_path / "cache")
    assert first.meta["kind"] == "tiny-cnn" and first.classes == list(CLASSES)
    assert first.history["phase"].tolist()[0] == "only" and first.model_file.is_file()
    again = training.cached_training("tiny", "key0", lambda: pytest.fail("retrained"), root=tmp_path / "cache")
    p1, _ = training.predict_rows(first.model, image_set, rows["test"], preprocess=None, channels=1,
                                  batch_size=4, progress=False)
    p2, _ = training.predict_rows(again.model, image_set, rows["test"], preprocess=None, channels=1,
                                  batch_size=4, progress=False)
    np.testing.assert_allclose(p1, p2, rtol=1e-6)
    scored = training.evaluate_part(again, image_set, split, preprocess=None, channels=1, progress=False)
    assert set(scored["scores"]) >= {"accuracy", "track_accuracy"}


# ---------------------------------------------------------------- the model

def test_model_structure_and_trainable_blocks():
    model = endtoend.build_model(3, image_size=40, input_size=32, weights=None, seed=0)
    assert model.input.shape[1:] == (40, 40, 3) and model.output.shape[1:] == (3,)
    resize = model.get_layer("resize")
    assert (resize.get_config()["height"], resize.get_config()["width"]) == (32, 32)
    assert model.get_layer(endtoend.BACKBONE_LAYER).input.shape[1:] == (32, 32, 3)
    dense, dropout = model.get_layer("head_dense"), model.get_layer("head_dropout")
    assert dense.units == 512 and dense.get_config()["activation"] == "relu" and dropout.rate == 0.5
    assert model.get_layer("genre").get_config()["activation"] == "softmax"
    backbone = model.get_layer(endtoend.BACKBONE_LAYER)
    assert not backbone.trainable_weights, "phase 1: the backbone is frozen"

    blocks = endtoend.backbone_blocks(model)
    assert len(blocks) == 16 and blocks[0] == "conv2_block1" and blocks[-1] == "conv5_block3"
    head_only = sum(np.prod(w.shape) for w in model.trainable_weights)
    one = endtoend.set_trainable_blocks(model, 1)
    trainable_layers = {layer.name for layer in backbone.layers if layer.trainable_weights}
    assert trainable_layers and all(name.startswith("conv5_block3_") for name in trainable_layers)
    assert not any(name.endswith("_bn") for name in trainable_layers), "batch normalisation stays frozen"
    two = endtoend.set_trainable_blocks(model, 2)
    everything = endtoend.set_trainable_blocks(model, "all")
    assert head_only < one < two < everything
    assert backbone.get_layer("conv1_conv").trainable
    assert endtoend.set_trainable_blocks(model, 0) == head_only
    with pytest.raises(ValueError, match="blocks must be"):
        endtoend.set_trainable_blocks(model, 17)


def test_bfloat16_model_computes_in_bfloat16_with_float32_weights_and_output():
    import keras

    model = endtoend.build_model(3, image_size=32, input_size=32, dense_units=8, precision="bfloat16")
    conv = model.get_layer(endtoend.BACKBONE_LAYER).get_layer("conv1_conv")
    assert conv.dtype_policy.name == "mixed_bfloat16" and conv.kernel.dtype == "float32"
    assert model.get_layer("genre").dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32", "the global policy must be restored"
    p = training.predict_padded(model, np.random.default_rng(0).normal(0, 50, (3, 32, 32, 3)).astype("float32"), 4)
    assert p.shape == (3, 3) and p.dtype == np.float32 and np.allclose(p.sum(axis=1), 1.0, atol=1e-3)
    expected = "bfloat16" if device.accelerator() == "gpu" else "float32"
    assert device.resolve_precision("auto", training=True) == expected


def test_build_model_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="input_size >= 32"):
        endtoend.build_model(3, image_size=32, input_size=16)
    with pytest.raises(ValueError, match="at least 2 classes"):
        endtoend.build_model(1, image_size=32, input_size=32)
    with pytest.raises(FileNotFoundError, match="weights file"):
        endtoend.build_model(3, image_size=32, input_size=32, weights=str(tmp_path / "missing.weights.h5"))


# ---------------------------------------------------------------- training

@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_two_phase_training_record(tiny):
    result = tiny["result"]
    history = result.history
    assert history["phase"].tolist() == ["head", "finetune"]
    assert history["epoch"].tolist() == [1, 2]
    assert np.isfinite(history[["loss", "accuracy", "val_loss", "val_accuracy", "seconds"]].to_numpy()).all()
    assert result.classes == list(CLASSES)
    training = result.meta["training"]
    assert training["split"] == {"train": 18, "valid": 9, "test": 9}
    assert set(training["seconds"]) == {"head", "finetune"} and training["seconds_total"] > 0
    assert result.meta["image_params"] == asdict(TINY_PARAMS)
    assert result.meta["weights"] == "random-init-seed0" and result.meta["synthetic"] is True


@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_finetuning_changes_only_the_top_block_and_keeps_batchnorm_statistics(tiny):
    trained = tiny["result"].model.get_layer(endtoend.BACKBONE_LAYER)
    fresh = endtoend.build_model(3, image_size=32, input_size=32, weights=None, dense_units=16,
                                 seed=0).get_layer(endtoend.BACKBONE_LAYER)

    def same(name, index=0):
        return np.array_equal(trained.get_layer(name).get_weights()[index], fresh.get_layer(name).get_weights()[index])

    assert same("conv1_conv") and same("conv4_block6_3_conv"), "frozen blocks must not change"
    assert not same("conv5_block3_1_conv"), "the unfrozen top block must learn"
    # BatchNormalization weights: gamma, beta, moving mean, moving variance
    assert all(same("conv5_block3_1_bn", i) for i in range(4)), "BN must stay frozen, in inference mode"


@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_training_is_cached_and_the_cached_model_predicts_the_same(tiny):
    started = time.perf_counter()
    again = endtoend.train_end_to_end(tiny["image_set"], tiny["split"], settings=TINY, cache_root=tiny["cache"],
                                      progress=False)
    assert time.perf_counter() - started < tiny["seconds"]
    assert again.root == tiny["result"].root
    pd.testing.assert_frame_equal(again.history, tiny["result"].history, check_dtype=False)
    rows = np.arange(6)
    p1, _ = training.predict_rows(tiny["result"].model, tiny["image_set"], rows, batch_size=4, progress=False)
    p2, _ = training.predict_rows(again.model, tiny["image_set"], rows, batch_size=4, progress=False)
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_another_setting_or_split_is_another_cache_entry(tiny):
    key = endtoend.train_cache_key(tiny["image_set"], tiny["split"], TINY)
    other_split = splits.make_split(tiny["image_set"].segments, "track", seed=1, fractions=(0.5, 0.25, 0.25))
    assert endtoend.train_cache_key(tiny["image_set"], other_split, TINY) != key
    assert endtoend.train_cache_key(tiny["image_set"], tiny["split"], replace(TINY, finetune_blocks=2)) != key
    # feeding threads change speed, not the model
    assert endtoend.train_cache_key(tiny["image_set"], tiny["split"], replace(TINY, workers=3)) == key


@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_training_refuses_a_split_without_validation(tiny):
    split = tiny["split"].replace("valid", "train")
    with pytest.raises(ValueError, match="'train' and 'valid'"):
        endtoend.train_end_to_end(tiny["image_set"], split, settings=TINY, cache_root=tiny["cache"])
    with pytest.raises(ValueError, match="entries for"):
        endtoend.train_end_to_end(tiny["image_set"], tiny["split"][:-1], settings=TINY, cache_root=tiny["cache"])


@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_evaluation_scores_the_test_split_once(tiny, monkeypatch):
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score

    from genrestudy.networks import training

    calls = []
    original = training.predict_rows
    monkeypatch.setattr(training, "predict_rows", lambda model, image_set, rows, **kw: calls.append(list(rows))
                        or original(model, image_set, rows, **kw))
    image_set, split = tiny["image_set"], np.asarray(tiny["split"])
    out = endtoend.evaluate(tiny["result"], image_set, split, batch_size=4, progress=False)
    test_rows = np.flatnonzero(split == "test")
    assert calls == [test_rows.tolist()]  # one prediction pass, over the test rows only
    assert out["rows"].tolist() == test_rows.tolist() and out["proba"].shape == (9, 3)
    truth = image_set.labels[test_rows]
    np.testing.assert_array_equal(out["y_pred"], out["proba"].argmax(axis=1))
    assert out["scores"]["accuracy"] == pytest.approx(accuracy_score(truth, out["y_pred"]))
    assert out["scores"]["f1_weighted"] == pytest.approx(
        f1_score(truth, out["y_pred"], average="weighted", labels=[0, 1, 2], zero_division=0))
    tracks = pd.DataFrame(out["proba"]).groupby(image_set.segments["track_id"].to_numpy()[test_rows])
    track_truth = pd.Series(truth).groupby(image_set.segments["track_id"].to_numpy()[test_rows]).first()
    assert out["scores"]["track_accuracy"] == pytest.approx(
        (tracks.mean().to_numpy().argmax(1) == track_truth.to_numpy()).mean())
    assert out["seconds_per_image"] > 0


# ---------------------------------------------------------------- model files

@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_saved_model_carries_label_order_and_preprocessing(tiny, tmp_path):
    path = tiny["result"].save(tmp_path / "model.keras")
    with zipfile.ZipFile(path) as archive:
        assert {"config.json", "model.weights.h5", modelfile.HEADER_ENTRY} <= set(archive.namelist())
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert "optimizer" not in weights, "the optimizer state would only make the file bigger"
    header = modelfile.read_header(path)
    assert header["kind"] == "end-to-end" and header["classes"] == list(CLASSES)
    assert ImageParams(**header["image_params"]) == TINY_PARAMS
    assert "preprocess_input" in header["preprocessing"] and header["input_size"] == 32
    model, meta = modelfile.load_keras_model(path)
    assert meta == header and model.output.shape[-1] == 3
    with pytest.raises(ValueError, match=".keras"):
        tiny["result"].save(tmp_path / "model.h5")


@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_a_plain_keras_file_is_not_one_of_ours(tiny, tmp_path):
    plain = tmp_path / "plain.keras"
    tiny["result"].model.save(plain)
    with pytest.raises(modelfile.ModelFileError, match="^not a genrestudy model: .*Keras model without"):
        modelfile.load_keras_model(plain)


# ---------------------------------------------------------------- figures

@pytest.mark.slow  # shares one tiny two-phase training run (~30 s)
def test_training_curves_and_sample_grids(tiny):
    fig = plots.plot_training_curves(tiny["result"].history)
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy", "loss"]
    assert all(len(ax.get_lines()) >= 2 for ax in fig.axes)
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 2])
    right = endtoend.pick_samples(y_true, y_pred, correct=True, n=3)
    wrong = endtoend.pick_samples(y_true, y_pred, correct=False, n=10)
    assert (y_true[right] == y_pred[right]).all() and len(set(y_true[right])) == 3
    assert sorted(wrong.tolist()) == [1, 4]
    fig = plots.plot_sample_grid(tiny["image_set"], right, y_true[right], y_pred[right], classes=list(CLASSES),
                                    title="correct")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3 and all(t.startswith("True: ") and "\nPred: " in t for t in titles)
