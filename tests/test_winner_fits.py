"""A search winner's refit and retrain are trained once and read back (notebook 09 reuses notebook 03's)."""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from genrestudy.models import classifiers, tuning, winner_fits
from genrestudy.models.classifiers import training_data


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=360, n_features=16, n_informative=6, n_classes=3, random_state=1)
    split = np.where(np.arange(360) < 240, "train", np.where(np.arange(360) < 300, "valid", "test"))
    return training_data(X, y, split, max_bin=31), X[split == "test"]


@pytest.fixture
def counted_rounds(monkeypatch):
    """How many boosting rounds LightGBM trains from here on."""
    rounds = {"n": 0}
    update = lgb.Booster.update

    def counting(self, *args, **kwargs):
        rounds["n"] += 1
        return update(self, *args, **kwargs)

    monkeypatch.setattr(lgb.Booster, "update", counting)
    return rounds


def _search(data, tmp_path):
    return tuning.cached_search(data, "random", budget=2, seed=0, num_boost_round=8, early_stopping_rounds=3,
                                n_jobs=1, progress=False, cache_root=tmp_path)


def test_a_second_refit_and_retrain_are_read_back_not_trained(data, tmp_path, counted_rounds):
    train, X_test = data
    result = _search(train, tmp_path)
    first = tuning.refit_winner(train, result, cache_root=tmp_path)
    retrained = tuning.retrain_winner(train, result, num_boost_round=8, seed=1, early_stopping_rounds=3,
                                      cache_root=tmp_path)
    trained = counted_rounds["n"]
    assert trained > 0
    again = tuning.refit_winner(train, result, cache_root=tmp_path)
    retrained_again = tuning.retrain_winner(train, result, num_boost_round=8, seed=1, early_stopping_rounds=3,
                                            cache_root=tmp_path)
    assert counted_rounds["n"] == trained  # nothing trained the second time
    for fresh, cached in ((first, again), (retrained, retrained_again)):
        assert cached.best_iteration == fresh.best_iteration == cached.booster.best_iteration
        assert cached.valid_accuracy == fresh.valid_accuracy and cached.fit_seconds == fresh.fit_seconds
        np.testing.assert_array_equal(classifiers.predict_proba(cached.booster, X_test),
                                      classifiers.predict_proba(fresh.booster, X_test))
    pd.testing.assert_frame_equal(retrained_again.curve, retrained.curve)
    assert again.curve is None


def test_the_cached_fit_is_the_fit_itself(data, tmp_path):
    train, X_test = data
    result = _search(train, tmp_path)
    cached = tuning.refit_winner(train, result, cache_root=tmp_path)
    settings = result.settings
    direct = classifiers.fit_lightgbm(train, result.best_params, num_boost_round=int(settings["num_boost_round"]),
                                      early_stopping_rounds=settings["early_stopping_rounds"],
                                      seed=int(settings["seed"]), keep_model=True)
    assert cached.best_iteration == direct.best_iteration
    np.testing.assert_array_equal(classifiers.predict_proba(cached.booster, X_test),
                                  classifiers.predict_proba(direct.booster, X_test))


def test_another_seed_or_rounds_is_another_entry(data, tmp_path, counted_rounds):
    train, _ = data
    result = _search(train, tmp_path)
    tuning.retrain_winner(train, result, num_boost_round=8, seed=1, early_stopping_rounds=3, cache_root=tmp_path)
    before = counted_rounds["n"]
    tuning.retrain_winner(train, result, num_boost_round=8, seed=2, early_stopping_rounds=3, cache_root=tmp_path)
    assert counted_rounds["n"] > before
    before = counted_rounds["n"]
    tuning.retrain_winner(train, result, num_boost_round=6, seed=1, early_stopping_rounds=3, cache_root=tmp_path)
    assert counted_rounds["n"] > before


@pytest.mark.parametrize("damage", ["booster_bytes", "booster_consistent", "other_data"])
def test_a_damaged_or_foreign_entry_is_rebuilt_not_trusted(data, tmp_path, damage, counted_rounds):
    train, X_test = data
    result = _search(train, tmp_path)
    fresh = tuning.refit_winner(train, result, cache_root=tmp_path)
    key = winner_fits.fit_key(train, result.best_params, num_boost_round=int(result.settings["num_boost_round"]),
                              early_stopping_rounds=result.settings["early_stopping_rounds"],
                              seed=int(result.settings["seed"]), record_curve=False)
    entry = tmp_path / "winner-fits" / key
    booster_file = entry / "booster.txt"
    if damage == "booster_bytes":  # changed bytes: the cache's CRC check refuses it
        booster_file.write_bytes(booster_file.read_bytes()[:-200])
    else:  # files and record consistent, but the model text is not this fit's: the entry's own checks refuse it
        if damage == "booster_consistent":
            booster_file.write_bytes(b"not a model\n")
        else:
            X, y = make_classification(n_samples=120, n_features=5, n_classes=2, random_state=0)
            other = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), num_boost_round=3)
            booster_file.write_text(other.model_to_string())
        from genrestudy import cache

        cache.finish(entry, {k: v for k, v in cache.read_meta(entry).items() if k != "files"})
    before = counted_rounds["n"]
    rebuilt = tuning.refit_winner(train, result, cache_root=tmp_path)
    assert counted_rounds["n"] > before  # retrained, not read
    np.testing.assert_array_equal(classifiers.predict_proba(rebuilt.booster, X_test),
                                  classifiers.predict_proba(fresh.booster, X_test))
