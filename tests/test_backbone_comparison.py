"""Neighbouring study 3: dense heads on cached features, the backbone comparison, its methods in Table 7."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from genrestudy import methods, paths
from genrestudy.extractors import backbones, features, musicnn_weights
from genrestudy.networks import heads
from genrestudy.report import backbone_comparison, plots, table7
from genrestudy.run import profiles, study
from genrestudy.methods import frozen_backbones
from genrestudy.methods import musicnn as musicnn_methods

SMALL = 32  # the smallest input MobileNetV2 and EfficientNetB0 accept; fast enough for tests


def _tiny_inputs(root, **changes) -> study.StudyInputs:
    """Inputs of a generated 3-genre data set: 2 segments per clip, 64-px images, a small head grid."""
    settings = dict(data=str(root), n_segments=2, image_size=64, protocol="track", budget=2, seeds=(0,),
                    num_boost_round=5, early_stopping_rounds=None, compared_backbones=("MobileNetV2",),
                    compared_input_sizes=(SMALL,), head_batch_sizes=(8,), head_learning_rates=(0.01, 0.001))
    return study.StudyInputs(**{**settings, **changes})


@pytest.fixture
def tiny_set(study_dirs, tmp_path):
    from conftest import make_dataset

    return make_dataset(tmp_path / "set", genres=("blues", "rock", "jazz"), clips=10, seconds=7.0)


# ---------------------------------------------------------------- heads on cached features

def test_a_head_on_cached_features_predicts_as_the_head_on_the_frozen_backbone():
    # the backbone is frozen and the images are not augmented, so training the head on cached
    # features must be the same computation as training it on top of the backbone
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, SMALL, SMALL), dtype=np.uint8)
    labels = np.arange(30) % 3
    images[labels == 1, : SMALL // 2] //= 4  # something for the head to learn
    train, valid = np.arange(20), np.arange(20, 30)
    backbone = backbones.build_backbone("MobileNetV2", input_size=SMALL, precision="float32", seed=0)
    cached = features.stream_features(backbone, images, backbone="MobileNetV2", batch_size=8, progress=False)
    frozen_before = [w.copy() for w in backbone.get_weights()]
    settings = dict(learning_rate=0.01, batch_size=8, epochs=3, seed=3)

    on_features = heads.train_head(cached[train], labels[train], cached[valid], labels[valid], n_classes=3, **settings)

    keras.utils.set_random_seed(settings["seed"])
    head = heads.build_head(cached[train], 3, seed=settings["seed"])
    untrained = heads.predict_head(head, cached[valid])
    end_to_end = keras.Model(backbone.input, head(backbone.output))

    def rgb(rows):
        return backbones.preprocess_images(np.repeat(images[rows][..., None], 3, axis=-1), backbone="MobileNetV2")

    heads.fit_batches(end_to_end, lambda rows: rgb(train[rows]), labels[train], learning_rate=0.01, batch_size=8,
                      epochs=3, seed=3)
    through_backbone = keras.ops.convert_to_numpy(end_to_end(rgb(valid), training=False))

    np.testing.assert_allclose(on_features.predict_proba(cached[valid]), through_backbone, atol=1e-4)
    assert np.abs(untrained - through_backbone).max() > 1e-2  # the heads did train
    assert all(np.array_equal(a, b) for a, b in zip(frozen_before, backbone.get_weights()))
    assert len(on_features.losses) == 3 * 3  # 3 epochs of ceil(20 / 8) batches


def test_batch_order_is_a_seeded_permutation_per_epoch():
    steps = heads.batch_order(10, batch_size=4, epochs=2, seed=5)
    assert [len(s) for s in steps] == [4, 4, 2, 4, 4, 2]
    assert sorted(np.concatenate(steps[:3])) == list(range(10)) == sorted(np.concatenate(steps[3:]))
    again = heads.batch_order(10, batch_size=4, epochs=2, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(steps, again))
    assert not np.array_equal(np.concatenate(steps), np.concatenate(heads.batch_order(10, batch_size=4, epochs=2,
                                                                                      seed=6)))
    with pytest.raises(ValueError, match="batch_size"):
        heads.batch_order(10, batch_size=0, epochs=1)


def test_the_head_grid_selects_on_validation_macro_f1_and_retrains_the_winner():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 6)).astype(np.float32) * 1e-11  # a random-init backbone's scale
    x[:, 0] += 6e-11 * (y == 1)
    x[:, 1] += 6e-11 * (y == 2)
    noise = rng.normal(size=(90, 6)).astype(np.float32)  # an input size whose features carry nothing
    train, valid = np.arange(90) % 3 != 0, np.arange(90) % 3 == 0
    search = heads.search_heads({64: (noise[train], noise[valid]), 96: (x[train], x[valid])}, y[train], y[valid],
                                batch_sizes=(8, 16), learning_rates=(0.05, 0.0001), seed=0)
    assert len(search.trials) == 8 and set(search.trials["input_size"]) == {64, 96}
    assert search.best["input_size"] == 96 and search.best["epochs"] == heads.FINAL_EPOCHS
    assert search.final.valid_f1_macro > 0.9
    assert set(search.trials["epochs"]) == {heads.TRIAL_EPOCHS}
    assert search.tuning_seconds == pytest.approx(search.trials["seconds"].sum())
    with pytest.raises(ValueError, match="aligned"):
        heads.train_head(x[:5], y[:4], x[:5], y[:5], learning_rate=0.01, batch_size=4, epochs=1)


# ---------------------------------------------------------------- the study's inputs

def test_a_changed_backbone_reaches_the_features_notebook_03_tunes_on(tiny_set):
    code = "\n".join("".join(c["source"]) for c in json.loads(
        (paths.project_root() / "notebooks" / "03_tune_lightgbm.ipynb").read_text())["cells"])
    assert "study.feature_set(inputs" in code  # notebook 03 tunes on the inputs' features
    given = profiles.notebook_parameters("demo", "03_tune_lightgbm", {"backbone": "EfficientNetB0"})
    assert given["backbone"] == "EfficientNetB0"
    base = _tiny_inputs(tiny_set, input_size=SMALL, backbone="MobileNetV2")
    changed = study.StudyInputs.from_parameters({**base.as_dict(), **given, "data": str(tiny_set)})
    image_set = study.image_set(changed)
    found = study.feature_set(changed, image_set, progress=False)
    assert found.meta["backbone"] == "EfficientNetB0" and found.meta["image_cache"] == image_set.key
    default_entry = backbone_comparison.feature_entry(base, image_set, "MobileNetV2", SMALL)
    assert found.root.name == backbone_comparison.feature_entry(changed, image_set, "EfficientNetB0", SMALL).name
    assert found.root.name != default_entry.name


def test_comparison_inputs_are_validated_in_one_line():
    assert study.StudyInputs(compared_backbones=["Xception"], compared_input_sizes=[300]).compared_backbones == (
        "Xception",)
    with pytest.raises(ValueError, match="compared_backbones=\\('VGG16',\\)"):
        study.StudyInputs(compared_backbones=("VGG16",))
    with pytest.raises(ValueError, match="compared_input_sizes has 64, below what Xception accept"):
        study.StudyInputs(compared_backbones=("Xception",), compared_input_sizes=(64,))
    with pytest.raises(ValueError, match="head_learning_rates=\\(\\)"):
        study.StudyInputs(head_learning_rates=())


def test_backbone_methods_take_part_in_table7_only_for_compared_backbones():
    default = study.StudyInputs()
    keys = [m.key for m in methods.registered(default)]
    for backbone in backbones.BACKBONES:
        head, lightgbm = frozen_backbones.method_keys(backbone)
        assert head in methods.REGISTRY and lightgbm in methods.REGISTRY
        assert (head in keys) == (lightgbm in keys) == (backbone in default.compared_backbones)
    assert methods.REGISTRY["frozen_xception_dense_head"].name == "frozen Xception + dense head"
    everything = (*backbones.BACKBONES, *backbones.MUSIC_TAGGERS)
    paper = study.StudyInputs(compared_backbones=everything, compared_input_sizes=(300,))
    left_out = {m.key for m in methods.registered()} - {m.key for m in methods.registered(paper)}
    if musicnn_weights.available():  # without them the taggers' methods step aside (one logged line)
        assert not left_out
    else:
        assert left_out == {k for m in backbones.MUSIC_TAGGERS for k in musicnn_methods.method_keys(m)}
    assert len(methods.registered(paper)) > len(keys)
    assert profiles.AUDIT_INPUTS["compared_backbones"] == list(everything)


def test_a_music_tagger_is_a_compared_extractor_and_its_methods_follow_the_list():
    only_images = study.StudyInputs(compared_backbones=("MobileNetV2",))
    with_tagger = study.StudyInputs(compared_backbones=("MobileNetV2", "MSD_musicnn"))
    msd = set(musicnn_methods.method_keys("MSD_musicnn"))
    assert not msd & {m.key for m in methods.registered(only_images)}
    assert (msd <= {m.key for m in methods.registered(with_tagger)}) == musicnn_weights.available()
    assert backbone_comparison.music_taggers(only_images) == ([], [])
    assert backbone_comparison.image_backbones(with_tagger.with_(compared_backbones=("MSD_musicnn",)), None) == ([], [])


# ---------------------------------------------------------------- the comparison, end to end

def test_the_comparison_measures_each_backbone_and_tabulates_both_ways(tiny_set, study_dirs):
    inputs = _tiny_inputs(tiny_set)
    image_set = study.image_set(inputs)
    extractors, skipped = backbone_comparison.image_backbones(inputs, image_set, progress=False)
    assert skipped == [] and [e.name for e in extractors] == ["MobileNetV2"]
    cost = extractors[0].cost[SMALL]
    assert cost["images"] == len(image_set) and cost["images_per_second"] > 0
    assert cost["peak_rss_mb"] > cost["rss_before_mb"] > 0  # a fresh process: its imports, then the extraction
    assert 2.0 < extractors[0].parameters_millions < 2.5  # MobileNetV2 without its top: about 2.26 M
    # the extraction process left the features in the study's cache, where the methods read them
    assert backbone_comparison.feature_entry(inputs, image_set, "MobileNetV2", SMALL).joinpath("meta.json").is_file()

    data, split = methods.StudyData(inputs, image_set), study.split(inputs, image_set.segments)
    rows, details = backbone_comparison.run_comparison(extractors, data, split, protocol="track", n_resamples=20,
                                                       progress=False)
    table = backbone_comparison.comparison_table(extractors, rows, details)
    ours = table[table["source"] == table7.OUR_SOURCE]
    assert list(ours["way"]) == list(backbone_comparison.WAYS.values())
    assert set(ours["weights"]) == {"random init (no ImageNet weights)"}
    assert (ours["input_size"] == SMALL).all() and (ours["tuning_seconds"] > 0).all()
    assert ours["f1_macro"].between(0, 100).all() and ours["peak_rss_mb"].notna().all()
    theirs = table[table["source"] == backbone_comparison.SOURCE_LABEL].set_index("backbone")
    assert theirs.loc["EfficientNetB7", "f1_macro"] == 92.2 and theirs.loc["Xception", "tuning_seconds"] == 1662
    assert theirs["weights"].str.contains("clothing photographs").all()

    # Table 7 of these inputs runs the same cached runs
    in_table7 = [m for m in methods.registered(inputs) if isinstance(m, type) and m.key in extractors[0].methods]
    runs = table7.run_methods(data, split, in_table7, progress=False)
    assert set(runs) == set(extractors[0].methods)
    np.testing.assert_array_equal(runs[extractors[0].methods[0]].proba,
                                  methods.run_method(extractors[0].methods[0], data, split).proba)

    curve = backbone_comparison.f1_by_input_size(extractors, details)
    assert list(curve.columns) == ["backbone", "input_size", "valid_f1_macro"] and len(curve) == 1
    for fig in (plots.plot_f1_vs_cost(table, stamp="random init"), plots.plot_f1_vs_input_size(curve)):
        assert fig.axes and fig.axes[0].get_xlabel()
    memory = backbone_comparison.memory_summary(extractors)
    assert bool(memory.loc[0, "within_limit"]) == (memory.loc[0, "peak_rss_mb"] <= 1536)
    assert memory["weights"].tolist() == [e.weights for e in extractors]  # each extractor's own weights


def test_a_backbone_without_weights_is_skipped_in_one_line_but_the_studys_own_is_required(tiny_set, monkeypatch,
                                                                                           tmp_path):
    monkeypatch.setattr(backbones, "_keras_models_dir", lambda: tmp_path / "keras" / "models")
    inputs = _tiny_inputs(tiny_set, weights="imagenet", backbone="MobileNetV2",
                          compared_backbones=("EfficientNetB0", "MobileNetV2"))
    problem = backbone_comparison.weights_problem(inputs, "EfficientNetB0", SMALL)
    assert problem == f"efficientnetb0_notop.h5 is not in {tmp_path / 'keras' / 'models'}"

    def offline(inputs, image_set, backbone, input_size):
        raise FileNotFoundError(f"ImageNet weights for {backbone} are not in the Keras cache; place ... there")

    monkeypatch.setattr(backbone_comparison, "measure_extraction", offline)
    with pytest.raises(FileNotFoundError, match="ImageNet weights for MobileNetV2"):
        backbone_comparison.image_backbones(inputs, None, progress=False)
    others = inputs.with_(backbone="ResNet50")  # neither compared backbone is the study's now
    present = backbones.imagenet_weights_path("MobileNetV2", SMALL)
    present.parent.mkdir(parents=True)
    present.write_bytes(b"")  # there, but the extraction still fails: skipped with the failure's line
    extractors, skipped = backbone_comparison.image_backbones(others, None, progress=False)
    assert extractors == [] and skipped == [
        f"EfficientNetB0 skipped: {problem}",
        "MobileNetV2 skipped: ImageNet weights for MobileNetV2 are not in the Keras cache; place ... there"]
