"""What Table 7 supports, in words: differences with their intervals, claimed only when resolved.

* Two methods on the same test set (Grid − Random, hybrid − end-to-end, a retrain − the
  search's winner) and segment − track level of one method: a **paired** bootstrap over the
  same resampled test tracks (:func:`paired_differences`). A difference is claimed only when
  its interval excludes zero.
* One method under two protocols (their test sets differ): the two **independent**
  intervals combined (:func:`protocol_differences`), and the text says so.

Every number in the text comes from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import evaluation
from .table7 import OUR_SOURCE

#: the pairs of methods compared on one test set: (a, b, what a − b measures)
PAIRS = (("hybrid_grid", "hybrid_random", "Grid − Random Search (hybrid)"),
         ("hybrid_grid", "end_to_end", "Grid-Search hybrid − end-to-end"),
         ("retrained_grid", "hybrid_grid", "Grid winner retrained with another seed − as selected"),
         ("retrained_random", "hybrid_random", "Random winner retrained with another seed − as selected"))


def _accuracy_difference(t, a, b) -> float:
    return float(np.mean(t == a) - np.mean(t == b))


def _level_difference(t, p, track_correct, weight) -> float:
    # segment accuracy minus track accuracy of the same resampled tracks; weights of 1/segments
    # per track make the weighted mean over rows a mean over tracks
    return float(np.mean(t == p) - np.sum(weight * track_correct) / np.sum(weight))


def _interval(statistic, *arrays, groups, n_resamples, confidence, seed) -> tuple[float, float, float]:
    point = statistic(*arrays)
    try:
        return evaluation.bootstrap_ci(statistic, *arrays, groups=groups, n_resamples=n_resamples,
                                       confidence=confidence, seed=seed)
    except ValueError:  # fewer than two test tracks
        return point, float("nan"), float("nan")


def _row(protocol, what, a, b, level, value, low, high) -> dict:
    resolved = bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))
    return {"protocol": protocol, "comparison": what, "a": a, "b": b, "level": level, "difference": 100 * value,
            "ci_low": 100 * low, "ci_high": 100 * high, "resolved": resolved, "paired": True}


def paired_differences(runs: dict, y_true: np.ndarray, track_ids: np.ndarray, *, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap differences of test accuracy (percentage points) under each protocol.

    Parameters
    ----------
    runs : dict
        ``{protocol: {method key: MethodRun}}`` (:func:`genrestudy.methods.run_method`); the runs
        of one protocol share their test rows.
    y_true, track_ids : np.ndarray
        Labels and track of every image (indexed by a run's ``rows``).

    Returns
    -------
    pd.DataFrame
        One row per comparison: ``protocol, comparison, a, b, level, difference, ci_low,
        ci_high, resolved`` (the interval excludes zero), ``paired``.
    """
    out = []
    kw = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    for protocol, by_key in runs.items():
        for a, b, what in PAIRS:
            if a not in by_key or b not in by_key:
                continue
            ra, rb = by_key[a], by_key[b]
            if not np.array_equal(ra.rows, rb.rows):
                raise ValueError(f"{a} and {b} were scored on other test rows under {protocol!r}")
            t = y_true[ra.rows]
            value, low, high = _interval(_accuracy_difference, t, ra.proba.argmax(1), rb.proba.argmax(1),
                                         groups=track_ids[ra.rows], **kw)
            out.append(_row(protocol, what, a, b, "segment", value, low, high))
        for key, run in by_key.items():
            t, tracks = y_true[run.rows], track_ids[run.rows]
            votes = evaluation.track_level_predictions(run.proba, t, tracks).set_index("track_id")
            correct = (votes["y_true"] == votes["y_pred"]).astype(float)
            counts = pd.Series(tracks).map(votes["n_segments"]).to_numpy(dtype=float)
            value, low, high = _interval(_level_difference, t, run.proba.argmax(1),
                                         pd.Series(tracks).map(correct).to_numpy(), 1.0 / counts,
                                         groups=tracks, **kw)
            out.append(_row(protocol, f"segment − track level ({run.name})", key, key, "segment − track",
                            value, low, high))
    return pd.DataFrame(out)


def protocol_differences(table: pd.DataFrame, *, base: str = "paper") -> pd.DataFrame:
    """Accuracy under ``base`` minus under each other protocol, per method and level.

    The test sets differ, so the difference is not paired: its interval combines the two
    independent bootstrap intervals (half-widths added in quadrature, a normal approximation).
    """
    ours = table[table["source"] == OUR_SOURCE]
    out = []
    for (key, level), group in ours.groupby(["key", "level"], sort=False):
        by_protocol = group.set_index("protocol")
        if base not in by_protocol.index:
            continue
        a = by_protocol.loc[base]
        for other in (p for p in by_protocol.index if p != base):
            b = by_protocol.loc[other]
            value = a["accuracy"] - b["accuracy"]
            half = np.hypot((a["accuracy_ci_high"] - a["accuracy_ci_low"]) / 2,
                            (b["accuracy_ci_high"] - b["accuracy_ci_low"]) / 2)
            out.append({"protocol": f"{base} − {other}",
                        "comparison": f"{a['method']}, {level} level: {base} − {other}",
                        "a": key, "b": key, "level": level, "difference": value, "ci_low": value - half,
                        "ci_high": value + half, "resolved": bool(abs(value) > half), "paired": False})
    return pd.DataFrame(out)


def _interval_text(row) -> str:
    return f"{row['difference']:+.1f} points [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"


def _sentence(row) -> str:
    verdict = ("a difference" if row["resolved"] else
               "not resolved: the interval includes zero, so no difference is claimed")
    kind = "paired bootstrap over the same test tracks" if row["paired"] else \
        "independent test sets, intervals combined"
    return f"{row['comparison']}: {_interval_text(row)}, {verdict} ({kind})."


def findings(table: pd.DataFrame, differences: pd.DataFrame, *, synthetic: bool) -> str:
    """A paragraph per protocol of what Table 7 and the differences support (accuracy in percent,
    95 % intervals in brackets)."""
    ours = table[table["source"] == OUR_SOURCE]
    if ours.empty:
        raise ValueError("the table has no rows of ours")
    parts = []
    if synthetic:
        parts.append("On the SYNTHETIC demo data (these numbers say nothing about GTZAN or the paper).")
    for protocol in dict.fromkeys(ours["protocol"]):
        seg = ours[(ours["protocol"] == protocol) & (ours["level"] == "segment")]
        best = seg.loc[seg["accuracy"].idxmax()]
        text = (f"Under `{protocol}` ({_PROTOCOL_WORDS.get(protocol, protocol)}), the highest segment-level "
                f"accuracy is {best['method']}'s, {best['accuracy']:.1f} % [{best['accuracy_ci_low']:.1f}, "
                f"{best['accuracy_ci_high']:.1f}]; whether it beats the others is what the differences below say.")
        if protocol == "paper":
            text += (" At track level under `paper`, each test track contributes only its segments that are not "
                     "in training.")
        rows = differences[differences["protocol"] == protocol] if len(differences) else differences
        parts.append(" ".join([text, *(_sentence(r) for _, r in rows.iterrows())]))
    across = differences[~differences["paired"]] if len(differences) else differences
    parts += [_sentence(r) for _, r in across.iterrows()]
    return "\n\n".join(parts)


_PROTOCOL_WORDS = {"paper": "the paper's random split over segments: segments of one track on both sides",
                   "track": "track-grouped: no track on two sides, though GTZAN's repeats and shared artists "
                            "still cross it",
                   "filtered": "the fault-filtered, artist-conditional split"}
