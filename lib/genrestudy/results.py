"""The study's results side by side with the paper's: Table 7 across methods and protocols, Table 8.

Every number of ours is computed in the run that writes the table. The paper's numbers are
constants below, restated from ``docs/PAPER.md`` (Tables 7 and 8 of the main paper), and
appear in rows or columns of their own, labelled with that source, never mixed with ours.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from . import cache, classifiers, endtoend, evaluation, paths, search

log = logging.getLogger(__name__)

PAPER_SOURCE = "paper (as reported; docs/PAPER.md)"
OUR_SOURCE = "this study (measured)"

#: our method keys → the paper's row names of Table 7
METHODS = {
    "hybrid_grid": "ResNet-50 + LightGBM (Grid Search)",
    "hybrid_random": "ResNet-50 + LightGBM (Random Search)",
    "end_to_end": "ResNet-50 end-to-end",
    "retrained_grid": "LightGBM (Grid Search)",
    "retrained_random": "LightGBM (Random Search)",
}

#: Table 7 of the paper (test split of its segment-level random split), in percent
PAPER_TABLE7 = {
    "hybrid_grid": {"accuracy": 81.20, "precision_weighted": 81.25, "recall_weighted": 81.20, "f1_weighted": 81.13},
    "hybrid_random": {"accuracy": 79.00, "precision_weighted": 79.56, "recall_weighted": 79.00, "f1_weighted": 79.13},
    "end_to_end": {"accuracy": 82.50, "precision_weighted": 82.65, "recall_weighted": 82.50, "f1_weighted": 83.44},
    "retrained_grid": {"accuracy": 79.70, "precision_weighted": 79.94, "recall_weighted": 79.98, "f1_weighted": 79.95},
    "retrained_random": {"accuracy": 80.30, "precision_weighted": 80.09, "recall_weighted": 80.03,
                         "f1_weighted": 80.05},
}

#: Table 8 of the paper; its prediction time does not state a batch size, nor how anything was measured
PAPER_TABLE8 = {
    "training_seconds": {"end_to_end": 65.8529, "hybrid": 0.9373},
    "peak_ram_mb": {"end_to_end": 1000.60, "hybrid": 45.49},
    "extraction_peak_ram_mb": {"hybrid": 1145.52},
    "predict_seconds_per_sample": {"end_to_end": 0.004406, "hybrid": 0.005330},
}

#: Table 4 of the paper: its Grid Search winner (the LightGBM configuration Table 8 times here)
PAPER_TABLE4_PARAMS = {"num_leaves": 16, "max_depth": 6, "learning_rate": 0.03, "min_child_samples": 20,
                       "reg_alpha": 4.0, "reg_lambda": 6.0, "bagging_fraction": 0.8, "feature_fraction": 0.8}

#: Table 7's metrics here (weighted as the paper, plus macro F1); each gets a bootstrap interval
METRICS = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "f1_macro")


# ---------------------------------------------------------------- Table 7

def _metric_statistic(metric: str):
    """``statistic(y_true, y_pred)`` computing one of :data:`METRICS` alone: a bootstrap calls it
    thousands of times, and :func:`genrestudy.evaluation.classification_metrics` computes them all.

    Averages run over the classes present in the (resampled) truth or predictions: a genre that
    a resample happens to leave out entirely must not count as a class scored zero.
    """
    if metric == "accuracy":
        return lambda t, p: float(np.mean(t == p))
    kind, average = metric.split("_")
    position = {"precision": 0, "recall": 1, "f1": 2}[kind]
    return lambda t, p: float(precision_recall_fscore_support(t, p, average=average, zero_division=0)[position])


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


def hybrid_test_probabilities(feature_set, split, *, budget: int, num_boost_round: int,
                              early_stopping_rounds: int | None, retrain_rounds: int, search_mode: str = "exhaustive",
                              seed: int = 0, n_jobs: int = 2, max_bin: int = classifiers.STUDY_MAX_BIN,
                              progress: bool = True) -> dict[str, np.ndarray]:
    """Test-split probabilities of the four LightGBM rows of Table 7 under one split.

    Grid and Random Search get the same ``budget`` of fits (:func:`genrestudy.search.grid_search`,
    :func:`~genrestudy.search.random_search`); ``hybrid_<method>`` is each winner refitted at the
    search's rounds, ``retrained_<method>`` the winner retrained with ``retrain_rounds`` rounds
    (Tables 5/6). Only these final models see the test split. ``search_mode`` is
    :func:`genrestudy.search.run_search`'s ``mode`` (``"halving"`` halves over boosting rounds).
    """
    values = np.asarray(split)
    data = classifiers.training_data(feature_set.features, feature_set.labels, values,
                                     num_class=len(feature_set.classes), max_bin=max_bin)
    X_test = np.asarray(feature_set.features)[values == "test"]
    if not len(X_test):
        raise ValueError("the split has no 'test' rows")
    search_kw = dict(seed=seed, mode=search_mode, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                     n_jobs=n_jobs, progress=progress)
    out = {}
    for method, result in (("grid", search.grid_search(data, budget=budget, **search_kw)),
                           ("random", search.random_search(data, n_iter=budget, **search_kw))):
        refit = classifiers.fit_lightgbm(data, result.best_params, num_boost_round=num_boost_round,
                                         early_stopping_rounds=early_stopping_rounds, seed=seed,
                                         num_threads=os.cpu_count() or 1, keep_model=True)
        out[f"hybrid_{method}"] = classifiers.predict_proba(refit.booster, X_test)
        retrained = search.retrain_best(data, result, num_boost_round=retrain_rounds,
                                        early_stopping_rounds=early_stopping_rounds, seed=seed)
        out[f"retrained_{method}"] = classifiers.predict_proba(retrained.booster, X_test)
    return out


def protocol_rows(image_set, feature_set, split, *, protocol: str, settings: endtoend.TrainSettings,
                  budget: int, num_boost_round: int, early_stopping_rounds: int | None, retrain_rounds: int,
                  search_mode: str = "exhaustive", seed: int = 0, n_jobs: int = 2,
                  max_bin: int = classifiers.STUDY_MAX_BIN, n_resamples: int = 1000, confidence: float = 0.95,
                  progress: bool = True) -> pd.DataFrame:
    """Table 7's rows of every method under one split: the four LightGBM rows and the end-to-end model.

    ``feature_set`` must hold the features of ``image_set``'s images in the same order; the
    end-to-end model is trained (or taken from its cache) with ``settings`` on this split.
    """
    if feature_set.meta.get("image_cache") != image_set.key:
        raise ValueError(f"the features come from image cache {feature_set.meta.get('image_cache')}, "
                         f"not from {image_set.key}")
    values = np.asarray(split)
    rows_test = np.flatnonzero(values == "test")
    y_test = image_set.labels[rows_test]
    tracks = image_set.segments["track_id"].to_numpy()[rows_test]
    probas = hybrid_test_probabilities(feature_set, values, budget=budget, num_boost_round=num_boost_round,
                                       early_stopping_rounds=early_stopping_rounds, retrain_rounds=retrain_rounds,
                                       search_mode=search_mode, seed=seed, n_jobs=n_jobs, max_bin=max_bin, progress=progress)
    trained = endtoend.train_end_to_end(image_set, values, settings=settings, progress=progress)
    scored = endtoend.evaluate(trained, image_set, values, progress=progress)
    if not np.array_equal(scored["rows"], rows_test):
        raise ValueError("the end-to-end evaluation scored other rows than the test split")
    probas["end_to_end"] = scored["proba"]
    out = []
    for method in METHODS:
        for row in score_with_ci(probas[method], y_test, tracks, n_resamples=n_resamples, confidence=confidence, seed=seed):
            out.append({"protocol": protocol, "method": METHODS[method], "source": OUR_SOURCE, **row})
    return pd.DataFrame(out)


def paper_table7() -> pd.DataFrame:
    """The paper's Table 7 as rows of the same shape as ours (segment level, its own split)."""
    return pd.DataFrame([{"protocol": "paper", "method": METHODS[key], "source": PAPER_SOURCE, "level": "segment",
                          **values} for key, values in PAPER_TABLE7.items()])


def table07(ours: list[pd.DataFrame]) -> pd.DataFrame:
    """Table 7: our rows of every protocol, and the paper's rows (labelled by ``source``) after each
    of the paper-protocol blocks they compare with."""
    if not ours:
        raise ValueError("no rows of ours to tabulate")
    frame = pd.concat([*ours, paper_table7()], ignore_index=True)
    order = {name: i for i, name in enumerate(METHODS.values())}
    protocols = list(dict.fromkeys(frame["protocol"]))
    frame = frame.assign(_p=frame["protocol"].map(protocols.index), _l=frame["level"].map({"segment": 0, "track": 1}),
                         _m=frame["method"].map(order), _s=(frame["source"] == PAPER_SOURCE).astype(int))
    frame = frame.sort_values(["_p", "_l", "_m", "_s"]).drop(columns=["_p", "_l", "_m", "_s"])
    columns = ["protocol", "level", "method", "source", "n"]
    for metric in METRICS:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    return frame.reindex(columns=columns).reset_index(drop=True)


def _accuracy(table: pd.DataFrame, protocol: str, method: str, level: str = "segment") -> pd.Series | None:
    hit = table[(table["protocol"] == protocol) & (table["method"] == method) & (table["level"] == level)
                & (table["source"] == OUR_SOURCE)]
    return None if hit.empty else hit.iloc[0]


def _pct(row: pd.Series) -> str:
    return f"{row['accuracy']:.1f} % [{row['accuracy_ci_low']:.1f}, {row['accuracy_ci_high']:.1f}]"


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
    if "paper" in protocols and len(protocols) > 1:
        for other in (p for p in protocols if p != "paper"):
            gaps = []
            for method in METHODS.values():
                a, b = _accuracy(ours, "paper", method), _accuracy(ours, other, method)
                if a is not None and b is not None:
                    gaps.append((method, a, b, a["accuracy"] - b["accuracy"]))
            if gaps:
                mean_gap = float(np.mean([g[3] for g in gaps]))
                detail = "; ".join(f"{m}: {_pct(a)} vs {_pct(b)}" for m, a, b, _ in gaps)
                verdict = "inflated by the leak" if mean_gap > 0 else "no inflation on these data"
                parts.append(f"Against the `{other}` protocol, the paper's segment-level split changes test "
                             f"accuracy by {mean_gap:+.1f} points on average over the {len(gaps)} methods "
                             f"({verdict}; {detail}).")
    for protocol in protocols:
        seg = ours[(ours["protocol"] == protocol) & (ours["level"] == "segment")]
        best = seg.loc[seg["accuracy"].idxmax()]
        hybrid, e2e = _accuracy(ours, protocol, METHODS["hybrid_grid"]), _accuracy(ours, protocol, METHODS["end_to_end"])
        sentence = f"Under `{protocol}`, the best segment-level accuracy is {best['method']}'s, {_pct(best)}"
        if hybrid is not None and e2e is not None:
            paper_gap = PAPER_TABLE7["hybrid_grid"]["accuracy"] - PAPER_TABLE7["end_to_end"]["accuracy"]
            sentence += (f"; the Grid-Search hybrid's accuracy minus the end-to-end model's is "
                         f"{hybrid['accuracy'] - e2e['accuracy']:+.1f} points (the paper's: {paper_gap:+.1f})")
        track = ours[(ours["protocol"] == protocol) & (ours["level"] == "track")]
        if not track.empty:
            gain = track["accuracy"].to_numpy().mean() - seg["accuracy"].to_numpy().mean()
            sentence += f"; voting over a track's segments changes accuracy by {gain:+.1f} points on average"
        parts.append(sentence + ".")
    overlap = ours[(ours["level"] == "segment")]
    widths = (overlap["accuracy_ci_high"] - overlap["accuracy_ci_low"]).to_numpy()
    parts.append(f"The 95 % intervals of segment-level accuracy are {np.nanmin(widths):.1f}–{np.nanmax(widths):.1f} "
                 "points wide (bootstrap over test tracks); differences smaller than that are not resolved by "
                 "this test set.")
    return " ".join(parts)


# ---------------------------------------------------------------- Table 8

def efficiency_table(*, end_to_end_fit: dict, lightgbm_fit: dict, extraction: dict, latencies: dict,
                     settings: dict, hardware: str) -> pd.DataFrame:
    """Table 8 from measurements, with the paper's numbers in columns of their own.

    Parameters
    ----------
    end_to_end_fit, lightgbm_fit, extraction : dict
        :func:`genrestudy.efficiency.measure_step` reports of the three steps
        (:mod:`genrestudy.benchmark_steps`); ``result["seconds"]`` is the step alone.
    latencies : dict
        ``{(pipeline, kind): latency report}`` with pipeline ``"end_to_end"``/``"hybrid"`` and
        kind ``"batch1"``, ``"batched"`` or ``"file"`` (:func:`genrestudy.efficiency.latency`).
    settings : dict
        ``{"end_to_end_fit", "lightgbm_fit", "extraction", "latency"}``: one line each on what
        was measured (sizes, epochs, reductions).
    hardware : str
        :func:`genrestudy.efficiency.hardware`.
    """
    need = {(p, k) for p in ("end_to_end", "hybrid") for k in ("batch1", "batched", "file")}
    if set(latencies) != need:
        raise ValueError(f"latencies must have the keys {sorted(need)}, got {sorted(latencies)}")
    e2e, lgb, ext = end_to_end_fit, lightgbm_fit, extraction
    paper = PAPER_TABLE8
    nan = float("nan")
    rows = [
        ("training time (fit alone)", "s", e2e["result"]["seconds"], lgb["result"]["seconds"],
         paper["training_seconds"]["end_to_end"], paper["training_seconds"]["hybrid"],
         f"end-to-end: {settings['end_to_end_fit']}; hybrid: {settings['lightgbm_fit']}"),
        ("feature extraction time (the hybrid needs it too)", "s", nan, ext["result"]["seconds"], nan, nan,
         settings["extraction"]),
        ("peak RAM of the step's process (RSS)", "MB", e2e["peak_rss_mb"], lgb["peak_rss_mb"],
         paper["peak_ram_mb"]["end_to_end"], paper["peak_ram_mb"]["hybrid"],
         "fresh subprocess, RSS sampled by memory-profiler every 20 ms (and the process's own VmHWM peak), imports included"),
        ("peak RAM above the imports", "MB", e2e["step_rss_mb"], lgb["step_rss_mb"], nan, nan,
         "peak RSS minus RSS after importing keras/lightgbm/genrestudy, before the step"),
        ("feature extraction peak RAM (RSS)", "MB", nan, ext["peak_rss_mb"], nan,
         paper["extraction_peak_ram_mb"]["hybrid"], settings["extraction"]),
    ]
    gpu = [r["result"].get("gpu_peak_mb") for r in (e2e, lgb)]
    if any(g is not None for g in gpu):
        rows.append(("peak GPU memory of the fit", "MB", gpu[0] if gpu[0] is not None else nan, nan, nan, nan,
                     "the Keras backend's allocator peak"))
    labels = {"batch1": "prediction time per sample, batch of 1", "batched": "prediction time per sample, batched",
              "file": "audio file to genre, per file"}
    for kind, label in labels.items():
        a, b = latencies[("end_to_end", kind)], latencies[("hybrid", kind)]
        how = (f"{settings['latency']}; batch of {a['batch_size']}, {a['repeats']} timed repeats after warm-up"
               if kind != "file" else f"decode, mel images, predict, vote; {a['repeats']} timed repeats after warm-up")
        paper_e2e = paper["predict_seconds_per_sample"]["end_to_end"] if kind == "batched" else nan
        paper_hyb = paper["predict_seconds_per_sample"]["hybrid"] if kind == "batched" else nan
        rows.append((f"{label} (median)", "s", a["median_s"], b["median_s"], paper_e2e, paper_hyb,
                     how + ("; the paper does not state its batch size" if kind == "batched" else "")))
        rows.append((f"{label} (interquartile range)", "s", a["iqr_s"], b["iqr_s"], nan, nan, how))
    frame = pd.DataFrame(rows, columns=["measure", "unit", "end_to_end", "hybrid", "paper_end_to_end",
                                        "paper_hybrid", "how"])
    # a ratio of two spreads means nothing: interquartile-range rows get none
    spread = frame["measure"].str.contains("interquartile")
    with np.errstate(divide="ignore", invalid="ignore"):
        frame.insert(4, "ratio", (frame["end_to_end"] / frame["hybrid"]).where(~spread))
        frame.insert(7, "paper_ratio", frame["paper_end_to_end"] / frame["paper_hybrid"])
    frame["hardware"] = hardware
    return frame


def plot_efficiency(table: pd.DataFrame) -> plt.Figure:
    """Fig 12: training time, peak RAM and per-sample prediction time of both pipelines, ours
    (measured) beside the paper's, on log scales."""
    panels = [("training time (fit alone)", "training time (s)"),
              ("peak RAM of the step's process (RSS)", "peak RAM (MB)"),
              ("prediction time per sample, batched (median)", "prediction time per sample (s)")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    width = 0.38
    for ax, (measure, ylabel) in zip(axes, panels):
        row = table[table["measure"] == measure]
        if row.empty:
            raise ValueError(f"Table 8 has no row {measure!r}")
        row = row.iloc[0]
        x = np.arange(2)
        ours = [row["end_to_end"], row["hybrid"]]
        theirs = [row["paper_end_to_end"], row["paper_hybrid"]]
        ax.bar(x - width / 2, ours, width, label="this study (measured)", color="tab:blue")
        ax.bar(x + width / 2, theirs, width, label="paper (reported)", color="tab:gray")
        ax.set_xticks(x, ["end-to-end", "ResNet-50 + LightGBM"])
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel.split(" (")[0])
    axes[0].legend(fontsize=8)
    fig.suptitle("Fig 12 · Efficiency: end-to-end ResNet-50 vs ResNet-50 features + LightGBM")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- results/README.md

def write_results_index(*, findings_text: str | None = None, results_dir: Path | None = None) -> Path:
    """Write ``results/README.md``: every table in ``results/`` (its Markdown, with links), and
    Table 7's findings paragraph when given."""
    folder = Path(results_dir) if results_dir is not None else paths.results_dir()
    tables = sorted(p for p in folder.glob("*.md") if p.name != "README.md")
    if not tables:
        raise FileNotFoundError(f"no tables (*.md) in {folder}; run the notebooks first")
    lines = ["# results/", "",
             "Every table of the study, regenerated by the notebooks (`./run_all.sh`); each is also a CSV "
             "file of the same name. Tables made from the synthetic demo data say so.", ""]
    if findings_text:
        lines += ["## Findings (Table 7)", "", findings_text, ""]
    lines += ["## Contents", ""] + [f"- [{p.stem}]({p.name})" for p in tables] + [""]
    for p in tables:
        body = p.read_text().strip().splitlines()
        if body and body[0].startswith("# "):
            body = body[1:]
        csv = f" · [CSV]({p.stem}.csv)" if (folder / f"{p.stem}.csv").is_file() else ""
        lines += [f"## {p.stem}", "", f"[Markdown]({p.name}){csv}", "", *body, ""]
    target = folder / "README.md"
    with cache.atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n")
    log.info("results index: %d tables in %s", len(tables), target)
    return target
