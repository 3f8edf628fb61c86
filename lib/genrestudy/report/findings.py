"""What Table 7 supports: a pre-declared family of comparisons, tested over test tracks, claimed
only where the data can carry a claim.

* **The unit is the test track.** A track's segments are not independent, so every comparison is
  made on per-track accuracies (the share of a track's test segments predicted right).
* **What is shared is paired.** Two methods under one protocol share their test tracks; one method
  under two protocols shares the tracks both test sets hold (the paper's segment split puts part
  of a track in test, the track split all of it or none). Each comparison uses only the shared
  tracks, each track its own control: a sign-flip permutation test of the mean per-track difference
  (exact on few tracks).
* **The interval cannot collapse.** Each side's mean gets an exact (Clopper-Pearson) interval at
  ``1 - (1 - confidence) / 2`` over the shared tracks, and the difference's interval is
  ``[low_a - high_b, high_a - low_b]``: valid whatever the dependence between the sides, it
  contains its point and is never zero wide.
* **The family is controlled**: Holm's correction over every comparison tested in one call.
* **Too few tracks, no claim**: a comparison on fewer than :data:`MIN_TEST_TRACKS` shared test
  tracks is not tested.

A comparison is claimed when it was tested, its Holm-corrected p is below ``1 - confidence``, and
its interval excludes zero. Every number in the text comes from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from . import evaluation
from .reports import markdown_table
from .table7 import OUR_SOURCE

#: fewest shared test tracks a comparison is tested on. Below three tracks per genre (30 over
#: GTZAN's ten) a genre's result rests on one or two recordings, one track moves an accuracy by
#: more than three points, and even a perfect score's exact 95 % interval reaches below 89 %.
#: GTZAN's track-grouped test set (10 % of 1000 tracks) and the filtered list's 290 test tracks
#: pass; the demo's track-grouped test set (10 % of 100 tracks) does not
MIN_TEST_TRACKS = 30
#: sign-flip resamples of a test with more shared tracks than exact enumeration affords; enough that
#: a Holm-corrected p below 0.05 is reachable over a family of a few hundred comparisons
PERMUTATIONS = 9999

#: the pairs of methods compared under every protocol: (a, b, what a − b measures)
PAIRS = (("hybrid_grid", "hybrid_random", "Grid − Random Search (hybrid)"),
         ("hybrid_grid", "end_to_end", "Grid-Search hybrid − end-to-end"),
         ("retrained_grid", "hybrid_grid", "Grid winner retrained with another seed − as selected"),
         ("retrained_random", "hybrid_random", "Random winner retrained with another seed − as selected"))

_TEST = "paired sign-flip test over shared test tracks"


def per_track_accuracy(run, y_true: np.ndarray, track_ids: np.ndarray) -> pd.Series:
    """Share of each test track's segments ``run`` (a :class:`~genrestudy.methods.MethodRun`) predicts
    right, indexed by track id."""
    correct = run.proba.argmax(axis=1) == y_true[run.rows]
    return pd.Series(correct.astype(float)).groupby(track_ids[run.rows]).mean()


def compare_paired(a: pd.Series, b: pd.Series, *, confidence: float = 0.95, seed: int = 0,
                   test: bool = True) -> dict:
    """Mean per-track difference ``a − b`` over the tracks both index, its interval and its p.

    Returns
    -------
    dict
        ``n_tracks`` (shared), ``difference``, ``ci_low``, ``ci_high`` (fractions) and ``p`` (NaN
        when ``test`` is false or there is nothing to test).
    """
    shared = a.index.intersection(b.index)
    n = len(shared)
    if n == 0:
        return {"n_tracks": 0, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
    x, y = a.loc[shared].to_numpy(float), b.loc[shared].to_numpy(float)
    each = 1 - (1 - confidence) / 2  # two intervals at this level cover both means at ``confidence``
    low_a, high_a = evaluation.exact_interval(x.sum(), n, confidence=each)
    low_b, high_b = evaluation.exact_interval(y.sum(), n, confidence=each)
    p = np.nan
    if test and np.any(x != y):
        result = stats.permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis),
                                        permutation_type="samples", vectorized=True, n_resamples=PERMUTATIONS,
                                        alternative="two-sided", random_state=np.random.default_rng(seed))
        p = float(result.pvalue)
    elif test:
        p = 1.0  # identical on every shared track: nothing to find
    return {"n_tracks": n, "difference": float(np.mean(x - y)), "ci_low": low_a - high_b,
            "ci_high": high_a - low_b, "p": p}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _declared(runs: dict, base: str):
    """The pre-declared family: (protocol, comparison, a, b, run a, run b) of every method pair under
    each protocol, and of each method under ``base`` against each other protocol."""
    for protocol, by_key in runs.items():
        for a, b, what in PAIRS:
            if a in by_key and b in by_key:
                yield protocol, what, a, b, by_key[a], by_key[b]
    for other in (p for p in runs if p != base and base in runs):
        for key, run in runs[base].items():
            if key in runs[other]:
                yield (f"{base} − {other}", f"{run.name}: {base} − {other} protocol", key, key, run,
                       runs[other][key])


def claims(runs: dict, y_true: np.ndarray, track_ids: np.ndarray, *, base: str = "paper",
           confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every pre-declared comparison of segment accuracy (percentage points), tested, corrected, decided.

    Parameters
    ----------
    runs : dict
        ``{protocol: {method key: MethodRun}}`` (:func:`genrestudy.report.table7.run_methods` per protocol).
    y_true, track_ids : np.ndarray
        Labels and track of every image (indexed by a run's ``rows``).

    Returns
    -------
    pd.DataFrame
        One row per comparison: ``protocol, comparison, a, b, n_tracks, difference, ci_low, ci_high,
        test, p, p_holm, decision``.
    """
    alpha, rows = 1 - confidence, []
    for protocol, what, a, b, run_a, run_b in _declared(runs, base):
        if a != b and not np.array_equal(run_a.rows, run_b.rows):  # two methods of one protocol: one test set
            raise ValueError(f"{a} and {b} were scored on other test rows under {protocol!r}")
        per_a, per_b = per_track_accuracy(run_a, y_true, track_ids), per_track_accuracy(run_b, y_true, track_ids)
        n_shared = len(per_a.index.intersection(per_b.index))
        result = compare_paired(per_a, per_b, confidence=confidence, seed=seed, test=n_shared >= MIN_TEST_TRACKS)
        rows.append({"protocol": protocol, "comparison": what, "a": a, "b": b, **result})
    frame = pd.DataFrame(rows, columns=["protocol", "comparison", "a", "b", "n_tracks", "difference", "ci_low",
                                        "ci_high", "p"])
    for column in ("difference", "ci_low", "ci_high"):
        frame[column] = 100 * frame[column]
    frame["test"] = [_TEST if np.isfinite(p) else "none" for p in frame["p"]]
    frame["p_holm"] = holm(frame["p"]) if len(frame) else []
    frame["decision"] = [_decision(r, alpha) for _, r in frame.iterrows()]
    return frame[["protocol", "comparison", "a", "b", "n_tracks", "difference", "ci_low", "ci_high", "test", "p",
                  "p_holm", "decision"]]


def _decision(row, alpha: float) -> str:
    if not np.isfinite(row["p"]):
        return f"not tested: {row['n_tracks']} shared test tracks < {MIN_TEST_TRACKS}"
    if row["p_holm"] >= alpha:
        return f"no difference shown (Holm p ≥ {alpha:g})"
    if row["ci_low"] <= 0 <= row["ci_high"]:
        return "no difference shown (interval includes 0)"
    return f"claimed: {row['a'] if row['difference'] > 0 else row['b']} higher"


def claimed(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`claims` that are claimed."""
    return frame[frame["decision"].str.startswith("claimed")] if len(frame) else frame


def fmt_p(p: float) -> str:
    """A p-value as shown: three places, ``< 0.001`` below that, ``—`` when not tested."""
    return "—" if not np.isfinite(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def claims_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`claims` as shown: difference and interval in points, p-values to three places."""
    return pd.DataFrame({"comparison": frame["comparison"], "protocol": frame["protocol"],
                         "test tracks": frame["n_tracks"],
                         "difference (points) [interval]": [f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in
                                                            zip(frame["difference"], frame["ci_low"],
                                                                frame["ci_high"])],
                         "test": frame["test"], "p": frame["p"].map(fmt_p), "Holm p": frame["p_holm"].map(fmt_p),
                         "decision": frame["decision"]})


def findings(table: pd.DataFrame, frame: pd.DataFrame, *, synthetic: bool, weights: dict | None = None) -> str:
    """A few sentences on what the claims table supports, then the table (Markdown).

    ``weights``: ``{method name: the weights it starts from}``
    (:func:`genrestudy.methods.starting_weights`), to say where methods differ in more than the method.
    """
    if table[table["source"] == OUR_SOURCE].empty:
        raise ValueError("the table has no rows of ours")
    parts = ["On the SYNTHETIC demo data (these numbers say nothing about GTZAN or the paper)."] if synthetic else []
    tested, won = frame[np.isfinite(frame["p"])], claimed(frame)
    parts.append(f"{len(frame)} comparisons of segment accuracy were declared before the run: the paper's method "
                 f"pairs under each protocol and each method under one protocol against another, each on the test "
                 f"tracks both sides share. {len(tested)} had at least {MIN_TEST_TRACKS} shared test tracks and were "
                 f"tested ({_TEST}, Holm's correction over the {len(tested)}); the other {len(frame) - len(tested)} "
                 f"had fewer and are not tested.")
    if len(won):
        listed = "; ".join(f"{r['comparison']} under `{r['protocol']}` ({r['difference']:+.1f} points "
                           f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}], Holm p {fmt_p(r['p_holm'])})"
                           for _, r in won.iterrows())
        parts.append(f"{len(won)} {'is' if len(won) == 1 else 'are'} claimed: {listed}.")
    else:
        parts.append("No difference is claimed.")
    parts.append("Point accuracies order the methods in Table 7, but an order is not a claim: only the comparisons "
                 "below are tested.")
    groups = pd.Series(weights or {}, dtype=object)
    if groups.nunique() > 1:
        parts.append("The methods do not start from the same weights (" + "; ".join(
            f"{origin}: {', '.join(names)}" for origin, names in groups.groupby(groups).groups.items()) +
            "), so an order between these groups reflects their weights as much as the methods.")
    return " ".join(parts) + "\n\n" + markdown_table(claims_table(frame))


def scope(table: pd.DataFrame, *, synthetic: bool, weights: dict | None = None, confidence: float = 0.95) -> str:
    """What this run's results can and cannot show, from its own facts: the data, the weights the
    methods start from, and each protocol's test tracks (Markdown bullets, for ``results/README.md``)."""
    lines = ["**What this run can and cannot show** (generated from the run):", ""]
    lines.append("- Data: SYNTHETIC demo clips (made-up genres from a generator), not GTZAN: nothing here says how a "
                 "method does on music or on the paper's data; it shows that the study runs end to end."
                 if synthetic else "- Data: the study's GTZAN clips.")
    if weights:
        groups = pd.Series(weights, dtype=object)
        lines.append("- Weights: " + "; ".join(f"{origin}: {', '.join(names)}" for origin, names in
                                                groups.groupby(groups).groups.items()) + ".")
    tail = (1 - confidence) / 2
    ours = table[(table["source"] == OUR_SOURCE) & (table["level"] == "track")]
    for protocol, n in ours.groupby("protocol", sort=False)["n"].max().items():
        narrowest = 100 * (1 - tail ** (1 / n))  # a perfect (or null) score's exact interval, the narrowest
        verdict = ("fewer than the minimum of {m}: no comparison on them is claimed" if n < MIN_TEST_TRACKS
                   else "at least the minimum of {m} for a comparison").format(m=MIN_TEST_TRACKS)
        lines.append(f"- Protocol `{protocol}`: {int(n)} test tracks ({verdict}); an accuracy over them has an "
                     f"exact {100 * confidence:g} % interval at least {narrowest:.0f} points wide.")
    return "\n".join(lines)
