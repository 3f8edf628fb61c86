"""LightGBM tuning benchmark: this implementation vs a naive GridSearchCV, and the full grid by halving.

On a paper-sized generated problem (default 8,000 × 2,048, 10 classes, split 80/10/10), with
the same train/validation split, early stopping (patience ``--early-stopping`` on the
validation multi-logloss), maximum rounds (``--rounds``) and LightGBM parameters (``max_bin``
included) on both sides:

1. **Naive reference.** ``--compare-configs`` points of Table 2 through
   ``GridSearchCV(LGBMClassifier(...), cv=PredefinedSplit(...), refit=False)`` with ``eval_set`` =
   the validation rows: one fit at a time on LightGBM's default threads, every fit binning the
   data again, every configuration trained to the full round budget. Its configurations per hour
   are the naive rate.
2. **Equal work per configuration.** The same configurations through
   :func:`genrestudy.search.evaluate_candidates` (one binning, configurations side by side on one
   thread each, binning time included), each also trained to the full budget. The validation
   scores agree with the naive ones; this ratio isolates the engineering (shared binning,
   parallel fits) and is printed on its own line.
3. **Halving quality.** On a 3^4 sub-grid of Table 2 (num_leaves × max_depth × learning_rate ×
   feature_fraction; the other four at their middle values), the halving winner's validation
   accuracy in an exhaustive search (every fit at the full budget, from scratch) vs the
   exhaustive best: the halving gap.
4. **Full grid.** Successive halving over all 6,561 points (resource: boosting rounds from
   ``--halving-min-rounds`` to ``--rounds``, factor 3, survivors continuing their previous fit
   unless ``--cold``; ``--aggressive`` for scikit-learn's aggressive elimination).
   ``--grid-fraction f < 1`` runs the same schedule on a random ``f`` of the grid and
   extrapolates the time by ``1/f`` (every rung's candidate count scales by ``f``); the output
   then says ``extrapolated``.

The headline speedup compares how many configurations each approach *searches* per hour: the
halving search's candidates per hour over the full grid (measured or extrapolated; the
sub-grid's when ``--skip-full-grid``) against the naive rate, with the halving gap reported
beside it so that the speed is never quoted without the quality it kept. Halving spends less
than the full budget on most candidates; the equal-work line above says how much of the gain is
engineering alone.

The default ``--halving-min-rounds`` is 3: ranked after one round, candidates cannot be told
apart by learning rate (one tree's argmax does not depend on it), so the first rung eliminates
at random along that axis (measured: 1.75 points of gap at 1 round, none at 3).

Usage::

    python bench/tune.py                                   # full size, full grid measured
    python bench/tune.py --grid-fraction 0.111111          # full size, full grid extrapolated from 1/9
    python bench/tune.py --n-samples 1000 --n-features 64 --rounds 9 --compare-configs 4   # smoke run

The last line is ``speedup: <X>x (ours <a> cfg/h, naive <b> cfg/h; full grid halving <t> min;
halving gap <g> pt)``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np


def make_problem(n_samples: int, n_features: int, n_classes: int, class_sep: float, seed: int):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    # 64 informative + 64 redundant columns among 2048: at class_sep 2 a tuned LightGBM reaches
    # about 80 % validation accuracy within a few dozen rounds, the paper's regime, so the
    # halving-vs-exhaustive gap is measured where rankings mean something (trees are invariant
    # to monotone transforms, so the features' scale and sign do not matter)
    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=min(64, n_features // 2),
                               n_redundant=min(64, n_features // 4), n_classes=n_classes, n_clusters_per_class=1,
                               class_sep=class_sep, random_state=seed)
    X = X.astype(np.float32)
    idx = np.arange(n_samples)
    train, rest = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    valid, _test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    return X, y, train, valid


def naive_grid_search(X, y, train, valid, configs, *, rounds, early_stopping, max_bin, seed):
    import lightgbm as lgb
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    rows = np.concatenate([train, valid])
    test_fold = np.r_[np.full(len(train), -1), np.zeros(len(valid), dtype=int)]
    estimator = lgb.LGBMClassifier(n_estimators=rounds, max_bin=max_bin, min_data_in_bin=3, subsample_freq=1,
                                   random_state=seed, verbose=-1)
    # the searched names in the scikit-learn API's spelling
    rename = {"bagging_fraction": "subsample", "feature_fraction": "colsample_bytree"}
    grid = [{rename.get(k, k): [v] for k, v in c.items()} for c in configs]
    search = GridSearchCV(estimator, grid, cv=PredefinedSplit(test_fold), scoring="accuracy", refit=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X[rows], y[rows], eval_set=[(X[valid], y[valid])],
                   callbacks=[lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False)])
    return time.perf_counter() - start, np.asarray(search.cv_results_["mean_test_score"])


def subgrid(grid: dict) -> dict:
    varied = ("num_leaves", "max_depth", "learning_rate", "feature_fraction")
    return {k: (v if k in varied else [v[1]]) for k, v in grid.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=8000)
    parser.add_argument("--n-features", type=int, default=2048)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--class-sep", type=float, default=2.0, help="make_classification's class separation")
    parser.add_argument("--rounds", type=int, default=27, help="maximum boosting rounds of a full-budget fit")
    parser.add_argument("--early-stopping", type=int, default=10)
    parser.add_argument("--max-bin", type=int, default=63)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--compare-configs", type=int, default=6, help="configurations timed naive vs ours")
    parser.add_argument("--halving-min-rounds", type=int, default=3,
                        help="rounds of the first halving rung (see the module docstring for why not 1)")
    parser.add_argument("--cold", action="store_true",
                        help="refit survivors from scratch at every rung (scikit-learn's way) instead of continuing them")
    parser.add_argument("--aggressive", action="store_true",
                        help="aggressive elimination (scikit-learn's): repeat the first rung's resource until one "
                             "candidate is left at the last rung; repeated rungs reuse their fits")
    parser.add_argument("--grid-fraction", type=float, default=1.0,
                        help="share of the 6,561-point grid halved for real; time extrapolated by 1/f when < 1")
    parser.add_argument("--skip-full-grid", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.grid_fraction <= 1:
        parser.error(f"--grid-fraction must be in (0, 1], got {args.grid_fraction}")

    from genrestudy import search
    from genrestudy.classifiers import TrainingData

    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f} at start", flush=True)
    X, y, train, valid = make_problem(args.n_samples, args.n_features, args.n_classes, args.class_sep, args.seed)
    print(f"problem: {args.n_samples} x {args.n_features}, {args.n_classes} classes; train {len(train)}, "
          f"valid {len(valid)}; class_sep {args.class_sep}; max {args.rounds} rounds, early stopping {args.early_stopping}, "
          f"max_bin {args.max_bin}, n_jobs {args.n_jobs}", flush=True)
    configs = search.grid_candidates(args.compare_configs, seed=args.seed)

    naive_s, naive_scores = naive_grid_search(X, y, train, valid, configs, rounds=args.rounds,
                                              early_stopping=args.early_stopping, max_bin=args.max_bin, seed=args.seed)
    naive_rate = len(configs) / naive_s * 3600
    print(f"naive GridSearchCV: {len(configs)} configs in {naive_s:.1f} s", flush=True)

    start = time.perf_counter()
    data = TrainingData(X[train], y[train], X[valid], y[valid], num_class=args.n_classes, max_bin=args.max_bin)
    t0 = time.perf_counter()
    data.datasets()
    bin_s = time.perf_counter() - t0
    ours = search.evaluate_candidates(data, configs, num_boost_round=args.rounds,
                                      early_stopping_rounds=args.early_stopping, seed=args.seed, n_jobs=args.n_jobs)
    ours_s = time.perf_counter() - start
    equal_rate = len(configs) / ours_s * 3600
    agree = np.abs(ours["valid_accuracy"].to_numpy() - naive_scores).max() * 100
    print(f"ours, equal work per configuration: {len(configs)} configs in {ours_s:.1f} s (binning once {bin_s:.1f} s); "
          f"validation accuracy differs from naive by at most {agree:.2f} pt", flush=True)
    print(f"equal work per configuration: {equal_rate / naive_rate:.2f}x (ours {equal_rate:.0f} cfg/h, "
          f"naive {naive_rate:.0f} cfg/h)", flush=True)

    sub = search.grid_candidates(grid=subgrid(search.TABLE2_GRID))
    common = dict(num_boost_round=args.rounds, early_stopping_rounds=args.early_stopping, seed=args.seed,
                  n_jobs=args.n_jobs)
    t0 = time.perf_counter()
    exhaustive = search.run_search(data, sub, method="grid", mode="exhaustive", **common)
    exhaustive_s = time.perf_counter() - t0
    halving_kw = dict(mode="halving", min_resources=args.halving_min_rounds, aggressive_elimination=args.aggressive,
                      warm_start=not args.cold)
    halving = search.run_search(data, sub, method="grid", **halving_kw, **common)
    winner = exhaustive.trace.set_index("candidate")
    winner_index = next(i for i, c in enumerate(sub) if c == halving.best_params)
    gap = (exhaustive.best_valid_accuracy - winner.loc[winner_index, "valid_accuracy"]) * 100
    print(f"3^4 sub-grid: exhaustive {exhaustive.n_fits} fits in {exhaustive_s:.0f} s, best "
          f"{exhaustive.best_valid_accuracy:.4f}; halving ({'cold' if args.cold else 'warm'}) {halving.n_fits} fits "
          f"in {halving.wall_seconds:.0f} s, schedule {halving.settings['schedule']}, winner's exhaustive fit "
          f"{winner.loc[winner_index, 'valid_accuracy']:.4f} (in the search {halving.best_valid_accuracy:.4f}); "
          f"gap {gap:.2f} pt", flush=True)
    search_rate = len(sub) / halving.wall_seconds * 3600

    full_text = "not run"
    if not args.skip_full_grid:
        grid = search.grid_candidates()
        if args.grid_fraction < 1:
            rng = np.random.default_rng(args.seed)
            grid = [grid[i] for i in sorted(rng.choice(len(grid), int(round(len(grid) * args.grid_fraction)),
                                                       replace=False))]
        result = search.run_search(data, grid, method="grid", **halving_kw, **common)
        minutes = result.wall_seconds / 60 / args.grid_fraction
        how = "measured" if args.grid_fraction == 1 else (f"extrapolated x{1 / args.grid_fraction:.1f} from "
                                                          f"{len(grid)} of 6561 points")
        rounds = int((result.trace["num_boost_round"] - result.trace["start_round"]).sum())
        print(f"full grid halving: {len(grid)} candidates, {result.n_fits} fits ({rounds} rounds trained), schedule "
              f"{result.settings['schedule']}, {result.wall_seconds:.0f} s; full grid {minutes:.1f} min ({how}); "
              f"best validation accuracy {result.best_valid_accuracy:.4f}", flush=True)
        full_text = f"{minutes:.1f} min" + ("" if args.grid_fraction == 1 else " extrapolated")
        search_rate = len(grid) / result.wall_seconds * 3600
    print(f"load average at end {os.getloadavg()[0]:.2f}", flush=True)
    print(f"configurations searched per hour: halving {search_rate:.0f} "
          f"({'full grid' if not args.skip_full_grid else '3^4 sub-grid'}) vs naive {naive_rate:.0f}", flush=True)
    print(f"speedup: {search_rate / naive_rate:.1f}x (ours {search_rate:.0f} cfg/h, naive {naive_rate:.0f} cfg/h; "
          f"full grid halving {full_text}; halving gap {gap:.2f} pt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
