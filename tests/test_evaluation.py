"""Metrics, confusion matrices, per-genre report, track-level votes and intervals."""
from __future__ import annotations

import numpy as np
import pytest

from genrestudy.report import evaluation, plots

CLASSES = ["blues", "classical", "rock"]


def test_metrics_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    m = evaluation.classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["n"] == 8
    # per class: precision 3/4, 2/3, 1; recall 3/4, 1, 1/2; supports 4, 2, 2
    assert m["precision_macro"] == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)
    assert m["recall_weighted"] == pytest.approx(m["accuracy"])  # weighted recall is accuracy
    f1 = [2 * p * r / (p + r) for p, r in ((3 / 4, 3 / 4), (2 / 3, 1), (1, 1 / 2))]
    assert m["f1_weighted"] == pytest.approx(np.average(f1, weights=[4, 2, 2]))
    assert m["f1_macro"] == pytest.approx(np.mean(f1))


def test_confusion_and_report():
    y_true, y_pred = np.array([0, 0, 1, 2, 2]), np.array([0, 2, 1, 2, 0])
    cm = evaluation.confusion(y_true, y_pred, classes=CLASSES)
    assert cm.loc["blues", "rock"] == 1 and cm.loc["rock", "blues"] == 1 and cm.to_numpy().sum() == 5
    assert evaluation.confusion(y_true, y_pred, classes=CLASSES, normalize="true").sum(axis=1).tolist() == [1, 1, 1]
    report = evaluation.per_class_report(y_true, y_pred, classes=CLASSES)
    assert report["genre"].tolist() == CLASSES and report["support"].tolist() == [2, 1, 2]
    assert report.set_index("genre").loc["classical", "f1"] == 1.0
    fig = plots.plot_confusion(cm, title="t")
    assert [t.get_text() for t in fig.axes[0].texts][:3] == ["1", "0", "1"]


def test_track_level_uses_mean_probability():
    # track a: two weak votes for class 1, one confident vote for class 0 -> mean favours class 0
    proba = np.array([[0.1, 0.9], [0.45, 0.55], [0.45, 0.55], [0.8, 0.2], [0.3, 0.7]])
    tracks = np.array(["a", "a", "a", "a", "b"])
    y = np.array([0, 0, 0, 0, 1])
    frame = evaluation.track_level_predictions(proba[1:], y[1:], tracks[1:])
    assert frame.set_index("track_id")["y_pred"].to_dict() == {"a": 0, "b": 1}  # majority vote would say 1
    assert evaluation.track_level_accuracy(proba[1:], y[1:], tracks[1:]) == 1.0
    with pytest.raises(ValueError, match="different labels"):
        evaluation.track_level_predictions(proba, np.array([0, 1, 0, 0, 1]), tracks)


def test_mean_ci_is_the_t_interval():
    values = np.array([0.80, 0.82, 0.79, 0.81])
    mean, low, high = evaluation.mean_ci(values)
    half = 3.182446 * values.std(ddof=1) / 2  # t(0.975, 3) * s / sqrt(4)
    assert mean == pytest.approx(0.805) and (high - low) / 2 == pytest.approx(half, rel=1e-5)
    assert np.isnan(evaluation.mean_ci([0.5])[1])


def test_bootstrap_ci_rows_and_groups():
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.7
    accuracy = lambda c: c.mean()  # noqa: E731
    point, low, high = evaluation.bootstrap_ci(accuracy, correct, n_resamples=500)
    assert point == pytest.approx(correct.mean()) and low < point < high and high - low < 0.15
    # ten segments per track sharing one outcome: grouped intervals are wider (fewer independent units)
    track_correct = np.repeat(rng.random(40) < 0.7, 10)
    groups = np.repeat(np.arange(40), 10)
    _, lo_rows, hi_rows = evaluation.bootstrap_ci(accuracy, track_correct, n_resamples=500)
    _, lo_grp, hi_grp = evaluation.bootstrap_ci(accuracy, track_correct, groups=groups, n_resamples=500)
    assert hi_grp - lo_grp > 2 * (hi_rows - lo_rows)
    with pytest.raises(ValueError, match="aligned"):
        evaluation.bootstrap_ci(lambda a, b: 0.0, np.zeros(3), np.zeros(4))


def test_macro_f1_of_a_resample_counts_only_the_genres_it_holds():
    from sklearn.metrics import f1_score

    truth, pred = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 3, 1, 1, 2, 0])
    # genre 3 is only ever predicted: a genre absent from this test set is not scored zero
    assert evaluation._all_metrics(truth, pred)["f1_macro"] == pytest.approx(
        f1_score(truth, pred, labels=[0, 1, 2], average="macro"))
    every = np.array([0, 1, 2, 3])  # a test set with every genre: scikit-learn's macro F1
    assert evaluation._all_metrics(every, np.array([0, 1, 1, 3]))["f1_macro"] == pytest.approx(
        f1_score(every, [0, 1, 1, 3], average="macro"))
    # so the point estimate of a small test set lies inside its interval
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 10)
    proba = np.eye(10)[np.where(rng.random(100) < 0.8, y, rng.integers(0, 10, 100))] + 0.01
    segment = evaluation.score_with_ci(proba, y, np.repeat(np.arange(10), 10), n_resamples=300)[0]
    assert segment["f1_macro_ci_low"] <= segment["f1_macro"] <= segment["f1_macro_ci_high"]
