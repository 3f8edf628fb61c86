"""Scores of a classifier: metrics, confusion matrices, per-genre report, track-level votes, intervals.

Model-agnostic: every function takes integer labels / predictions / class probabilities, so
the LightGBM, end-to-end and later models are scored the same way. Segment predictions become
track predictions by averaging the segments' class probabilities (:func:`track_level_predictions`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, precision_recall_fscore_support


def _labels_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and aligned, got shapes {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty prediction set")
    return y_true, y_pred


def classification_metrics(y_true, y_pred, *, labels: Sequence | None = None) -> dict[str, float]:
    """Accuracy and precision/recall/F1, weighted (Table 7's averaging) and macro.

    Parameters
    ----------
    y_true, y_pred : array-like
        True and predicted labels (any hashable labels; integer codes in this study).
    labels : sequence, optional
        All class labels, so a class never predicted still counts in the macro averages.

    Returns
    -------
    dict
        ``accuracy``, ``precision_weighted``, ``recall_weighted``, ``f1_weighted``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``n``.
    """
    y_true, y_pred = _labels_pair(y_true, y_pred)
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    out["n"] = int(len(y_true))
    return out


def confusion(y_true, y_pred, *, classes: Sequence[str], normalize: str | None = None) -> pd.DataFrame:
    """Confusion matrix with true genres as rows and predicted genres as columns.

    ``y_true``/``y_pred`` are integer codes into ``classes``; ``normalize`` as in scikit-learn
    (``None`` counts, ``"true"`` row shares).
    """
    y_true, y_pred = _labels_pair(y_true, y_pred)
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)), normalize=normalize)
    return pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))


def per_class_report(y_true, y_pred, *, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each genre (one row per genre, in ``classes`` order)."""
    y_true, y_pred = _labels_pair(y_true, y_pred)
    report = classification_report(y_true, y_pred, labels=np.arange(len(classes)), target_names=list(classes),
                                    output_dict=True, zero_division=0)
    frame = pd.DataFrame({name: report[name] for name in classes}).T
    frame.index.name = "genre"
    frame["support"] = frame["support"].astype(int)
    return frame.reset_index()[["genre", "precision", "recall", "f1-score", "support"]].rename(
        columns={"f1-score": "f1"})


def track_level_predictions(proba: np.ndarray, y_true, track_ids) -> pd.DataFrame:
    """Track predictions from segment probabilities: the class with the highest mean probability.

    Parameters
    ----------
    proba : np.ndarray
        ``(n_segments, n_classes)`` class probabilities.
    y_true : array-like
        Segment labels; all segments of a track must share one label.
    track_ids : array-like
        Track of each segment.

    Returns
    -------
    pd.DataFrame
        One row per track (sorted by id): ``track_id``, ``y_true``, ``y_pred``, ``n_segments``.
    """
    proba = np.asarray(proba, dtype=float)
    y_true, track_ids = np.asarray(y_true), np.asarray(track_ids)
    if proba.ndim != 2 or len(proba) != len(y_true) or len(track_ids) != len(y_true):
        raise ValueError(f"expected (n, n_classes) probabilities aligned with n labels and track ids, got "
                         f"{proba.shape}, {len(y_true)} labels, {len(track_ids)} track ids")
    frame = pd.DataFrame(proba).assign(track_id=track_ids, y_true=y_true)
    labels_per_track = frame.groupby("track_id")["y_true"].nunique()
    if (labels_per_track > 1).any():
        bad = labels_per_track[labels_per_track > 1].index[:3].tolist()
        raise ValueError(f"segments of one track carry different labels (e.g. {bad}); cannot aggregate per track")
    grouped = frame.groupby("track_id", sort=True)
    mean_proba = grouped[list(range(proba.shape[1]))].mean()
    return pd.DataFrame({"track_id": mean_proba.index, "y_true": grouped["y_true"].first().to_numpy(),
                         "y_pred": mean_proba.to_numpy().argmax(axis=1),
                         "n_segments": grouped.size().to_numpy()}).reset_index(drop=True)


def track_level_accuracy(proba: np.ndarray, y_true, track_ids) -> float:
    """Accuracy over tracks of :func:`track_level_predictions`."""
    tracks = track_level_predictions(proba, y_true, track_ids)
    return float((tracks["y_true"] == tracks["y_pred"]).mean())


def mean_ci(values, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t ``confidence`` interval of a few repeated measurements (e.g. seeds).

    With one value the interval is undefined and returned as NaN.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"expected a non-empty 1-D array of measurements, got shape {values.shape}")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    sem = stats.sem(values)
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, df=len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def bootstrap_ci(statistic: Callable[..., float], *arrays, groups=None, n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0, method: str = "percentile") -> tuple[float, float, float]:
    """Bootstrap interval of ``statistic(*arrays)`` resampling rows together (paired), or whole groups.

    Parameters
    ----------
    statistic : callable
        ``statistic(*arrays) -> float`` on aligned 1-D arrays, e.g.
        ``lambda t, p: (t == p).mean()`` for accuracy.
    *arrays : array-like
        Aligned arrays (same length), resampled with the same indices.
    groups : array-like, optional
        Group of each row (e.g. track id): whole groups are resampled, so correlated rows
        (segments of one track) are not treated as independent.
    n_resamples, confidence, seed, method
        As in :func:`scipy.stats.bootstrap` (``method``: ``"percentile"``, ``"basic"`` or ``"BCa"``).

    Returns
    -------
    (float, float, float)
        The statistic on the data, and the interval's low and high ends.
    """
    arrays = [np.asarray(a) for a in arrays]
    if not arrays or any(len(a) != len(arrays[0]) for a in arrays) or len(arrays[0]) == 0:
        raise ValueError(f"expected one or more non-empty aligned arrays, got lengths {[len(a) for a in arrays]}")
    point = float(statistic(*arrays))
    if groups is None:
        units = np.arange(len(arrays[0]))
        rows_of = None
    else:
        groups = np.asarray(groups)
        if len(groups) != len(arrays[0]):
            raise ValueError(f"groups has {len(groups)} entries for {len(arrays[0])} rows")
        codes, uniques = pd.factorize(groups)
        units = np.arange(len(uniques))
        rows_of = [np.flatnonzero(codes == u) for u in units]
    if len(units) < 2:
        raise ValueError(f"need at least two {'groups' if groups is not None else 'rows'} to bootstrap")

    def resampled(unit_idx):
        unit_idx = np.asarray(unit_idx, dtype=int)
        rows = unit_idx if rows_of is None else np.concatenate([rows_of[u] for u in unit_idx])
        return statistic(*(a[rows] for a in arrays))

    result = stats.bootstrap((units,), resampled, n_resamples=n_resamples, confidence_level=confidence,
                             method=method, vectorized=False, random_state=np.random.default_rng(seed))
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)


# ---------------------------------------------------------------- Table 7's scores with intervals

#: Table 7's metrics here (weighted as the paper, plus macro F1), each with an interval (:func:`score_with_ci`)
METRICS = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "f1_macro")


def _all_metrics(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every one of :data:`METRICS` from one confusion count, as scikit-learn's
    ``precision_recall_fscore_support`` (``zero_division=0``). Macro F1 averages over the genres
    ``t`` holds: a genre a bootstrap resample leaves out of its truth is not a class scored zero
    merely because a segment was predicted as it (that miss still costs its true genre's recall
    and the other genres' precision); on a test set that holds every genre this is scikit-learn's
    macro F1. A bootstrap calls this thousands of times, and one count is far cheaper than
    scikit-learn's checks."""
    present, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    k = len(present)
    counts = np.bincount(codes[:len(t)] * k + codes[len(t):], minlength=k * k).reshape(k, k)
    hits, support, predicted = np.diag(counts).astype(float), counts.sum(axis=1), counts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = support.sum()

    def weighted(value: np.ndarray) -> float:
        return float((value * support).sum() / total) if total else 0.0

    return {"accuracy": float(hits.sum() / len(t)) if len(t) else 0.0,
            "precision_weighted": weighted(precision), "recall_weighted": weighted(recall),
            "f1_weighted": weighted(f1), "f1_macro": float(f1[support > 0].mean()) if total else 0.0}


def _metric_statistic(metric: str):
    """``statistic(y_true, y_pred)`` computing one of :data:`METRICS`."""
    return lambda t, p: _all_metrics(np.asarray(t), np.asarray(p))[metric]


def _resampled_metrics(truth, pred, groups, *, n_resamples: int, seed: int) -> pd.DataFrame:
    """:func:`_all_metrics` on ``n_resamples`` bootstrap resamples of whole groups (or rows),
    every metric on the same resamples (one draw serves all five intervals)."""
    codes, uniques = pd.factorize(groups if groups is not None else np.arange(len(truth)))
    if len(uniques) < 2:
        raise ValueError(f"need at least two {'groups' if groups is not None else 'rows'} to bootstrap")
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques)))
    ends = np.append(starts[1:], len(codes))
    rng = np.random.default_rng(seed)
    out = []
    for drawn in rng.integers(0, len(uniques), size=(n_resamples, len(uniques))):
        rows = order[np.concatenate([np.arange(starts[u], ends[u]) for u in drawn])]
        out.append(_all_metrics(truth[rows], pred[rows]))
    return pd.DataFrame(out)


def exact_interval(successes, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of a proportion ``successes / n``.

    It never collapses on a small sample (10 of 10 gives about [0.69, 1]) and always contains
    ``successes / n``. ``successes`` may be fractional (a mean of per-track shares times ``n``):
    the beta quantiles are then those of the nearest binomial, continuously.
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - tail, successes + 1, n - successes))
    return low, high


def _reportable(point: float, low: float, high: float) -> tuple[float, float]:
    """The interval, or NaN for both ends where it collapsed or excludes its own point: such an
    interval says nothing trustworthy, and the metric is then reported without one."""
    if not (low < high and low <= point <= high):
        return float("nan"), float("nan")
    return low, high


def score_with_ci(proba: np.ndarray, y_true, track_ids, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """Table 7's metrics (percent) with intervals, at segment and at track level.

    Test tracks are the independent unit (a track's segments are not independent). Accuracy gets
    an exact interval over the test tracks (:func:`exact_interval`): at track level of the
    correct tracks; at segment level of the segment accuracy as if it were a share of the tracks,
    which is conservative (a mean of per-track shares varies no more than a share of as many
    independent tracks) and, unlike a bootstrap, cannot collapse when every track is right. The
    other metrics get a percentile bootstrap over whole test tracks, reported only where it
    neither collapses nor excludes its own point (otherwise NaN: the metric has no interval).

    Returns
    -------
    list of dict
        Two rows (``level`` ``"segment"`` and ``"track"``): ``n`` (segments or tracks), ``n_tracks``,
        and per metric its value, ``<metric>_ci_low`` and ``<metric>_ci_high``.
    """
    proba = np.asarray(proba)
    y_true, track_ids = np.asarray(y_true), np.asarray(track_ids)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"expected (n, n_classes) probabilities for {len(y_true)} labels, got {proba.shape}")
    tracks = track_level_predictions(proba, y_true, track_ids)
    n_tracks = len(tracks)
    levels = {"segment": (y_true, proba.argmax(axis=1), track_ids),
              "track": (tracks["y_true"].to_numpy(), tracks["y_pred"].to_numpy(), None)}
    rows, tail = [], 100 * (1 - confidence) / 2
    for level, (truth, pred, groups) in levels.items():
        row = {"level": level, "n": int(len(truth)), "n_tracks": n_tracks}
        point = _all_metrics(truth, pred)
        resampled = (_resampled_metrics(truth, pred, groups, n_resamples=n_resamples, seed=seed)
                     if n_tracks >= 2 else None)
        for metric in METRICS:
            if metric == "accuracy":
                low, high = exact_interval(point[metric] * n_tracks, n_tracks, confidence=confidence)
            elif resampled is not None:
                low, high = np.percentile(resampled[metric], [tail, 100 - tail])
                low, high = _reportable(point[metric], low, high)
            else:
                low = high = float("nan")
            row.update({metric: 100 * point[metric], f"{metric}_ci_low": 100 * low, f"{metric}_ci_high": 100 * high})
        rows.append(row)
    return rows
