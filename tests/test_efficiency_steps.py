"""The steps Table 8 measures: each runs alone, from the caches of its inputs, never from its own."""
from __future__ import annotations

import numpy as np
import pytest

from genrestudy import device, efficiency
from genrestudy.data import splits
from genrestudy.extractors import features
from genrestudy.networks import endtoend
from genrestudy.report import efficiency_steps, table8
from genrestudy.run import study

from conftest import make_dataset

IMAGE_SIZE = 32
TINY_FIT = {"input_size": 32, "head_epochs": 1, "finetune_epochs": 0, "batch_size": 8, "dense_units": 16,
            "augment": False}


def test_limit_training_rows_keeps_a_seeded_subset_of_training_rows():
    split = np.array(["train"] * 20 + ["valid"] * 5 + ["test"] * 5, dtype=object)
    assert (efficiency_steps.limit_training_rows(split, None) == split).all()
    kept = efficiency_steps.limit_training_rows(split, 7, seed=3)
    assert (kept == "train").sum() == 7 and (kept == "unused").sum() == 13
    assert (kept[20:] == split[20:]).all()  # validation and test untouched
    assert (efficiency_steps.limit_training_rows(split, 7, seed=3) == kept).all()
    assert not (efficiency_steps.limit_training_rows(split, 7, seed=4) == kept).all()
    assert (efficiency_steps.limit_training_rows(split, 50) == split).all()
    with pytest.raises(ValueError, match="max_train_images"):
        efficiency_steps.limit_training_rows(split, 0)


def test_gpu_peak_is_none_without_a_gpu():
    if device.accelerator() == "gpu":
        pytest.skip("a GPU is present")
    assert device.gpu_peak_mb() is None


def test_gpu_peak_is_reported_under_tensorflow_too(monkeypatch):
    import keras

    if keras.config.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend's report")
    import tensorflow as tf

    monkeypatch.setattr(device, "accelerator", lambda: "gpu")
    monkeypatch.setattr(tf.config.experimental, "get_memory_info",
                        lambda name: {"current": 1, "peak": 2_500_000_000} if name == "GPU:0" else {})
    assert device.gpu_peak_mb() == 2500.0


def test_this_module_imports_no_framework_at_its_top():
    import subprocess
    import sys

    code = ("import sys, genrestudy.efficiency, genrestudy.report.efficiency_steps as s; "
            "print(sorted(set(s.FRAMEWORKS) & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A 2-genre data set of 30 s clips in isolated study folders, its images cached at 32 px."""
    base = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("data", "cache", "figures", "results"):
            mp.setenv(f"GENRESTUDY_{name.upper()}", str(base / name))
        root = make_dataset(base / "audio", genres=("blues", "rock"), clips=2, seconds=30.5)
        data_kw = {"data": str(root), "image_size": IMAGE_SIZE}
        image_set = study.image_set(study.StudyInputs(data=str(root), image_size=IMAGE_SIZE), n_jobs=1)
        yield {"base": base, "data_kw": data_kw, "image_set": image_set}


def _entries(base, kind):
    folder = base / "cache" / kind
    # entries are folders; cache.open_or_build keeps an <entry>.lock file beside each
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def test_lightgbm_step_fits_in_a_process_without_keras(tiny_study):
    inputs = study.StudyInputs(data=tiny_study["data_kw"]["data"], image_size=IMAGE_SIZE, protocol="paper",
                               early_stopping_rounds=None)
    image_set = tiny_study["image_set"]
    split = study.split(inputs, image_set.segments)
    fit_kw = {"params": table8.PAPER_TABLE4_PARAMS, "num_boost_round": 5}
    with efficiency_steps.lightgbm_step_data(inputs, image_set, split) as data:
        assert data["max_bin"] == inputs.max_bin and data["num_class"] == 2
        report = efficiency_steps.lightgbm_fit_step(**data, **fit_kw)
        measured = efficiency.measure_step("genrestudy.report.efficiency_steps:lightgbm_fit_step", {**data, **fit_kw})
        folder = data["data_dir"]
    assert not __import__("os").path.exists(folder)  # the step's arrays are removed afterwards
    assert report["train_rows"] == 32 and report["best_iteration"] == 5 and report["seconds"] > 0
    assert len(_entries(tiny_study["base"], "features")) == 1  # the input's cache, built once
    # the fit's process imports LightGBM, never Keras or TensorFlow (Table 8's RAM is LightGBM's own)
    assert measured["result"]["frameworks"] == ["lightgbm"]
    assert measured["imported"] == ["lightgbm", "genrestudy.models.classifiers"]
    assert measured["result"]["train_rows"] == 32
    assert 0 < measured["rss_before_mb"] < measured["peak_rss_mb"]


def test_keras_steps_import_keras_before_they_are_measured():
    for name in ("end_to_end_fit_step", "extraction_step"):
        assert "keras" in getattr(efficiency_steps, name).step_imports
    assert "keras" not in efficiency_steps.lightgbm_fit_step.step_imports


def test_extraction_step_computes_features_without_the_feature_cache(tiny_study):
    image_set = tiny_study["image_set"]
    cached = features.extract_features(image_set, progress=False)
    before = _entries(tiny_study["base"], "features")
    report = efficiency_steps.extraction_step(**tiny_study["data_kw"], max_images=6, batch_size=4)
    assert _entries(tiny_study["base"], "features") == before
    assert report["images"] == 6 and report["extract_seconds"] > 0
    assert report["seconds"] >= report["build_seconds"] + report["extract_seconds"] - 1e-6
    assert report["precision"] == cached.meta["precision"]
    with pytest.raises(ValueError, match="max_images"):
        efficiency_steps.extraction_step(**tiny_study["data_kw"], max_images=0)


def test_end_to_end_step_trains_from_scratch_and_caches_nothing(tiny_study):
    report = efficiency_steps.end_to_end_fit_step(**tiny_study["data_kw"], protocol="paper", settings=TINY_FIT,
                                            max_train_images=10)
    assert report["epochs"] == 1 and report["train_images"] == 10 and report["seconds"] > 0
    assert report["device"] == device.accelerator()
    assert _entries(tiny_study["base"], "endtoend") == []


def test_predictors_run_both_pipelines_at_any_batch_size(tiny_study):
    image_set = tiny_study["image_set"]
    split = splits.make_split(image_set.segments, "paper", seed=0)
    inputs = study.StudyInputs(data=tiny_study["data_kw"]["data"], image_size=IMAGE_SIZE, protocol="paper")
    with pytest.MonkeyPatch.context() as mp:  # the study's demo profile, made tiny for the test
        mp.setitem(endtoend.PROFILES, "demo", endtoend.training_settings("demo", **TINY_FIT))
        models = efficiency_steps.prediction_models(inputs, image_set, split, params=table8.PAPER_TABLE4_PARAMS,
                                                    num_boost_round=5)
    assert models["end_to_end"].kind == "end-to-end" and models["hybrid"].kind == "hybrid"
    images = image_set.images[:10]
    for name, predictor in (("end_to_end", efficiency_steps.end_to_end_predictor(models["end_to_end"])),
                            ("hybrid", efficiency_steps.hybrid_predictor(models["hybrid"]))):
        one, batch = predictor(images[:1]), predictor(images)
        assert one.shape == (1, 2) and batch.shape == (10, 2)
        assert np.allclose(batch.sum(axis=1), 1.0, atol=1e-3)
        # a batch of one gives what the model gives that image inside a whole clip
        reference = models[name].segment_probabilities(np.asarray(images))
        assert np.allclose(batch, reference, atol=2e-2) and np.allclose(one[0], reference[0], atol=2e-2)
    # the hybrid's backbone is the one whose features the booster learnt from
    vectors = features.stream_features(models["hybrid"].network, np.asarray(images), batch_size=10, progress=False)
    cached = features.extract_features(image_set, progress=False).features[:10]
    assert np.allclose(vectors, cached, rtol=5e-2, atol=5e-2)
