"""The study's LightGBM tuning: cached Grid and Random searches, their winners, and the comparison over seeds.

A search is cached by everything that determines it (the train/validation data's content
hash and binning, the candidates, the mode, rounds, early stopping and seed, LightGBM's
version), so notebook 03 and the results notebook share one run for the same inputs,
whichever asks first. Parallelism (``n_jobs``, a Dask scheduler) only changes speed and is
not part of the key.

Two models come from a search's winner, and they are not the same model:

* :func:`refit_winner`: the winner as the search selected it, fitted at the search's seed and
  rounds. In exhaustive mode that is the search's own fit (LightGBM is deterministic for a
  seed); in halving mode a fresh fit of the same configuration at the full rounds. These are
  Table 7's "ResNet-50 + LightGBM (…)" rows.
* :func:`retrain_winner`: the winner retrained from scratch with **another seed** (other bags
  and feature subsets) at ``retrain_rounds``, recording its learning curve: Tables 5/6, Fig 6,
  the saved hybrid model, and Table 7's "LightGBM (…)" rows. The pair shows how much a
  retrain alone moves test accuracy.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from .. import cache
from . import winner_fits
from ..report import evaluation
from .classifiers import FitResult, TrainingData, predict_proba
from ..progress import progress_bar
from .search import SearchResult, grid_candidates, random_candidates, run_search

log = logging.getLogger(__name__)

_CACHE_KIND = "searches"
# Bump when a change in the search code changes what a cached search holds.
_FORMAT_VERSION = 2  # 2: logloss summed in a fixed order; num_threads in the trace
#: settings of :func:`genrestudy.models.search.run_search` that change speed only, never the result
_SPEED_ONLY = ("n_jobs", "scheduler_address", "progress")


def candidates_of(method: str, budget: int, seed: int, *, random_learning_rate: str = "log-uniform") -> list[dict]:
    """The candidates of a ``"grid"`` or ``"random"`` search of ``budget`` fits (Random Search's
    learning rate drawn from the ``random_learning_rate`` distribution, :func:`genrestudy.models.search.random_space`)."""
    if method == "grid":
        return grid_candidates(budget, seed=seed)
    if method == "random":
        return random_candidates(budget, seed=seed, learning_rate=random_learning_rate)
    raise ValueError(f"unknown search {method!r}; expected 'grid' or 'random'")


def search_key(data: TrainingData, method: str, candidates: list[dict], *, seed: int, run_kw: dict) -> str:
    """Key of a cached search: the data's content, the candidates and every setting that shapes the result."""
    determining = {k: v for k, v in run_kw.items() if k not in _SPEED_ONLY}
    return cache.cache_key(f"search-v{_FORMAT_VERSION}", data.key, method, candidates, seed, determining,
                           cache.library_versions("lightgbm", "numpy"))


def _open_search(entry) -> SearchResult:
    meta = cache.read_meta(entry)
    trace = pd.read_csv(entry / "trace.csv")
    return SearchResult(method=meta["method"], mode=meta["mode"], trace=trace, best_params=meta["best_params"],
                        best_valid_accuracy=float(meta["best_valid_accuracy"]),
                        wall_seconds=float(meta["wall_seconds"]), settings=meta["settings"])


def cached_search(data: TrainingData, method: str, *, budget: int, seed: int = 0, mode: str = "exhaustive",
                  num_boost_round: int = 1000, early_stopping_rounds: int | None = 50, n_jobs: int = 2,
                  scheduler_address: str | None = None, progress: bool = True, cache_root=None,
                  random_learning_rate: str = "log-uniform", **halving_kw) -> SearchResult:
    """Grid or Random Search of ``budget`` fits on ``data``, run once and cached.

    ``halving_kw`` go to :func:`genrestudy.models.search.run_search` (``resource``, ``factor``, ...).
    The result's ``wall_seconds`` is the time of the run that computed it. The learning-rate
    distribution of a random search shapes its candidates, which are part of the key.
    """
    candidates = candidates_of(method, budget, seed, random_learning_rate=random_learning_rate)
    run_kw = dict(mode=mode, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                  n_jobs=n_jobs, scheduler_address=scheduler_address, progress=progress, **halving_kw)
    key = search_key(data, method, candidates, seed=seed, run_kw=run_kw)

    def build(entry) -> dict:
        result = run_search(data, candidates, method=method, seed=seed, **run_kw)
        cache.write_csv(entry / "trace.csv", result.trace)
        return {"method": result.method, "mode": result.mode, "best_params": result.best_params,
                "best_valid_accuracy": result.best_valid_accuracy, "wall_seconds": result.wall_seconds,
                "settings": {**result.settings, "budget": int(budget),
                             **({"random_learning_rate": random_learning_rate} if method == "random" else {})},
                "data": data.key}

    return cache.open_or_build(_CACHE_KIND, key, open_entry=_open_search, build=build, root=cache_root)


def refit_winner(data: TrainingData, result: SearchResult, *, cache_root=None) -> FitResult:
    """The search's winner as the search selected it: its seed, rounds and early stopping (booster kept);
    trained once and cached (:mod:`genrestudy.models.winner_fits`), so notebooks 03 and 09 share it."""
    settings = result.settings
    return winner_fits.cached_fit(data, result.best_params, num_boost_round=int(settings["num_boost_round"]),
                                  early_stopping_rounds=settings["early_stopping_rounds"], seed=int(settings["seed"]),
                                  num_threads=os.cpu_count() or 1, cache_root=cache_root)


def retrain_winner(data: TrainingData, result: SearchResult, *, num_boost_round: int, seed: int,
                   early_stopping_rounds: int | None = 50, cache_root=None) -> FitResult:
    """The winner retrained from scratch with ``seed`` (which must differ from the search's), its
    learning curve recorded (Tables 5/6, Fig 6); the booster is kept for the caller to score once.
    Trained once and cached (:mod:`genrestudy.models.winner_fits`), so notebooks 03 and 09 share it."""
    if int(seed) == int(result.settings["seed"]):
        raise ValueError(f"a retrain needs another seed than the search's ({seed}); "
                         "with the same seed and rounds it would be the same model")
    return winner_fits.cached_fit(data, result.best_params, num_boost_round=num_boost_round,
                                  early_stopping_rounds=early_stopping_rounds, seed=seed,
                                  num_threads=os.cpu_count() or 1, record_curve=True, cache_root=cache_root)


def score_test_split(booster, X_test: np.ndarray, y_test: np.ndarray, *, track_ids=None) -> dict:
    """Accuracy/precision/recall/F1 of ``booster`` on the test split (and track-level accuracy when
    ``track_ids`` are given), plus the predictions for confusion matrices."""
    proba = predict_proba(booster, X_test)
    y_pred = proba.argmax(axis=1)
    scores = evaluation.classification_metrics(y_test, y_pred)
    if track_ids is not None:
        scores["track_accuracy"] = evaluation.track_level_accuracy(proba, y_test, track_ids)
    return {"scores": scores, "y_pred": y_pred, "proba": proba}


def compare_at_equal_budget(data: TrainingData, X_test: np.ndarray, y_test: np.ndarray, *, budget: int,
                            seeds: list[int], mode: str = "exhaustive", num_boost_round: int = 1000,
                            early_stopping_rounds: int | None = 50, n_jobs: int = 2,
                            scheduler_address: str | None = None, progress: bool = True, cache_root=None,
                            random_learning_rate: str = "log-uniform",
                            **halving_kw) -> tuple[pd.DataFrame, dict[int, dict[str, SearchResult]]]:
    """Grid vs Random at the same number of fits, the same rounds and the same data, per seed.

    For each seed, Grid Search gets ``budget`` points of Table 2 (all of them when ``budget >=
    6561``) and Random Search ``budget`` draws from :func:`genrestudy.models.search.random_space` (its
    learning rate ``random_learning_rate``: ``"log-uniform"`` or ``"uniform"``); both
    run the same mode with the same LightGBM seed (:func:`cached_search`). Each winner is
    refitted as the search selected it (:func:`refit_winner`) and scores the test split once;
    that refit is not counted in ``n_fits``.

    Returns
    -------
    per_seed : pd.DataFrame
        ``seed, method, n_fits, wall_seconds, valid_accuracy, test_accuracy`` and the winner's parameters.
    searches : dict
        ``{seed: {"grid": SearchResult, "random": SearchResult}}`` (for traces).
    """
    if isinstance(seeds, (str, bytes)) or not all(isinstance(s, (int, np.integer)) for s in seeds) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    rows, searches = [], {}
    for seed in progress_bar(list(seeds), desc="seeds", enabled=progress):
        searches[seed] = {}
        for method in ("grid", "random"):
            result = cached_search(data, method, budget=budget, seed=int(seed), mode=mode,
                                   num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                                   n_jobs=n_jobs, scheduler_address=scheduler_address, progress=progress,
                                   cache_root=cache_root, random_learning_rate=random_learning_rate, **halving_kw)
            refit = refit_winner(data, result)
            test = score_test_split(refit.booster, X_test, y_test)["scores"]
            searches[seed][method] = result
            rows.append({"seed": seed, "method": method, "mode": mode, "n_fits": result.n_fits,
                         "wall_seconds": result.wall_seconds, "valid_accuracy": refit.valid_accuracy,
                         "test_accuracy": test["accuracy"], **result.best_params})
    return pd.DataFrame(rows), searches


def summarize_comparison(per_seed: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and ``confidence`` t-interval over seeds of each method's validation/test accuracy and wall time."""
    rows = []
    for method, group in per_seed.groupby("method", sort=True):
        row = {"method": method, "n_seeds": len(group), "n_fits": int(group["n_fits"].iloc[0])}
        for column in ("valid_accuracy", "test_accuracy", "wall_seconds"):
            mean, low, high = evaluation.mean_ci(group[column].to_numpy(), confidence=confidence)
            row.update({f"{column}_mean": mean, f"{column}_ci_low": low, f"{column}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def seedwise_difference(per_seed: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Grid − Random per seed (the same seed, data and rounds on both sides), its mean and t-interval.

    The interval covers the searches' noise over seeds on this one split, not the sampling of
    the test set (Table 7's bootstrap covers that).
    """
    rows = []
    for column in ("valid_accuracy", "test_accuracy"):
        wide = per_seed.pivot(index="seed", columns="method", values=column)
        diff = (wide["grid"] - wide["random"]).to_numpy() * 100
        mean, low, high = evaluation.mean_ci(diff, confidence=confidence)
        rows.append({"metric": column, "n_seeds": len(diff), "grid_minus_random_points": mean,
                     "ci_low": low, "ci_high": high,
                     "resolved": bool(np.isfinite(low) and (low > 0 or high < 0))})
    return pd.DataFrame(rows)
