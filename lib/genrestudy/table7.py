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
from .methods import REGISTRY, StudyData, registered, run_method

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


def protocol_rows(data: StudyData, split, *, protocol: str, methods=None, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
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

    Returns
    -------
    (rows, details)
        ``rows``: two per method (segment and track level). ``details``: one per method, its
        :meth:`~genrestudy.methods.base.Method.report` (training time, seed, hyperparameters, ...).
    """
    methods = list(methods) if methods is not None else registered()
    out, details = [], []
    for method in tqdm(methods, desc=f"methods ({protocol})", disable=not progress, leave=False):
        run = run_method(method, data, split)
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


# ---------------------------------------------------------------- findings

def _ours(table: pd.DataFrame, protocol: str, key: str, level: str = "segment") -> pd.Series | None:
    hit = table[(table["protocol"] == protocol) & (table["key"] == key) & (table["level"] == level)
                & (table["source"] == OUR_SOURCE)]
    return None if hit.empty else hit.iloc[0]


def _pct(row: pd.Series) -> str:
    return f"{row['accuracy']:.1f} % [{row['accuracy_ci_low']:.1f}, {row['accuracy_ci_high']:.1f}]"


def _protocol_effect(ours: pd.DataFrame, other: str) -> str | None:
    gaps = []
    for key, name in dict(zip(ours["key"], ours["method"])).items():
        a, b = _ours(ours, "paper", key), _ours(ours, other, key)
        if a is not None and b is not None:
            gaps.append((name, a, b, a["accuracy"] - b["accuracy"]))
    if not gaps:
        return None
    mean_gap = float(np.mean([g[3] for g in gaps]))
    detail = "; ".join(f"{m}: {_pct(a)} vs {_pct(b)}" for m, a, b, _ in gaps)
    verdict = "inflated by the leak" if mean_gap > 0 else "no inflation on these data"
    return (f"Against the `{other}` protocol, the paper's segment-level split changes test accuracy by "
            f"{mean_gap:+.1f} points on average over the {len(gaps)} methods ({verdict}; {detail}).")


def _within_protocol(ours: pd.DataFrame, protocol: str) -> str:
    seg = ours[(ours["protocol"] == protocol) & (ours["level"] == "segment")]
    best = seg.loc[seg["accuracy"].idxmax()]
    sentence = f"Under `{protocol}`, the best segment-level accuracy is {best['method']}'s, {_pct(best)}"
    hybrid, e2e = _ours(ours, protocol, "hybrid_grid"), _ours(ours, protocol, "end_to_end")
    if hybrid is not None and e2e is not None:
        paper_gap = REGISTRY["hybrid_grid"].paper["accuracy"] - REGISTRY["end_to_end"].paper["accuracy"]
        sentence += (f"; the Grid-Search hybrid's accuracy minus the end-to-end model's is "
                     f"{hybrid['accuracy'] - e2e['accuracy']:+.1f} points (the paper's: {paper_gap:+.1f})")
    for search in ("grid", "random"):
        selected, retrained = _ours(ours, protocol, f"hybrid_{search}"), _ours(ours, protocol, f"retrained_{search}")
        if selected is not None and retrained is not None:
            sentence += (f"; retraining the {search.title()} Search winner with another seed moves test accuracy "
                         f"by {retrained['accuracy'] - selected['accuracy']:+.1f} points, a retrain's own noise")
    track = ours[(ours["protocol"] == protocol) & (ours["level"] == "track")]
    if not track.empty:
        gain = track["accuracy"].to_numpy().mean() - seg["accuracy"].to_numpy().mean()
        sentence += f"; voting over a track's segments changes accuracy by {gain:+.1f} points on average"
    return sentence + "."


def findings(table: pd.DataFrame, *, synthetic: bool) -> str:
    """A short paragraph of what Table 7 says, generated from its numbers (accuracies in percent,
    95 % bootstrap intervals in brackets)."""
    ours = table[table["source"] == OUR_SOURCE]
    if ours.empty:
        raise ValueError("the table has no rows of ours")
    protocols = list(dict.fromkeys(ours["protocol"]))
    parts = []
    if synthetic:
        parts.append("On the SYNTHETIC demo data (these numbers say nothing about GTZAN or the paper).")
    if "paper" in protocols:
        parts += [s for s in (_protocol_effect(ours, p) for p in protocols if p != "paper") if s]
    parts += [_within_protocol(ours, p) for p in protocols]
    widths = (ours.loc[ours["level"] == "segment", "accuracy_ci_high"]
              - ours.loc[ours["level"] == "segment", "accuracy_ci_low"]).to_numpy()
    parts.append(f"The 95 % intervals of segment-level accuracy are {np.nanmin(widths):.1f}–{np.nanmax(widths):.1f} "
                 "points wide (bootstrap over test tracks); differences smaller than that are not resolved by "
                 "this test set.")
    return " ".join(parts)
