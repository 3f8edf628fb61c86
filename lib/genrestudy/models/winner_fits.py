"""A search winner's fit, trained once and cached, so notebooks 03, 07 and 09 share it.

Notebook 03 refits each search's winner (Table 7's "ResNet-50 + LightGBM (…)" rows) and
retrains it with another seed (Tables 5/6, the "LightGBM (…)" rows); notebook 09 needs the
same four models for Table 7 under the same protocol, and before this cache it trained them
again (about a fifth of its CPU time on the demo). A fit is determined by the training data
(its content, binning and training options: ``TrainingData.key``), the winner's parameters,
the rounds, early stopping, the LightGBM seed, whether a learning curve is recorded, and the
LightGBM and NumPy versions; those are the key. LightGBM gives the same trees for a seed on
any number of threads (:func:`genrestudy.models.classifiers.multi_logloss`), so threads are not.

An entry holds the booster's model text and the fit's numbers; it is used only after the
cache's own check of its files (sizes and CRC-32, :func:`genrestudy.cache.check_entry`), the
model text's check (:func:`genrestudy.models.boosterfile.check_booster_text`) and a check that the
booster has this data's classes and features and the recorded rounds; otherwise it is rebuilt.
``fit_seconds`` of a cached fit is the time of the run that trained it, as a cached search's
``wall_seconds`` is.
"""
from __future__ import annotations

import lightgbm as lgb
import pandas as pd

from .. import cache
from . import boosterfile
from .classifiers import FitResult, TrainingData, fit_lightgbm

_CACHE_KIND = "winner-fits"
#: bump when what an entry holds, or how a fit is trained, changes: older entries are then retrained
_FORMAT_VERSION = 1


def fit_key(data: TrainingData, params: dict, *, num_boost_round: int, early_stopping_rounds: int | None,
            seed: int, record_curve: bool) -> str:
    """Key of a cached fit: everything that determines its trees and numbers."""
    return cache.cache_key(f"winner-fit-v{_FORMAT_VERSION}", data.key, dict(params), int(num_boost_round),
                           early_stopping_rounds, int(seed), bool(record_curve),
                           cache.library_versions("lightgbm", "numpy"))


def _open_fit(entry, data: TrainingData, params: dict, num_boost_round: int, record_curve: bool) -> FitResult:
    """The cached fit in ``entry``, after checking its model text and that it fits ``data``."""
    meta = cache.read_meta(entry)
    text = boosterfile.check_booster_text((entry / "booster.txt").read_bytes())
    booster = lgb.Booster(model_str=text)
    best = int(meta["best_iteration"])
    if meta.get("params") != dict(params) or int(meta["num_boost_round"]) != int(num_boost_round):
        raise cache.CacheError(f"{entry}: recorded for other parameters or rounds")
    if booster.num_model_per_iteration() != data.num_class or booster.num_feature() != data.X_train.shape[1]:
        raise cache.CacheError(f"{entry}: the booster has {booster.num_model_per_iteration()} classes and "
                               f"{booster.num_feature()} features, this data {data.num_class} and {data.X_train.shape[1]}")
    # a round whose trees found no split adds none, so the booster may hold fewer rounds than were counted
    if not (1 <= best <= int(num_boost_round) and 1 <= booster.current_iteration() <= int(num_boost_round)):
        raise cache.CacheError(f"{entry}: best iteration {best} or {booster.current_iteration()} rounds "
                               f"outside 1..{num_boost_round}")
    booster.best_iteration = best
    curve = pd.read_csv(entry / "curve.csv") if record_curve else None
    if record_curve and not best <= len(curve) <= int(num_boost_round):
        raise cache.CacheError(f"{entry}: a learning curve of {len(curve)} rounds for best iteration {best}")
    return FitResult(params=dict(params), num_boost_round=int(num_boost_round), n_rows=int(meta["n_rows"]),
                     best_iteration=best, valid_accuracy=float(meta["valid_accuracy"]),
                     valid_logloss=float(meta["valid_logloss"]), fit_seconds=float(meta["fit_seconds"]),
                     curve=curve, booster=booster)


def cached_fit(data: TrainingData, params: dict, *, num_boost_round: int, early_stopping_rounds: int | None,
               seed: int, num_threads: int, record_curve: bool = False, cache_root=None) -> FitResult:
    """:func:`genrestudy.models.classifiers.fit_lightgbm` of ``params`` on all of ``data`` (booster kept), once per key.

    Parameters
    ----------
    data : TrainingData
        Train/validation features (binned once per process).
    params : dict
        The winner's searched parameters.
    num_boost_round, early_stopping_rounds, seed, record_curve
        As in :func:`~genrestudy.models.classifiers.fit_lightgbm`.
    num_threads : int
        LightGBM threads (speed only, not in the key).
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).
    """
    key = fit_key(data, params, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                  seed=seed, record_curve=record_curve)

    def build(entry) -> dict:
        fit = fit_lightgbm(data, params, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                           seed=seed, num_threads=num_threads, record_curve=record_curve, keep_model=True)
        (entry / "booster.txt").write_text(fit.booster.model_to_string())
        if record_curve:
            cache.write_csv(entry / "curve.csv", fit.curve)
        return {"params": dict(params), "num_boost_round": int(num_boost_round), "n_rows": int(fit.n_rows),
                "best_iteration": int(fit.best_iteration), "valid_accuracy": float(fit.valid_accuracy),
                "valid_logloss": float(fit.valid_logloss), "fit_seconds": float(fit.fit_seconds),
                "seed": int(seed), "early_stopping_rounds": early_stopping_rounds, "data": data.key}

    return cache.open_or_build(_CACHE_KIND, key, root=cache_root, build=build,
                               open_entry=lambda entry: _open_fit(entry, data, params, num_boost_round, record_curve))
