"""Notebook 06's tables: the source's Table 2 layout with intervals, its numbers, cost per network.

:func:`fitted_networks` fits (from the cache, after Table 7 or a first run) the six registered
methods on a split; :func:`table2` scores, for every network, optimiser and epoch budget, the
configuration chosen on validation (its best learning rate) once on the test rows, with
bootstrap intervals over test tracks; :data:`SOURCE_TABLE2` holds the source's own numbers
(accuracy and F1 only; docs/PAPER.md, neighbouring study 2), always in rows of their own.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..networks import smallnets_training as st
from .evaluation import score_with_ci
from ..networks.smallnets import NETWORKS

OUR_SOURCE, SOURCE = "this study (measured)", "source study (as reported; its own 70/20/10 split)"
#: the source's Table 2: (network, epochs, optimiser) → (accuracy, F1), percent
SOURCE_TABLE2 = {
    ("net1", "50", "adam"): (55, 56), ("net1", "100", "adam"): (51, 51),
    ("net2", "50", "adam"): (69, 69), ("net2", "100", "adam"): (65, 65),
    ("net3", "50", "adam"): (69, 69), ("net3", "100", "adam"): (71, 71),
    ("net5", "early stop (43)", "adam"): (85, 85), ("net6", "early stop", "adam"): (80, 80),
    ("net1", "50", "rmsprop"): (39, 35), ("net1", "100", "rmsprop"): (60, 60),
    ("net2", "50", "rmsprop"): (61, 61), ("net2", "100", "rmsprop"): (59, 60),
    ("net4", "50", "rmsprop"): (57, 58), ("net4", "100", "rmsprop"): (71, 68),
    ("net5", "early stop", "rmsprop"): (83, 83), ("net6", "early stop", "rmsprop"): (76, 75),
}
#: the source's feature-CGAN result, outside its main setup (accuracy only)
SOURCE_FEATURE_CGAN_ACCURACY = 92
METRIC_COLUMNS = {"accuracy": "accuracy", "precision_weighted": "precision", "recall_weighted": "recall",
                  "f1_weighted": "F1"}


def network_keys() -> list[str]:
    """The registry keys of the six networks, in Table 7's order."""
    from ..methods import REGISTRY
    from ..methods.six_networks import _SmallNetwork

    return [k for k, cls in REGISTRY.items() if issubclass(cls, _SmallNetwork)]


def run_networks(data, split, *, waveform: bool = False) -> dict:
    """Table 7's runs of the six networks under ``split`` (:func:`genrestudy.report.table7.run_methods`: one
    task each on a Dask cluster when one is given); with ``waveform``, Net6 on waveform-CGAN rows is trained
    alongside (not a Table 7 row: :func:`fitted_networks` reads it back)."""
    from ..methods.six_networks import Net6WaveformCGAN
    from . import table7

    keys = network_keys()
    runs = table7.run_methods(data, split, keys + ([Net6WaveformCGAN] if waveform else []), progress=False)
    return {key: runs[key] for key in keys}


def fitted_networks(data, split, methods=None) -> dict:
    """``{key: method}`` of the six networks (or of ``methods``, keys or classes) fitted on ``split``;
    each configuration is read from its cache when Table 7 or an earlier run trained it."""
    from ..methods import method_of

    train, valid = data.part(split, "train"), data.part(split, "valid")
    out = {}
    for cls in map(method_of, methods or network_keys()):
        method = cls(data.inputs)
        method.fit(train, valid)
        out[cls.key] = method
    return out


def generated_examples(method, data, split) -> dict:
    """Real training sequences of a CGAN-augmented network and its generated ones, with their labels."""
    train = data.part(split, "train")
    found = method.augmentation(train)
    rows = st.subset_rows(train.rows, method.grid.max_train_rows, seed=method.seed)
    return {"real": np.asarray(data.input("sequences").values[rows]), "real_labels": data.labels[rows],
            "generated": found.sequences, "generated_labels": found.labels, "history": found.history}


def _epochs_label(result) -> str:
    if result.config["early_stopping"]:
        return f"early stop (ran {result.record['epochs_run']} of {result.config['epochs']})"
    return str(result.config["epochs"])


def table2(fitted: dict, data, test_rows, *, n_resamples: int = 200, seed: int = 0, label: str = "") -> pd.DataFrame:
    """The source's Table 2 layout from our runs: per network × optimiser × epochs, the learning rate
    chosen on validation, test accuracy, precision, recall, F1 (weighted, percent) with 95 % intervals."""
    rows = []
    test_rows = np.asarray(test_rows)
    y, tracks = data.labels[test_rows], data.track_ids[test_rows]
    for key, method in fitted.items():
        groups = {}
        for r in method.results:
            groups.setdefault((r.config["optimiser"], r.config["epochs"]), []).append(r)
        for (optimiser, _), results in groups.items():
            chosen = st.choose(results)
            proba, per_sample = st.predict_part(chosen, data, test_rows, method.grid)
            scores = score_with_ci(proba, y, tracks, n_resamples=n_resamples, seed=seed)[0]
            row = {"method": method.name, "network": NETWORKS[method.net][0], "epochs": _epochs_label(chosen), "optimiser": optimiser,
                   "learning_rate": chosen.config["learning_rate"], "source": OUR_SOURCE + label,
                   "grid": "reduced (demo)" if method.grid.reduced else "the source's"}
            for metric, name in METRIC_COLUMNS.items():
                row.update({name: scores[metric], f"{name}_ci_low": scores[f"{metric}_ci_low"],
                            f"{name}_ci_high": scores[f"{metric}_ci_high"]})
            row["predict_ms_per_sample"] = 1000 * per_sample
            rows.append(row)
    return pd.DataFrame(rows)


def source_rows() -> pd.DataFrame:
    """The source's Table 2 numbers (accuracy and F1; precision and recall it did not report)."""
    rows = [{"network": NETWORKS[net][0], "epochs": epochs, "optimiser": optimiser, "source": SOURCE,
             "accuracy": acc, "F1": f1} for (net, epochs, optimiser), (acc, f1) in SOURCE_TABLE2.items()]
    rows.append({"network": "Net5 LSTM + feature CGAN (outside the main setup)", "epochs": "early stop",
                 "optimiser": "adam", "source": SOURCE, "accuracy": SOURCE_FEATURE_CGAN_ACCURACY})
    return pd.DataFrame(rows)


def with_source_rows(ours: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 rows (without the timing column), then the source's, labelled by ``source``."""
    return pd.concat([ours.drop(columns="predict_ms_per_sample", errors="ignore"), source_rows()], ignore_index=True)


def cost_table(fitted: dict, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per network, its chosen configuration: parameters, training time (chosen and whole grid), time per
    training sample, prediction time per sample (from ``table``), the process's peak RSS while training."""
    rows = []
    for key, method in fitted.items():
        best = method.best.record
        row = {"network": NETWORKS[method.net][0], "configurations": len(method.results), "params": best["params"],
               "train_seconds_chosen": best["seconds"],
               "train_seconds_grid": sum(r.record["seconds"] for r in method.results),
               "train_ms_per_sample": 1000 * best["seconds_per_sample"],
               "peak_rss_mb": max(r.record["peak_rss_mb"] for r in method.results)}
        if "cgan_seconds" in method.record:
            row.update(cgan_params=method.record["cgan_params"], cgan_seconds=method.record["cgan_seconds"],
                       cgan_peak_rss_mb=method.record["cgan_peak_rss_mb"])
        rows.append(row)
    out = pd.DataFrame(rows)
    if table is not None and "predict_ms_per_sample" in table:
        out = out.merge(table.groupby("network", as_index=False)["predict_ms_per_sample"].median(), how="left")
    return out


def source_split(segments: pd.DataFrame, *, seed: int = 0, fractions=(0.7, 0.2, 0.1)) -> np.ndarray:
    """The source's split: segments drawn at random (tracks not kept together) into train/valid/test 70/20/10."""
    n = len(segments)
    order = np.random.default_rng(seed).permutation(n)
    cut1, cut2 = int(round(fractions[0] * n)), int(round((fractions[0] + fractions[1]) * n))
    split = np.empty(n, dtype=object)
    split[order[:cut1]], split[order[cut1:cut2]], split[order[cut2:]] = "train", "valid", "test"
    return split
