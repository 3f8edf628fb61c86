"""LightGBM on pre-binned data: one binning, correct scores, reused safely by many fits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from genrestudy.models import classifiers
from genrestudy.models.classifiers import TrainingData, fit_lightgbm, lightgbm_params, predict_proba, training_data

PARAMS = {"num_leaves": 16, "max_depth": 4, "min_child_samples": 20, "learning_rate": 0.1, "reg_alpha": 2.0,
          "reg_lambda": 5.0, "bagging_fraction": 0.8, "feature_fraction": 0.8}


@pytest.fixture(scope="module")
def data() -> TrainingData:
    X, y = make_classification(n_samples=400, n_features=20, n_informative=8, n_classes=3, random_state=0)
    split = np.where(np.arange(400) < 300, "train", np.where(np.arange(400) < 350, "valid", "test"))
    return training_data(X, y, split, max_bin=63)


def test_training_data_cuts_split_and_leaves_test_out(data):
    assert data.X_train.shape == (300, 20) and data.X_valid.shape == (50, 20)
    assert data.X_train.dtype == np.float32 and data.num_class == 3


def test_validation_accuracy_matches_prediction_at_best_iteration(data):
    fit = fit_lightgbm(data, PARAMS, num_boost_round=40, early_stopping_rounds=5, keep_model=True)
    pred = predict_proba(fit.booster, data.X_valid).argmax(axis=1)
    assert fit.valid_accuracy == pytest.approx((pred == data.y_valid).mean())
    assert 1 <= fit.best_iteration <= 40
    assert fit.valid_accuracy > 0.5  # 3 informative-feature classes: far above chance (1/3)


def test_binning_happens_once_and_is_reused(data, monkeypatch):
    data.datasets()
    calls = []
    original = classifiers.lgb.Dataset.construct

    def counting(self):
        if self._handle is None:
            calls.append(self.used_indices is None)
        return original(self)

    monkeypatch.setattr(classifiers.lgb.Dataset, "construct", counting)
    for leaves, child in ((16, 20), (32, 50), (24, 30)):  # min_child_samples changes must not re-bin
        fit_lightgbm(data, {**PARAMS, "num_leaves": leaves, "min_child_samples": child}, num_boost_round=3)
    assert calls == []


def test_reused_dataset_gives_same_model_as_fresh_binning(data):
    fit = fit_lightgbm(data, PARAMS, num_boost_round=15, early_stopping_rounds=None, keep_model=True)
    import lightgbm as lgb

    params = lightgbm_params(PARAMS, num_class=3, seed=0, num_threads=1)
    fresh = lgb.train({**params, "max_bin": 63, "min_data_in_bin": 3},
                      lgb.Dataset(data.X_train, data.y_train), num_boost_round=15)
    np.testing.assert_allclose(predict_proba(fit.booster, data.X_valid), fresh.predict(data.X_valid), rtol=1e-6)


def test_curve_and_subset(data):
    fit = fit_lightgbm(data, PARAMS, num_boost_round=10, early_stopping_rounds=None, record_curve=True, n_rows=90)
    assert fit.n_rows == 90
    assert list(fit.curve.columns) == ["iteration", "train_logloss", "valid_logloss", "valid_accuracy"]
    assert len(fit.curve) == 10 and fit.curve["train_logloss"].is_monotonic_decreasing
    idx = data.row_subset(90, seed=1)
    assert len(np.unique(idx)) == 90 and set(np.bincount(data.y_train[idx])) <= {29, 30, 31}


def test_bad_input_is_rejected(data):
    with pytest.raises(ValueError, match="binned"):
        lightgbm_params({"max_bin": 15}, num_class=3)
    with pytest.raises(ValueError, match="'train' and 'valid'"):
        training_data(np.zeros((4, 2)), np.array([0, 1, 0, 1]), pd.Series(["train"] * 4))
    with pytest.raises(ValueError, match="labels must lie"):
        TrainingData(np.zeros((4, 2)), np.array([0, 1, 2, 1]), np.zeros((2, 2)), np.array([0, 1]), num_class=2)
    with pytest.raises(ValueError, match="num_boost_round"):
        fit_lightgbm(data, PARAMS, num_boost_round=0)


def test_continued_fit_equals_a_fresh_fit_without_sampling(data):
    # no bagging, no feature sampling: nothing random, so 4 rounds + 8 more == 12 rounds from scratch
    params = {**PARAMS, "bagging_fraction": 1.0, "feature_fraction": 1.0}
    short = fit_lightgbm(data, params, num_boost_round=4, early_stopping_rounds=None, keep_state=True)
    assert short.state.rounds == 4 and len(short.state.models) == 1
    longer = fit_lightgbm(data, params, num_boost_round=12, early_stopping_rounds=None, resume=short.state,
                          keep_state=True)
    fresh = fit_lightgbm(data, params, num_boost_round=12, early_stopping_rounds=None, keep_state=True)
    assert longer.start_round == 4 and fresh.start_round == 0
    np.testing.assert_allclose(longer.state.logloss, fresh.state.logloss, rtol=1e-9)
    assert longer.valid_accuracy == fresh.valid_accuracy and longer.best_iteration == fresh.best_iteration
    np.testing.assert_allclose(longer.state.raw_scores(data.X_valid)[0], fresh.state.raw_scores(data.X_valid)[0],
                               rtol=1e-9, atol=1e-12)


def test_continued_fit_keeps_its_early_stopping_and_draws_new_bags(data):
    # with sampling the continued rounds are a new draw (not a replay of the first rounds' bags)
    short = fit_lightgbm(data, PARAMS, num_boost_round=3, early_stopping_rounds=None, keep_state=True)
    longer = fit_lightgbm(data, PARAMS, num_boost_round=6, early_stopping_rounds=None, resume=short.state,
                          keep_state=True)
    assert longer.state.logloss[:3] == short.state.logloss and longer.state.rounds == 6
    assert classifiers.segment_seed(0, 0) == 0 and classifiers.segment_seed(0, 3) != 0
    # a fit that early-stopped is scored from its history: no training, the same answer as before
    stopping = {**PARAMS, "learning_rate": 0.3}
    stopped = fit_lightgbm(data, stopping, num_boost_round=200, early_stopping_rounds=3, keep_state=True)
    assert stopped.state.stopped and stopped.state.rounds < 200
    again = fit_lightgbm(data, stopping, num_boost_round=400, early_stopping_rounds=3, resume=stopped.state,
                         keep_state=True)
    assert again.state is not None and again.state.models == stopped.state.models
    assert (again.best_iteration, again.valid_accuracy) == (stopped.best_iteration, stopped.valid_accuracy)
    # the early-stopping memory spans segments: the best round may lie in the first one
    first = fit_lightgbm(data, stopping, num_boost_round=stopped.best_iteration + 1, early_stopping_rounds=3,
                         keep_state=True)
    resumed = fit_lightgbm(data, stopping, num_boost_round=400, early_stopping_rounds=3, resume=first.state)
    assert resumed.best_iteration == first.best_iteration or resumed.best_iteration > first.state.rounds
    assert resumed.valid_logloss <= first.valid_logloss


def test_continuing_another_fit_is_refused(data):
    short = fit_lightgbm(data, PARAMS, num_boost_round=2, keep_state=True)
    with pytest.raises(ValueError, match="another configuration"):
        fit_lightgbm(data, {**PARAMS, "num_leaves": 24}, num_boost_round=4, resume=short.state)
    with pytest.raises(ValueError, match="another configuration"):
        fit_lightgbm(data, PARAMS, num_boost_round=4, resume=short.state, seed=1)
    with pytest.raises(ValueError, match="continued fit"):
        fit_lightgbm(data, PARAMS, num_boost_round=4, resume=short.state, keep_model=True)


def test_training_options_reach_every_fit_and_the_key(data):
    quantized = TrainingData(data.X_train, data.y_train, data.X_valid, data.y_valid, num_class=3, max_bin=63,
                             training=classifiers.TRAINING_LEVERS["quantized"])
    row_wise = TrainingData(data.X_train, data.y_train, data.X_valid, data.y_valid, num_class=3, max_bin=63,
                            training=classifiers.TRAINING_LEVERS["row_wise"])
    # other options, another key: a cached search made without them is never served for them
    assert len({data.key, quantized.key, row_wise.key}) == 3
    plain = fit_lightgbm(data, PARAMS, num_boost_round=15, early_stopping_rounds=None, keep_model=True)
    # row-wise histograms change the speed, not the model
    same = fit_lightgbm(row_wise, PARAMS, num_boost_round=15, early_stopping_rounds=None, keep_model=True)
    np.testing.assert_allclose(predict_proba(same.booster, data.X_valid), predict_proba(plain.booster, data.X_valid),
                               rtol=1e-6)
    assert same.booster.params["force_row_wise"] and not same.booster.params["force_col_wise"]
    # quantized gradients change the fits a little: the option reached LightGBM
    other = fit_lightgbm(quantized, PARAMS, num_boost_round=15, early_stopping_rounds=None, keep_model=True)
    assert other.booster.params["use_quantized_grad"]
    assert not np.allclose(predict_proba(other.booster, data.X_valid), predict_proba(plain.booster, data.X_valid))
    assert abs(other.valid_accuracy - plain.valid_accuracy) <= 0.1
    params = lightgbm_params(PARAMS, num_class=3, training=classifiers.TRAINING_LEVERS["quantized"])
    assert params["num_grad_quant_bins"] == 4 and params["force_col_wise"]
    with pytest.raises(ValueError, match="training options may not set"):
        TrainingData(data.X_train, data.y_train, data.X_valid, data.y_valid, num_class=3, training={"max_bin": 15})


def test_a_fit_scores_the_same_on_any_number_of_threads():
    # defect: LightGBM's multi_logloss metric sums rows in parallel; with 2 threads instead of 1 the same
    # trees scored differently in the last bits (about 1e-15), so a score depended on where the fit ran
    X, y = make_classification(n_samples=1500, n_features=64, n_informative=12, n_classes=5, random_state=0)
    data = TrainingData(X[:1000], y[:1000], X[1000:], y[1000:], num_class=5)
    params = {"num_leaves": 16, "max_depth": 5, "learning_rate": 0.1, "bagging_fraction": 0.7}
    one, two = (fit_lightgbm(data, params, num_boost_round=40, early_stopping_rounds=10, num_threads=n,
                             record_curve=True, keep_model=True) for n in (1, 2))
    assert one.valid_logloss == two.valid_logloss and one.best_iteration == two.best_iteration
    pd.testing.assert_frame_equal(one.curve, two.curve, check_exact=True)
    proba = predict_proba(one.booster, X[1000:])  # and it is LightGBM's multi_logloss, computed in order
    assert one.valid_logloss == pytest.approx(np.mean(-np.log(proba[np.arange(500), y[1000:]])), rel=1e-12)
