"""Table 7: every registered method of the study under each split protocol, with the paper's rows.

Every number of ours is computed in the run that writes the table, at segment level (as the
paper) and track level, each with a bootstrap interval over test tracks. The paper's numbers
come from the methods that have them (``Method.paper``, restated from ``docs/PAPER.md``) and
appear in rows of their own, labelled with that source, never mixed with ours.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import evaluation
from .methods import StudyData, registered, run_method

PAPER_SOURCE = "paper (as reported; docs/PAPER.md)"
OUR_SOURCE = "this study (measured)"

#: Table 7's metrics here (weighted as the paper, plus macro F1); each gets a bootstrap interval
METRICS = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "f1_macro")


def _metric_statistic(metric: str):
    """``statistic(y_true, y_pred)`` computing one of :data:`METRICS` alone (a bootstrap calls it
    thousands of times). Averages run over the classes present in the (resampled) truth or
    predictions: a genre a resample leaves out must not count as a class scored zero."""
    if metric == "accuracy":
        return lambda t, p: float(np.mean(t == p))
    kind, average = metric.split("_")
    return lambda t, p: _averaged(t, p, kind=kind, average=average)


def _averaged(t: np.ndarray, p: np.ndarray, *, kind: str, average: str) -> float:
    """Precision, recall or F1 averaged as scikit-learn's ``precision_recall_fscore_support``
    (``zero_division=0``; over the labels in ``t`` or ``p``), from one confusion count:
    a bootstrap calls this thousands of times, and the count is far cheaper than sklearn's checks."""
    present, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    k = len(present)
    counts = np.bincount(codes[:len(t)] * k + codes[len(t):], minlength=k * k).reshape(k, k)
    hits, support, predicted = np.diag(counts).astype(float), counts.sum(axis=1), counts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    value = {"precision": precision, "recall": recall, "f1": f1}[kind]
    if average == "macro":
        return float(value.mean())
    return float((value * support).sum() / support.sum()) if support.sum() else 0.0


def score_with_ci(proba: np.ndarray, y_true, track_ids, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """Table 7's metrics (percent) with bootstrap intervals, at segment and at track level.

    Segment level resamples whole test tracks (a track's segments are not independent);
    track level predicts each track from the mean of its segments' probabilities and
    resamples tracks.

    Returns
    -------
    list of dict
        Two rows (``level`` ``"segment"`` and ``"track"``): ``n``, and per metric its value,
        ``<metric>_ci_low`` and ``<metric>_ci_high``.
    """
    proba = np.asarray(proba)
    y_true, track_ids = np.asarray(y_true), np.asarray(track_ids)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"expected (n, n_classes) probabilities for {len(y_true)} labels, got {proba.shape}")
    tracks = evaluation.track_level_predictions(proba, y_true, track_ids)
    levels = {"segment": (y_true, proba.argmax(axis=1), track_ids),
              "track": (tracks["y_true"].to_numpy(), tracks["y_pred"].to_numpy(), None)}
    rows = []
    for level, (truth, pred, groups) in levels.items():
        row = {"level": level, "n": int(len(truth))}
        for metric in METRICS:
            value, low, high = evaluation.bootstrap_ci(_metric_statistic(metric), truth, pred, groups=groups,
                                                       n_resamples=n_resamples, confidence=confidence, seed=seed)
            row.update({metric: 100 * value, f"{metric}_ci_low": 100 * low, f"{metric}_ci_high": 100 * high})
        rows.append(row)
    return rows


def run_methods(data: StudyData, split, methods=None, *, progress: bool = True) -> dict:
    """``{key: MethodRun}`` of every method (default: every registered one) under ``split``: each
    trained on its train/valid parts or read from its cache (:func:`genrestudy.methods.run_method`)."""
    methods = list(methods) if methods is not None else registered()
    runs = {}
    for method in tqdm(methods, desc="methods", disable=not progress, leave=False):
        run = run_method(method, data, split)
        runs[run.key] = run
    return runs


def protocol_rows(data: StudyData, split, *, protocol: str, methods=None, runs: dict | None = None,
                  n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 7's rows of every method under one split, and what each method reported.

    Parameters
    ----------
    data : StudyData
        The images (and features) of the study's inputs.
    split : array-like
        ``train``/``valid``/``test`` per image.
    protocol : str
        The protocol's name, for the table.
    methods : list, optional
        Registered keys or classes (default: every registered method, in registration order).
        Each is trained on the split, or read from its cache (:func:`genrestudy.methods.run_method`).
    runs : dict, optional
        :func:`run_methods`'s result for this split, when the caller already has it.

    Returns
    -------
    (rows, details)
        ``rows``: two per method (segment and track level). ``details``: one per method, its
        :meth:`~genrestudy.methods.base.Method.report` (training time, seed, hyperparameters, ...).
    """
    runs = runs if runs is not None else run_methods(data, split, methods, progress=progress)
    out, details = [], []
    for run in runs.values():
        y_test, tracks = data.labels[run.rows], data.track_ids[run.rows]
        for row in score_with_ci(run.proba, y_test, tracks, n_resamples=n_resamples, confidence=confidence,
                                 seed=seed):
            out.append({"protocol": protocol, "key": run.key, "method": run.name, "source": OUR_SOURCE, **row})
        details.append({"protocol": protocol, "key": run.key, "method": run.name,
                        **{k: (v if np.isscalar(v) or v is None else str(v)) for k, v in run.report.items()}})
    return pd.DataFrame(out), pd.DataFrame(details)


def paper_table7(methods=None) -> pd.DataFrame:
    """The paper's Table 7 rows of the methods that have them (segment level, its own split)."""
    methods = list(methods) if methods is not None else registered()
    return pd.DataFrame([{"protocol": "paper", "key": m.key, "method": m.name, "source": PAPER_SOURCE,
                          "level": "segment", **m.paper} for m in methods if m.paper])


def table07(ours: list[pd.DataFrame], methods=None) -> pd.DataFrame:
    """Table 7: our rows of every protocol, and the paper's rows (labelled by ``source``) after each
    of the paper-protocol rows they compare with."""
    if not ours:
        raise ValueError("no rows of ours to tabulate")
    methods = list(methods) if methods is not None else registered()
    frame = pd.concat([*ours, paper_table7(methods)], ignore_index=True)
    order = {m.key: i for i, m in enumerate(methods)}
    protocols = list(dict.fromkeys(frame["protocol"]))
    frame = frame.assign(_p=frame["protocol"].map(protocols.index), _l=frame["level"].map({"segment": 0, "track": 1}),
                         _m=frame["key"].map(order).fillna(len(order)),
                         _s=(frame["source"] == PAPER_SOURCE).astype(int))
    frame = frame.sort_values(["_p", "_l", "_m", "_s"], kind="stable").drop(columns=["_p", "_l", "_m", "_s"])
    columns = ["protocol", "level", "key", "method", "source", "n"]
    for metric in METRICS:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    return frame.reindex(columns=columns).reset_index(drop=True)


def _with_interval(row: pd.Series, metric: str) -> str:
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if pd.isna(row.get(metric)):
        return ""
    if pd.isna(low) or pd.isna(high):
        return f"{row[metric]:.1f}"
    return f"{row[metric]:.1f} [{low:.1f}, {high:.1f}]"


def compact(table: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Table 7 of one protocol as the paper printed it: one row per method (ours, then the paper's
    when it has one), segment-level accuracy, precision, recall, F1 (weighted) and macro F1, each
    ``81.2 [78.1, 84.0]``, and track-level accuracy in one more column."""
    part = table[table["protocol"] == protocol]
    if part.empty:
        raise ValueError(f"Table 7 has no rows for protocol {protocol!r}")
    segment = part[part["level"] == "segment"]
    track = part[(part["level"] == "track") & (part["source"] == OUR_SOURCE)].set_index("key")
    rows = []
    for _, row in segment.iterrows():
        ours = row["source"] == OUR_SOURCE
        rows.append({"method": row["method"], "source": "ours" if ours else "paper",
                     **{name: _with_interval(row, metric) for name, metric in
                        (("accuracy", "accuracy"), ("precision", "precision_weighted"),
                         ("recall", "recall_weighted"), ("F1", "f1_weighted"), ("macro F1", "f1_macro"))},
                     "track accuracy": _with_interval(track.loc[row["key"]], "accuracy")
                     if ours and row["key"] in track.index else ""})
    return pd.DataFrame(rows)
