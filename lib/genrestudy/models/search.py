"""Hyperparameter search for LightGBM: Grid Search vs Random Search (Tables 2-6).

* :data:`TABLE2_GRID` is the paper's grid, exactly (3^8 = 6,561 points). ``bagging_freq`` is
  fixed at 1 for every configuration: LightGBM ignores ``bagging_fraction`` unless
  ``bagging_freq > 0`` and Table 2 does not set it: at LightGBM's default (0) one of the eight
  axes is a no-op and two thirds of the 6,561 fits repeat the other third.
* :func:`random_space` spans the same box: integers where the grid's axis is an integer,
  continuous uniform draws for the fractions and regularisation strengths (the paper's Random
  Search drew continuous values too; unlike the paper, the draws stay inside the grid's
  bounds, so both searches explore the same region). The learning rate's distribution is a
  stated choice: ``"log-uniform"`` (:data:`RANDOM_SPACE`) puts ln 4 / ln 6 of its draws below
  0.02, where the grid has one value of three, and halving cuts slow learners first;
  ``"uniform"`` spreads them as the grid does, so Grid vs Random compares strategies, not priors.
* Candidates come from scikit-learn's ``ParameterGrid`` / ``ParameterSampler``; every fit is
  scored by validation accuracy at its early-stopping round (see :mod:`genrestudy.models.classifiers`);
  the test split is never seen by a search.
* ``mode="exhaustive"`` trains every candidate with the full budget of rounds;
  ``mode="halving"`` is successive halving with scikit-learn's schedule
  (``HalvingGridSearchCV``: ``n_candidates / factor**k`` survivors on ``min_resources *
  factor**k`` of the resource), the resource being boosting rounds or training rows. On
  rounds, a survivor continues its previous fit (warm start) instead of being refitted.
* Configurations run in parallel over cores with joblib threads (LightGBM releases the GIL, and
  threads share the one binned Dataset), or on a Dask cluster through joblib's Dask backend
  when a scheduler address is given (or ``GENRESTUDY_SCHEDULER`` is set: :mod:`genrestudy.run.cluster`).
  Each fit gets the cores left to it (:func:`threads_per_fit`): one when fits fill the cores,
  all of a machine's or worker's when a late halving rung has few survivors. The thread count
  changes no tree and no score (the validation logloss is summed in a fixed order,
  :func:`genrestudy.models.classifiers.multi_logloss`), so a search's result does not depend on where
  it ran.
"""
from __future__ import annotations

import logging
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import joblib
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import ParameterGrid, ParameterSampler
from ..run import cluster
from .classifiers import BoostingState, TrainingData, fit_lightgbm
from ..progress import progress_bar

log = logging.getLogger(__name__)

#: Table 2 of the paper, exactly
TABLE2_GRID: dict[str, list] = {
    "num_leaves": [16, 24, 32],
    "max_depth": [4, 5, 6],
    "min_child_samples": [20, 30, 50],
    "learning_rate": [0.005, 0.02, 0.03],
    "reg_alpha": [2.0, 5.0, 8.0],
    "reg_lambda": [5.0, 8.0, 12.0],
    "bagging_fraction": [0.6, 0.7, 0.8],
    "feature_fraction": [0.6, 0.7, 0.8],
}

#: Random Search's learning-rate distributions over Table 2's range (:func:`random_space`)
LEARNING_RATE_DISTRIBUTIONS = ("log-uniform", "uniform")


def random_space(learning_rate: str = "log-uniform") -> dict:
    """Random Search's distributions over Table 2's bounds (randint's upper bound is exclusive),
    the learning rate drawn ``"log-uniform"`` or ``"uniform"`` (:data:`LEARNING_RATE_DISTRIBUTIONS`)."""
    if learning_rate not in LEARNING_RATE_DISTRIBUTIONS:
        raise ValueError(f"unknown learning-rate distribution {learning_rate!r}; "
                         f"expected one of {', '.join(LEARNING_RATE_DISTRIBUTIONS)}")
    low, high = min(TABLE2_GRID["learning_rate"]), max(TABLE2_GRID["learning_rate"])
    rate = stats.loguniform(low, high) if learning_rate == "log-uniform" else stats.uniform(low, high - low)
    return {
        "num_leaves": stats.randint(16, 33),
        "max_depth": stats.randint(4, 7),
        "min_child_samples": stats.randint(20, 51),
        "learning_rate": rate,
        "reg_alpha": stats.uniform(2.0, 6.0),
        "reg_lambda": stats.uniform(5.0, 7.0),
        "bagging_fraction": stats.uniform(0.6, 0.2),
        "feature_fraction": stats.uniform(0.6, 0.2),
    }


RANDOM_SPACE: dict = random_space("log-uniform")  #: the default Random Search space

#: Fewest boosting rounds of a first halving rung by default. After one round a candidate's
#: validation accuracy does not depend on its learning rate (one tree per class, argmax over
#: scores the rate only scales), so a one-round rung eliminates at random along that axis:
#: ``bench/tune.py --halving-min-rounds 1`` shows the halving gap this causes on its 3^4 sub-grid.
MIN_FIRST_RUNG_ROUNDS = 3

MODES = ("exhaustive", "halving")
RESOURCES = ("rounds", "samples")


def grid_candidates(budget: int | None = None, *, seed: int = 0, grid: dict | None = None) -> list[dict]:
    """Points of the grid: all of them (in ``ParameterGrid`` order) when ``budget`` is None or
    at least the grid's size, otherwise ``budget`` distinct points drawn without replacement."""
    grid = TABLE2_GRID if grid is None else grid
    full = ParameterGrid(grid)
    if budget is None or budget >= len(full):
        return [dict(p) for p in full]
    if budget < 1:
        raise ValueError(f"budget must be a positive number of configurations, got {budget}")
    # all-list spaces are sampled without replacement by ParameterSampler
    return [dict(p) for p in ParameterSampler(grid, n_iter=budget, random_state=seed)]


def random_candidates(n_iter: int, *, seed: int = 0, space: dict | None = None,
                      learning_rate: str = "log-uniform") -> list[dict]:
    """``n_iter`` draws from :func:`random_space` with the ``learning_rate`` distribution (or from
    ``space``), reproducible by ``seed``."""
    if n_iter < 1:
        raise ValueError(f"n_iter must be a positive number of configurations, got {n_iter}")
    draws = ParameterSampler(random_space(learning_rate) if space is None else space, n_iter=n_iter,
                             random_state=seed)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in p.items()} for p in draws]


@dataclass
class SearchResult:
    """What a search found and how it got there.

    Attributes
    ----------
    method : str
        ``"grid"``, ``"random"`` or another label.
    mode : str
        ``"exhaustive"`` or ``"halving"``.
    trace : pd.DataFrame
        One row per fit in search order: ``fit`` (1-based), ``candidate``, ``rung``, the
        parameters, ``num_boost_round``, ``start_round`` (rounds continued from the candidate's
        previous rung; 0 for a fit from scratch), ``n_rows``, ``best_iteration``,
        ``valid_accuracy``, ``valid_logloss``, ``fit_seconds``.
    best_params : dict
        The winner's parameters (highest validation accuracy; ties: lower logloss).
    best_valid_accuracy : float
        The winner's validation accuracy as scored in the search (in halving, at its last rung).
    wall_seconds : float
        Wall time of the whole search, the one-off binning included.
    settings : dict
        Budget, rounds, seed, parallelism: what determines the search.
    """

    method: str
    mode: str
    trace: pd.DataFrame
    best_params: dict
    best_valid_accuracy: float
    wall_seconds: float
    settings: dict = field(default_factory=dict)

    @property
    def n_fits(self) -> int:
        return len(self.trace)

    def best_table(self) -> pd.DataFrame:
        """The winner as a one-row table (Tables 3 and 4)."""
        row = {"method": self.method, "mode": self.mode, **self.best_params,
               "bagging_freq": self.best_params.get("bagging_freq", 1),
               "valid_accuracy": self.best_valid_accuracy, "n_fits": self.n_fits,
               "wall_seconds": round(self.wall_seconds, 2)}
        return pd.DataFrame([row])


def _evaluate_one(data: TrainingData, candidate: int, params: dict, num_boost_round: int,
                  early_stopping_rounds: int | None, n_rows: int | None, seed: int, num_threads: int,
                  resume: BoostingState | None = None, keep_state: bool = False) -> dict:
    fit = fit_lightgbm(data, params, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                       n_rows=n_rows, seed=seed, num_threads=num_threads, resume=resume, keep_state=keep_state)
    row = {"candidate": candidate, **params, "num_boost_round": num_boost_round, "start_round": fit.start_round,
           "n_rows": fit.n_rows, "best_iteration": fit.best_iteration, "valid_accuracy": fit.valid_accuracy,
           "valid_logloss": fit.valid_logloss, "fit_seconds": fit.fit_seconds, "num_threads": num_threads}
    if keep_state:
        row["state"] = fit.state
    return row


def threads_per_fit(n_fits: int, n_slots: int, cores: int, *, n_machines: int = 1) -> int:
    """LightGBM threads of each of ``n_fits`` fits run ``n_slots`` at a time on ``n_machines``
    machines (or Dask workers) of ``cores`` cores each: the cores shared among the fits that run
    at once on one machine, at least one. Many fits: one thread each, the fits side by side (a
    fit's threads scale poorly on small data); few (a late halving rung): each fit gets its share
    of the idle cores instead of one.

    >>> threads_per_fit(729, 16, 16), threads_per_fit(3, 16, 16), threads_per_fit(27, 128, 16, n_machines=8)
    (1, 5, 4)
    """
    at_once = max(1, min(int(n_fits), int(n_slots)))
    per_machine = math.ceil(at_once / max(1, int(n_machines)))
    return max(1, int(cores) // per_machine)


def evaluate_candidates(data: TrainingData, candidates: list[dict], *, num_boost_round: int,
                        early_stopping_rounds: int | None = 50, n_rows: int | None = None, seed: int = 0,
                        n_jobs: int = 2, scheduler_address: str | None = None, indices: list[int] | None = None,
                        resume: list[BoostingState | None] | None = None, keep_state: bool = False,
                        desc: str = "fits", progress: bool = True) -> pd.DataFrame:
    """Fit every candidate (in parallel) and return one row each, in candidate order.

    Parameters
    ----------
    data : TrainingData
        Shared train/validation data (binned once per process).
    candidates : list of dict
        Parameter sets.
    num_boost_round, early_stopping_rounds, n_rows, seed
        See :func:`genrestudy.models.classifiers.fit_lightgbm`.
    n_jobs : int
        Configurations trained side by side (local threads), or the number of concurrent tasks
        on a Dask cluster (-1: all cores, or all the cluster's threads). Each fit's LightGBM
        threads: :func:`threads_per_fit` (recorded in the ``num_threads`` column).
    scheduler_address : str, optional
        ``tcp://host:port`` of a ``dask.distributed`` scheduler: the fits run on its workers
        through joblib's Dask backend (each worker bins the data once). None: the address in
        ``GENRESTUDY_SCHEDULER``, if any (:func:`genrestudy.run.cluster.scheduler_address`).
    indices : list of int, optional
        Candidate numbers to report (default ``0..len(candidates)-1``).
    resume : list of BoostingState or None, optional
        Per candidate, an earlier fit to continue up to ``num_boost_round`` rounds (None: from scratch).
    keep_state : bool
        Add a ``state`` column with each fit's :class:`~genrestudy.models.classifiers.BoostingState`.
    """
    if not candidates:
        raise ValueError("no candidates to evaluate")
    indices = list(range(len(candidates))) if indices is None else list(indices)
    resume = [None] * len(candidates) if resume is None else list(resume)
    if len(resume) != len(candidates):
        raise ValueError(f"resume has {len(resume)} states for {len(candidates)} candidates")
    scheduler_address = cluster.scheduler_address(scheduler_address)
    with ExitStack() as stack:
        if scheduler_address:
            client = stack.enter_context(cluster.connect(scheduler_address))
            threads = client.nthreads()  # {worker: threads}
            if not threads:
                raise cluster.ClusterError(f"the Dask scheduler at {scheduler_address} has no workers")
            slots = sum(threads.values()) if n_jobs == -1 else max(1, n_jobs)
            hosts = cluster.cores_by_host(client)   # a machine's worker processes share its cores
            num_threads = threads_per_fit(len(candidates), slots, min(hosts.values()), n_machines=len(hosts))
            stack.enter_context(joblib.parallel_config(backend="dask", client=client, scatter=[data]))
            parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        else:
            local_cores = os.cpu_count() or 1
            n_workers = local_cores if n_jobs == -1 else max(1, n_jobs)
            num_threads = threads_per_fit(len(candidates), n_workers, local_cores)
            data.datasets()  # bin before the threads start, so no fit waits on another's binning
            parallel = joblib.Parallel(n_jobs=n_workers, prefer="threads", return_as="generator_unordered")
        tasks = (joblib.delayed(_evaluate_one)(data, i, p, num_boost_round, early_stopping_rounds, n_rows, seed,
                                               num_threads, r, keep_state)
                 for i, p, r in zip(indices, candidates, resume))
        rows = list(progress_bar(parallel(tasks), total=len(candidates), desc=desc, enabled=progress, leave=False))
    frame = pd.DataFrame(rows).sort_values("candidate", kind="stable").reset_index(drop=True)
    return frame


def _rank(frame: pd.DataFrame) -> pd.DataFrame:
    # selection by validation accuracy; logloss then candidate order break ties deterministically
    return frame.sort_values(["valid_accuracy", "valid_logloss", "candidate"], ascending=[False, True, True],
                             kind="stable")


def _winner_params(chosen: dict, columns: list[str]) -> dict:
    # from the candidate itself: a row of the trace holds floats and ints together, so pandas made its ints floats
    return {k: (chosen[k].item() if isinstance(chosen[k], np.generic) else chosen[k]) for k in columns if k in chosen}


def _param_columns(candidates: list[dict]) -> list[str]:
    # Table 2's order first, so grid and random winners line up in the tables
    names = dict.fromkeys(k for c in candidates for k in c)
    return [k for k in TABLE2_GRID if k in names] + [k for k in names if k not in TABLE2_GRID]


def halving_schedule(n_candidates: int, *, min_resources: int, max_resources: int, factor: float = 3,
                     aggressive_elimination: bool = False) -> list[tuple[int, int]]:
    """(candidates, resources) of each rung, as scikit-learn's successive halving plans them.

    ``n_required = 1 + floor(log_factor(n_candidates))`` rungs would leave one candidate;
    ``n_possible = 1 + floor(log_factor(max/min))`` fit in the resources. Without aggressive
    elimination the search stops after ``min(n_required, n_possible)`` rungs and the best of
    the last rung wins; with it, the first rungs repeat the minimum resource until the
    candidates fit the remaining rungs.
    """
    if factor <= 1:
        raise ValueError(f"factor must be greater than 1, got {factor}")
    if not 1 <= min_resources <= max_resources:
        raise ValueError(f"need 1 <= min_resources <= max_resources, got {min_resources} and {max_resources}")
    n_required = 1 + int(math.floor(math.log(n_candidates, factor) + 1e-9)) if n_candidates > 1 else 1
    n_possible = 1 + int(math.floor(math.log(max_resources / min_resources, factor) + 1e-9))
    n_rungs = n_required if aggressive_elimination else min(n_required, n_possible)
    rungs, remaining = [], n_candidates
    for rung in range(n_rungs):
        power = max(0, rung - n_required + n_possible) if aggressive_elimination else rung
        resources = min(int(min_resources * factor ** power), max_resources)
        rungs.append((remaining, resources))
        remaining = int(math.ceil(remaining / factor))
    return rungs


def default_min_resources(n_candidates: int, max_resources: int, *, factor: float, resource: str) -> int:
    """The first rung's resource by default: scikit-learn's "exhaust" (the last rung gets the
    whole resource); on rounds, with fewer rungs if need be, so that the first has
    :data:`MIN_FIRST_RUNG_ROUNDS` or more."""
    rungs_after_first = int(math.floor(math.log(max(n_candidates, 1), factor) + 1e-9))
    floor = MIN_FIRST_RUNG_ROUNDS if resource == "rounds" else 1
    while rungs_after_first > 0 and max_resources // factor ** rungs_after_first < floor:
        rungs_after_first -= 1
    return max(1, int(max_resources // factor ** rungs_after_first))


def run_search(data: TrainingData, candidates: list[dict], *, method: str, mode: str = "exhaustive",
               num_boost_round: int = 1000, early_stopping_rounds: int | None = 50, seed: int = 0, n_jobs: int = 2,
               scheduler_address: str | None = None, resource: str = "rounds", min_resources: int | None = None,
               factor: float = 3, aggressive_elimination: bool = False, warm_start: bool = True,
               progress: bool = True) -> SearchResult:
    """Search ``candidates`` exhaustively or by successive halving; select by validation accuracy.

    Parameters
    ----------
    data : TrainingData
        Train/validation split (the test split is never passed to a search).
    candidates : list of dict
        From :func:`grid_candidates` or :func:`random_candidates`.
    method : str
        Label of the search (``"grid"``, ``"random"``).
    mode : {"exhaustive", "halving"}
        Every candidate at full budget, or successive halving.
    num_boost_round : int
        Maximum boosting rounds of a full-budget fit.
    early_stopping_rounds : int or None
        Patience on the validation multi-logloss.
    seed : int
        LightGBM seed of every fit (and of halving's row subsets).
    n_jobs, scheduler_address
        Parallelism, see :func:`evaluate_candidates`.
    resource : {"rounds", "samples"}
        Halving only: what grows from rung to rung, boosting rounds (up to ``num_boost_round``)
        or training rows (up to all of them, each fit allowed ``num_boost_round`` rounds).
    min_resources : int, optional
        Halving only: resource of the first rung (default: ``max // factor**(n_rungs-1)``, so
        the last rung gets the full resource, scikit-learn's ``"exhaust"``; on rounds, with as
        many rungs as keep the first at :data:`MIN_FIRST_RUNG_ROUNDS` rounds or more).
    factor : float
        Halving only: survivors are the best ``1/factor`` of each rung.
    aggressive_elimination : bool
        Halving only: repeat the first rung's resource until the last rung has a single
        candidate (repeats are not refitted: a fit at a resource is reused).
    warm_start : bool
        Halving on rounds only: a survivor continues its previous rung's fit, training only the
        extra rounds (:class:`~genrestudy.models.classifiers.BoostingState`), instead of being refitted
        from scratch as scikit-learn's halving searches do. It saves a third of the rounds of
        every rung after the first at ``factor`` 3; the continued rounds draw new bags and
        feature subsets, so their scores are another sample of the configuration, not the
        scores a fresh fit would give (the same, without bagging and feature sampling).
    """
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; expected one of {MODES}")
    if not candidates:
        raise ValueError("no candidates to search")
    settings = {"n_candidates": len(candidates), "num_boost_round": num_boost_round,
                "early_stopping_rounds": early_stopping_rounds, "seed": seed, "n_jobs": n_jobs,
                "scheduler_address": scheduler_address}
    columns = _param_columns(candidates)
    start = time.perf_counter()
    if mode == "exhaustive":
        trace = evaluate_candidates(data, candidates, num_boost_round=num_boost_round,
                                    early_stopping_rounds=early_stopping_rounds, seed=seed, n_jobs=n_jobs,
                                    scheduler_address=scheduler_address, desc=f"{method} search",
                                    progress=progress).assign(rung=0)
        best = _rank(trace).iloc[0]
    else:
        if resource not in RESOURCES:
            raise ValueError(f"unknown halving resource {resource!r}; expected one of {RESOURCES}")
        max_resources = num_boost_round if resource == "rounds" else len(data.y_train)
        if min_resources is None:
            min_resources = default_min_resources(len(candidates), max_resources, factor=factor, resource=resource)
        schedule = halving_schedule(len(candidates), min_resources=min_resources, max_resources=max_resources,
                                    factor=factor, aggressive_elimination=aggressive_elimination)
        warm = warm_start and resource == "rounds"
        settings.update(resource=resource, min_resources=min_resources, factor=factor,
                        aggressive_elimination=aggressive_elimination, warm_start=warm, schedule=schedule)
        alive = list(range(len(candidates)))
        done: dict[tuple[int, int], dict] = {}
        states: dict[int, BoostingState] = {}  # survivors' fits, continued by the next rung when warm
        parts = []
        for rung, (_, resources) in enumerate(schedule):
            todo = [i for i in alive if (i, resources) not in done]
            if todo:
                kw = ({"num_boost_round": resources, "n_rows": None} if resource == "rounds"
                      else {"num_boost_round": num_boost_round, "n_rows": resources})
                last = rung == len(schedule) - 1
                fits = evaluate_candidates(data, [candidates[i] for i in todo], indices=todo,
                                           early_stopping_rounds=early_stopping_rounds, seed=seed, n_jobs=n_jobs,
                                           scheduler_address=scheduler_address, progress=progress,
                                           resume=[states.get(i) for i in todo] if warm else None,
                                           keep_state=warm and not last,
                                           desc=f"{method} halving rung {rung} ({len(alive)} x {resources} {resource})",
                                           **kw)
                if "state" in fits:
                    states.update(zip(fits["candidate"], fits.pop("state")))
                for row in fits.to_dict("records"):
                    done[(row["candidate"], resources)] = row
                parts.append(fits.assign(rung=rung))
            scored = _rank(pd.DataFrame([done[(i, resources)] for i in alive]))
            best = scored.iloc[0]
            alive = scored["candidate"].head(int(math.ceil(len(alive) / factor))).tolist()
            states = {i: states[i] for i in alive if i in states}
        trace = pd.concat(parts, ignore_index=True)
    wall = time.perf_counter() - start
    trace.insert(0, "fit", np.arange(1, len(trace) + 1))
    best_params = _winner_params(candidates[int(best["candidate"])], columns)
    log.info("%s search (%s): %d fits in %.1f s, best validation accuracy %.4f",
             method, mode, len(trace), wall, best["valid_accuracy"])
    return SearchResult(method=method, mode=mode, trace=trace, best_params=best_params,
                        best_valid_accuracy=float(best["valid_accuracy"]), wall_seconds=wall, settings=settings)


def grid_search(data: TrainingData, *, budget: int | None = None, grid: dict | None = None, seed: int = 0,
                **search_kw) -> SearchResult:
    """Grid Search over Table 2 (all 6,561 points, or ``budget`` of them drawn without replacement).

    ``search_kw`` go to :func:`run_search` (mode, rounds, early stopping, n_jobs, halving options).
    """
    return run_search(data, grid_candidates(budget, seed=seed, grid=grid), method="grid", seed=seed, **search_kw)


def random_search(data: TrainingData, *, n_iter: int, space: dict | None = None, seed: int = 0,
                  learning_rate: str = "log-uniform", **search_kw) -> SearchResult:
    """Random Search: ``n_iter`` draws from :func:`random_space` (``search_kw`` as in :func:`run_search`)."""
    candidates = random_candidates(n_iter, seed=seed, space=space, learning_rate=learning_rate)
    return run_search(data, candidates, method="random", seed=seed, **search_kw)


def spaces_table(grid: dict | None = None, space: dict | None = None, *,
                 learning_rate: str = "log-uniform") -> pd.DataFrame:
    """Grid Search's values and Random Search's distribution of every parameter, one row each
    (the random space: ``space``, else :func:`random_space` with the ``learning_rate`` distribution)."""
    grid, space = grid or TABLE2_GRID, space or random_space(learning_rate)
    return pd.DataFrame([{"parameter": name, "grid values": values, "random distribution": space[name].dist.name,
                          "random support": space[name].support()} for name, values in grid.items()])
