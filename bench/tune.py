"""LightGBM tuning benchmark: this implementation vs a naive GridSearchCV, and the full grid by halving.

On a paper-sized generated problem (default 8,000 × 2,048, 10 classes, split 80/10/10), with
the same train/validation split, early stopping (patience ``--early-stopping`` on the
validation multi-logloss), maximum rounds (``--rounds``) and LightGBM parameters (``max_bin``
included) on both sides:

1. **Naive reference.** ``--compare-configs`` points of Table 2 through
   ``GridSearchCV(LGBMClassifier(...), cv=PredefinedSplit(...), refit=False)`` with ``eval_set`` =
   the validation rows: one fit at a time on LightGBM's default threads, every fit binning the
   data again, every configuration trained to the full round budget. The default 27 points are
   an orthogonal array over Table 2 (every level of every axis 9 times, every pair of levels
   3 times), so their mean cost is the grid's, not a lucky draw's. It runs twice: as
   ``LGBMClassifier()`` is written, at LightGBM's default bins (``max_bin`` 255), and at the
   study's bins (``--max-bin``; by default :data:`genrestudy.classifiers.STUDY_MAX_BIN`, 63,
   which notebooks 03, 05 and 06 use). Their configurations per hour are the two naive rates.
2. **Equal work per configuration.** The same configurations through
   :func:`genrestudy.search.evaluate_candidates` (one binning, configurations side by side on one
   thread each, binning time included), each also trained to the full budget. The validation
   scores agree with the same-bins naive ones; this ratio isolates the engineering (shared
   binning, parallel fits) and is printed on its own line. The accuracy the study's coarser bins
   cost against LightGBM's default bins (mean over the configurations, and the best one's) is
   printed too.
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
engineering alone. The naive rate of the headline is the issue's reference as written
(``LGBMClassifier()``, default bins) only when the study's bins cost at most
``BIN_TOLERANCE_PT`` points of validation accuracy against it, both on average over the
compared configurations and for the best of them (the halving gap's tolerance); otherwise the
same-bins rate. The speedup at the same bins is printed on the line above in every case.

The default ``--halving-min-rounds`` is 3: ranked after one round, candidates cannot be told
apart by learning rate (one tree's argmax does not depend on it), so the first rung eliminates
at random along that axis (measured: 1.75 points of gap at 1 round, none at 3).

Usage::

    python bench/tune.py                                   # full size, full grid measured
    python bench/tune.py --grid-fraction 0.111111          # full size, full grid extrapolated from 1/9
    python bench/tune.py --n-samples 1000 --n-features 64 --rounds 9 --compare-configs 4   # smoke run

The last line is ``speedup: <X>x (ours <a> cfg/h, naive <b> cfg/h; full grid halving <t> min;
halving gap <g> pt)``.
Each run also writes a Markdown report of itself (date, command, machine, versions, load,
every printed line, wall time) to ``bench/reports/tune.md`` (``--report PATH``; see ``bench/report.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py, however this file is loaded
from report import add_report_option, bench_report, size_statement  # noqa: E402

#: LightGBM's default ``max_bin`` (what ``LGBMClassifier()`` bins with)
LIGHTGBM_DEFAULT_MAX_BIN = 255
#: validation accuracy (points) the study's bins may cost against the default bins for the
#: headline to use the default-bins naive rate; the halving gap's tolerance
BIN_TOLERANCE_PT = 0.5
#: the 8 columns of a 27-run orthogonal array of strength 2 over GF(3): pairwise independent
#: vectors, so any two columns take each of the 9 level pairs exactly 3 times
ORTHOGONAL_COLUMNS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 2, 0), (1, 0, 1), (1, 0, 2), (0, 1, 1))


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


def compare_configs(n: int, seed: int) -> list[dict]:
    """The configurations timed naive vs ours: with ``n`` = 27, an orthogonal array over Table 2
    (balanced on every axis and every pair of axes); otherwise ``n`` seeded random points."""
    from genrestudy import search

    axes = list(search.TABLE2_GRID)
    if n != 27 or len(axes) != len(ORTHOGONAL_COLUMNS) or any(len(v) != 3 for v in search.TABLE2_GRID.values()):
        return search.grid_candidates(n, seed=seed)
    runs = np.array(np.meshgrid(*[range(3)] * 3, indexing="ij")).reshape(3, -1).T   # all of GF(3)^3
    levels = runs @ np.array(ORTHOGONAL_COLUMNS).T % 3                              # (27, 8)
    return [{axis: search.TABLE2_GRID[axis][level] for axis, level in zip(axes, row)} for row in levels]


def naive_grid_search(X, y, train, valid, configs, *, rounds, early_stopping, max_bin, seed):
    """``GridSearchCV(LGBMClassifier())`` as people write it, at ``max_bin`` (255 is LightGBM's default)."""
    import lightgbm as lgb
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    rows = np.concatenate([train, valid])
    test_fold = np.r_[np.full(len(train), -1), np.zeros(len(valid), dtype=int)]
    # subsample_freq=1 so that bagging_fraction takes effect, as in the study's fits
    estimator = lgb.LGBMClassifier(n_estimators=rounds, max_bin=max_bin, subsample_freq=1, random_state=seed, verbose=-1)
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
    parser.add_argument("--max-bin", type=int, default=None,
                        help="our side's bins (default: the study's, genrestudy.classifiers.STUDY_MAX_BIN)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--compare-configs", type=int, default=27,
                        help="configurations timed naive vs ours (27: an orthogonal array over Table 2; "
                             "otherwise a seeded random sample)")
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
    add_report_option(parser, "tune")
    args = parser.parse_args(argv)
    if not 0 < args.grid_fraction <= 1:
        parser.error(f"--grid-fraction must be in (0, 1], got {args.grid_fraction}")
    size = size_statement(parser, args, ["n_samples", "n_features", "n_classes", "rounds", "compare_configs",
                                         "skip_full_grid"])
    with bench_report("tune", args.report, argv=argv, size=size, libraries=("scikit-learn", "lightgbm", "scipy")):
        return run(args)


def run(args: argparse.Namespace) -> int:

    from genrestudy import search
    from genrestudy.classifiers import STUDY_MAX_BIN, TrainingData

    args.max_bin = STUDY_MAX_BIN if args.max_bin is None else args.max_bin

    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f} at start", flush=True)
    X, y, train, valid = make_problem(args.n_samples, args.n_features, args.n_classes, args.class_sep, args.seed)
    print(f"problem: {args.n_samples} x {args.n_features}, {args.n_classes} classes; train {len(train)}, "
          f"valid {len(valid)}; class_sep {args.class_sep}; max {args.rounds} rounds, early stopping {args.early_stopping}, "
          f"max_bin {args.max_bin}, n_jobs {args.n_jobs}", flush=True)
    configs = compare_configs(args.compare_configs, args.seed)
    naive_kw = dict(rounds=args.rounds, early_stopping=args.early_stopping, seed=args.seed)

    naive = {}   # max_bin -> (seconds, validation accuracies)
    for max_bin in dict.fromkeys([LIGHTGBM_DEFAULT_MAX_BIN, args.max_bin]):
        naive[max_bin] = naive_grid_search(X, y, train, valid, configs, max_bin=max_bin, **naive_kw)
        what = "LightGBM's default bins" if max_bin == LIGHTGBM_DEFAULT_MAX_BIN else "the study's bins"
        print(f"naive GridSearchCV, {what} (max_bin {max_bin}): {len(configs)} configs in {naive[max_bin][0]:.1f} s, "
              f"mean validation accuracy {naive[max_bin][1].mean():.4f}", flush=True)
    naive_rate = {b: len(configs) / s * 3600 for b, (s, _) in naive.items()}

    start = time.perf_counter()
    data = TrainingData(X[train], y[train], X[valid], y[valid], num_class=args.n_classes, max_bin=args.max_bin)
    t0 = time.perf_counter()
    data.datasets()
    bin_s = time.perf_counter() - t0
    ours = search.evaluate_candidates(data, configs, num_boost_round=args.rounds,
                                      early_stopping_rounds=args.early_stopping, seed=args.seed, n_jobs=args.n_jobs)
    ours_s = time.perf_counter() - start
    equal_rate = len(configs) / ours_s * 3600
    ours_accuracy = ours["valid_accuracy"].to_numpy()
    agree = np.abs(ours_accuracy - naive[args.max_bin][1]).max() * 100
    print(f"ours, equal work per configuration: {len(configs)} configs in {ours_s:.1f} s (binning once {bin_s:.1f} s); "
          f"validation accuracy differs from the same-bins naive by at most {agree:.2f} pt", flush=True)
    print(f"equal work per configuration: {equal_rate / naive_rate[args.max_bin]:.2f}x at the same bins, "
          f"{equal_rate / naive_rate[LIGHTGBM_DEFAULT_MAX_BIN]:.2f}x against LightGBM's default bins (ours "
          f"{equal_rate:.0f} cfg/h, naive {naive_rate[args.max_bin]:.0f} / "
          f"{naive_rate[LIGHTGBM_DEFAULT_MAX_BIN]:.0f} cfg/h)", flush=True)
    default_accuracy = naive[LIGHTGBM_DEFAULT_MAX_BIN][1]
    bin_cost = (default_accuracy.mean() - ours_accuracy.mean()) * 100
    best_cost = (default_accuracy.max() - ours_accuracy.max()) * 100
    # the coarser bins are credited only if they keep the quality, on average and for the best configuration
    headline_bins = LIGHTGBM_DEFAULT_MAX_BIN if max(bin_cost, best_cost) <= BIN_TOLERANCE_PT else args.max_bin
    print(f"the study's bins (max_bin {args.max_bin}) vs LightGBM's default ({LIGHTGBM_DEFAULT_MAX_BIN}): mean "
          f"validation accuracy {-bin_cost:+.2f} pt, best configuration {-best_cost:+.2f} pt; the headline's naive "
          f"reference: max_bin {headline_bins} (default bins only when both cost at most {BIN_TOLERANCE_PT} pt)",
          flush=True)

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
    scope = "full grid" if not args.skip_full_grid else "3^4 sub-grid"
    print(f"configurations searched per hour: halving {search_rate:.0f} ({scope}) vs naive "
          f"{naive_rate[args.max_bin]:.0f} at the same bins, {naive_rate[LIGHTGBM_DEFAULT_MAX_BIN]:.0f} at "
          f"LightGBM's default bins", flush=True)
    print(f"speedup at the same bins (max_bin {args.max_bin}): {search_rate / naive_rate[args.max_bin]:.1f}x", flush=True)
    print(f"speedup: {search_rate / naive_rate[headline_bins]:.1f}x (ours {search_rate:.0f} cfg/h, naive "
          f"{naive_rate[headline_bins]:.0f} cfg/h; full grid halving {full_text}; halving gap {gap:.2f} pt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
