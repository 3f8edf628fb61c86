"""LightGBM tuning benchmark: this implementation vs a naive GridSearchCV, LightGBM's levers, and halving's validity.

On a generated problem (default 4,000 × 512, 10 classes, split 80/10/10; ``--full``: the paper's
size, 8,000 × 2,048, and the full grid), with the same train/validation split, early stopping
(patience ``--early-stopping`` on the validation multi-logloss), maximum rounds (``--rounds``) and
LightGBM parameters (``max_bin`` included) on both sides:

1. **Naive reference.** ``--compare-configs`` points of Table 2 through
   ``GridSearchCV(LGBMClassifier(...), cv=PredefinedSplit(...), refit=False)`` with ``eval_set`` =
   the validation rows: one fit at a time on LightGBM's default threads, every fit binning the
   data again, every configuration trained to the full round budget. The default 27 points are
   an orthogonal array over Table 2 (every level of every axis 9 times, every pair of levels
   3 times), so their mean cost is the grid's, not a lucky draw's. It runs twice: as
   ``LGBMClassifier()`` is written, at LightGBM's default bins (``max_bin`` 255), and at the
   study's bins (``--max-bin``; by default :data:`genrestudy.models.classifiers.STUDY_MAX_BIN`, 63).
2. **Equal work per configuration, lever by lever.** The same configurations through
   :func:`genrestudy.models.search.evaluate_candidates` (one binning, configurations side by side on one
   thread each, binning time included), each trained to the full budget (no halving), at the
   same ``max_bin`` as the same-bins naive search: with the study's fits as they are
   (column-wise histograms, exact gradients), and with each of LightGBM's levers in
   :data:`genrestudy.models.classifiers.TRAINING_LEVERS` (row-wise histograms, quantized gradients,
   both), and one configuration at a time on all threads (thread placement). Each line gives
   the speed ratio against the same-bins naive search and the mean validation accuracy's
   difference from it; the equal-work line picks the fastest lever that keeps the mean within
   ``ACCURACY_TOLERANCE_PT`` points and says whether it reaches ``EQUAL_WORK_TARGET``.
3. **Halving quality at 27 rounds.** On a 3^4 sub-grid of Table 2 (num_leaves × max_depth ×
   learning_rate × feature_fraction; the other four at their middle values), the halving
   winner's validation accuracy in an exhaustive search vs the exhaustive best: the halving gap.
4. **Halving at the paper's round counts.** On a 3 × 3 sub-grid (learning_rate × num_leaves, the
   rest at Table 2's middle values), every configuration trained up to ``--gap-rounds`` (2000,
   the paper's) with early stopping ``--gap-early-stopping`` (50, the paper's); then the study's
   halving search over the same 9 from the paper profile's first rung (8 rounds at 2000 rounds
   over 6,561 points), and the eventual winner's rank at each rung of the paper profile's
   schedule (a 1/3 cut keeps it while its rank is at most 3 of 9). The gap is the exhaustive
   best's validation accuracy minus the halving winner's.
5. **Full grid** (``--full``, or ``--full-grid``). Successive halving over all 6,561 points
   (resource: boosting rounds from ``--halving-min-rounds`` to ``--rounds``, factor 3, survivors
   continuing their previous fit unless ``--cold``). ``--grid-fraction f < 1`` runs the same
   schedule on a random ``f`` of the grid and extrapolates the time by ``1/f``.

The headline compares how many configurations each approach *searches* per hour: halving's
(over the full grid when run, else the 3^4 sub-grid) against the naive rate, with the halving
gap beside it. The naive rate is the default-bins one only when the study's bins cost at most
``ACCURACY_TOLERANCE_PT`` points of validation accuracy against it; otherwise the same-bins rate.

On a machine shared with other work, the naive search's multithreaded fits suffer more from
the load than single-threaded ones: the load average is printed at the start and the end.

Usage::

    python bench/tune.py                    # the default size, a few minutes on 2 cores
    python bench/tune.py --full             # the paper's size and the full grid (hours on 2 cores)
    python bench/tune.py --n-samples 1000 --n-features 64 --rounds 9 --compare-configs 4 --gap-rounds 60   # smoke run

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
#: validation accuracy (points) a lever or the study's bins may cost against the naive search;
#: the halving gap's tolerance too
ACCURACY_TOLERANCE_PT = 0.5
#: the issue's target for the equal-work ratio at the same bins
EQUAL_WORK_TARGET = 3.0
#: the paper's feature matrix (GTZAN's 8,000 training segments of 2,048 ResNet-50 features)
PAPER_SIZE = {"n_samples": 10000, "n_features": 2048}
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
    from genrestudy.models import search

    axes = list(search.TABLE2_GRID)
    if n != 27 or len(axes) != len(ORTHOGONAL_COLUMNS) or any(len(v) != 3 for v in search.TABLE2_GRID.values()):
        return search.grid_candidates(n, seed=seed)
    runs = np.array(np.meshgrid(*[range(3)] * 3, indexing="ij")).reshape(3, -1).T   # all of GF(3)^3
    levels = runs @ np.array(ORTHOGONAL_COLUMNS).T % 3                              # (27, 8)
    return [{axis: search.TABLE2_GRID[axis][level] for axis, level in zip(axes, row)} for row in levels]


def naive_grid_search(X, y, train, valid, configs, *, rounds, early_stopping, max_bin, seed, parallel=0):
    """``GridSearchCV(LGBMClassifier())`` as people write it, at ``max_bin`` (255 is LightGBM's default);
    ``parallel`` > 0: ``GridSearchCV(n_jobs=parallel)`` over single-threaded fits instead."""
    import lightgbm as lgb
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    rows = np.concatenate([train, valid])
    test_fold = np.r_[np.full(len(train), -1), np.zeros(len(valid), dtype=int)]
    # subsample_freq=1 so that bagging_fraction takes effect, as in the study's fits
    estimator = lgb.LGBMClassifier(n_estimators=rounds, max_bin=max_bin, subsample_freq=1, random_state=seed, verbose=-1,
                                   **({"n_jobs": 1} if parallel else {}))
    # the searched names in the scikit-learn API's spelling
    rename = {"bagging_fraction": "subsample", "feature_fraction": "colsample_bytree"}
    grid = [{rename.get(k, k): [v] for k, v in c.items()} for c in configs]
    search = GridSearchCV(estimator, grid, cv=PredefinedSplit(test_fold), scoring="accuracy", refit=False,
                          n_jobs=parallel or None)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X[rows], y[rows], eval_set=[(X[valid], y[valid])],
                   callbacks=[lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False)])
    return time.perf_counter() - start, np.asarray(search.cv_results_["mean_test_score"])


def subgrid(grid: dict, varied=("num_leaves", "max_depth", "learning_rate", "feature_fraction")) -> dict:
    return {k: (v if k in varied else [v[1]]) for k, v in grid.items()}


def levers() -> dict[str, tuple[dict, bool]]:
    """Name -> (LightGBM training options, one configuration at a time on all threads)."""
    from genrestudy.models.classifiers import TRAINING_LEVERS

    return {"as the study fits (column-wise histograms, exact gradients)": ({}, False),
            "row-wise histograms": (TRAINING_LEVERS["row_wise"], False),
            "quantized gradients": (TRAINING_LEVERS["quantized"], False),
            "quantized gradients + row-wise histograms": ({**TRAINING_LEVERS["quantized"],
                                                           **TRAINING_LEVERS["row_wise"]}, False),
            "one configuration at a time on all threads": ({}, True)}


def equal_work(args, X, y, train, valid, configs, naive) -> tuple[float, np.ndarray]:
    """Every lever at equal work; prints a line each and the equal-work line. Returns (rate, accuracies)
    of the study's fits as they are."""
    from genrestudy.models import search
    from genrestudy.models.classifiers import TrainingData

    naive_s, naive_accuracy = naive[args.max_bin]
    naive_rate = len(configs) / naive_s * 3600
    results = {}
    for name, (training, serial) in levers().items():
        start = time.perf_counter()
        try:
            data = TrainingData(X[train], y[train], X[valid], y[valid], num_class=args.n_classes,
                                max_bin=args.max_bin, training=training)
            fits = search.evaluate_candidates(data, configs, num_boost_round=args.rounds,
                                              early_stopping_rounds=args.early_stopping, seed=args.seed,
                                              n_jobs=1 if serial else args.n_jobs, progress=False)
        except Exception as exc:  # a lever LightGBM refuses (e.g. a failed check in its C++) is reported, not fatal
            print(f"lever '{name}': FAILED ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})", flush=True)
            continue
        seconds = time.perf_counter() - start
        accuracy = fits["valid_accuracy"].to_numpy()
        results[name] = (len(configs) / seconds * 3600, accuracy)
        print(f"lever '{name}': {len(configs)} configs in {seconds:.1f} s, {results[name][0] / naive_rate:.2f}x the "
              f"same-bins naive search; mean validation accuracy {(accuracy.mean() - naive_accuracy.mean()) * 100:+.2f} "
              f"pt (largest difference of one configuration {np.abs(accuracy - naive_accuracy).max() * 100:.2f} pt)",
              flush=True)
    kept = {n: r for n, r in results.items()
            if abs(r[1].mean() - naive_accuracy.mean()) * 100 <= ACCURACY_TOLERANCE_PT}
    if kept:
        best = max(kept, key=lambda n: kept[n][0])
        ratio = kept[best][0] / naive_rate
        print(f"equal work per configuration at the same bins (max_bin {args.max_bin}): {ratio:.2f}x with '{best}' "
              f"(target {EQUAL_WORK_TARGET:.0f}x: {'met' if ratio >= EQUAL_WORK_TARGET else 'NOT met'}; mean validation "
              f"accuracy within {ACCURACY_TOLERANCE_PT} pt of the naive search; ours {kept[best][0]:.0f} cfg/h, naive "
              f"{naive_rate:.0f} cfg/h)", flush=True)
    else:
        print(f"equal work per configuration: no lever kept the mean validation accuracy within "
              f"{ACCURACY_TOLERANCE_PT} pt of the naive search", flush=True)
    study = next(iter(levers()))
    return results[study] if study in results else (float("nan"), naive_accuracy)


def _fit_curve(data, params, rounds, early_stopping, seed):
    from genrestudy.models.classifiers import fit_lightgbm

    fit = fit_lightgbm(data, params, num_boost_round=rounds, early_stopping_rounds=early_stopping, seed=seed,
                       record_curve=True)
    return fit.curve[["valid_logloss", "valid_accuracy"]].to_numpy()


def score_at(curve: np.ndarray, rounds: int) -> float:
    """Validation accuracy a fit of ``rounds`` rounds from scratch reports (at its lowest logloss)."""
    prefix = curve[:rounds]
    return float(prefix[int(np.argmin(prefix[:, 0])), 1])


def simulate_halving(curves: list[np.ndarray], rungs: list[int], factor: int) -> tuple[int, list[int]]:
    """Halving from scratch on ``rungs`` (a fit of r rounds is the first r rounds of the full fit, same seed):
    the winner's index, and the eventual exhaustive winner's rank at each rung."""
    final = np.array([score_at(c, rungs[-1] if len(c) >= rungs[-1] else len(c)) for c in curves])
    best = int(np.argmax(final))
    alive, ranks = list(range(len(curves))), []
    for r in rungs:
        scores = np.array([score_at(c, r) for c in curves])
        ranks.append(int((scores > scores[best]).sum()) + 1)
        if len(alive) > 1:
            order = sorted(alive, key=lambda i: (-scores[i], i))
            alive = order[:max(1, int(np.ceil(len(alive) / factor)))]
    scores = np.array([score_at(c, rungs[-1]) for c in curves])
    return max(alive, key=lambda i: (scores[i], -i)), ranks


def halving_at_paper_rounds(args) -> float:
    """The 3 x 3 sub-grid at the paper's round counts: exhaustive vs the study's halving; returns the gap (pt)."""
    import joblib

    from genrestudy.models import search
    from genrestudy.models.classifiers import TrainingData

    X, y, train, valid = make_problem(args.gap_samples, args.gap_features, args.n_classes, args.class_sep, args.seed)
    data = TrainingData(X[train], y[train], X[valid], y[valid], num_class=args.n_classes, max_bin=args.max_bin)
    grid = search.grid_candidates(grid=subgrid(search.TABLE2_GRID, ("learning_rate", "num_leaves")))
    rounds, patience = args.gap_rounds, args.gap_early_stopping
    t0 = time.perf_counter()
    data.datasets()
    curves = joblib.Parallel(n_jobs=args.n_jobs, prefer="threads")(
        joblib.delayed(_fit_curve)(data, c, rounds, patience, args.seed) for c in grid)
    exhaustive_s = time.perf_counter() - t0
    final = np.array([score_at(c, rounds) for c in curves])
    stopped = [len(c) for c in curves]
    best = int(np.argmax(final))
    print(f"problem for the halving check: {args.gap_samples} x {args.gap_features}; 3 x 3 sub-grid (learning_rate x "
          f"num_leaves) up to {rounds} rounds, early stopping {patience}: exhaustive in {exhaustive_s:.0f} s, fits "
          f"stopped after {min(stopped)}..{max(stopped)} rounds; best {final[best]:.4f} "
          f"({grid[best]['learning_rate']}, {grid[best]['num_leaves']} leaves)", flush=True)
    paper_first = search.default_min_resources(6561, rounds, factor=3, resource="rounds")
    gaps = {}
    for factor in (3, *args.gap_factors):
        first = search.default_min_resources(6561, rounds, factor=factor, resource="rounds")
        rungs = [r for _, r in search.halving_schedule(6561, min_resources=first, max_resources=rounds, factor=factor)]
        winner, ranks = simulate_halving(curves, rungs, factor)
        gaps[factor] = (final[best] - final[winner]) * 100
        kept = int(np.ceil(len(grid) / factor))
        label = "the paper profile's schedule" if factor == 3 else f"factor {factor}"
        print(f"{label} over 6,561 points ({', '.join(map(str, rungs))} rounds, the best 1/{factor} kept per rung): "
              f"the exhaustive winner's rank among the 9 at each rung {', '.join(map(str, ranks))} (kept while at most "
              f"{kept}); halving the 9 on these rungs from scratch picks {grid[winner]['learning_rate']}, "
              f"{grid[winner]['num_leaves']} leaves: gap {(final[best] - final[winner]) * 100:.2f} pt", flush=True)
    halving = search.run_search(data, grid, method="grid", mode="halving", num_boost_round=rounds,
                                early_stopping_rounds=patience, seed=args.seed, n_jobs=args.n_jobs,
                                min_resources=paper_first, progress=False)
    winner = next(i for i, c in enumerate(grid) if c == halving.best_params)
    print(f"the study's halving search over the 9 (first rung {paper_first} rounds as in the paper profile; with 9 "
          f"candidates its schedule is {halving.settings['schedule']}, warm): winner {grid[winner]['learning_rate']}, "
          f"{grid[winner]['num_leaves']} leaves, its exhaustive fit {final[winner]:.4f}; gap "
          f"{(final[best] - final[winner]) * 100:.2f} pt", flush=True)
    return gaps[3]


def halving_searches(args, data) -> tuple[float, float, str]:
    """The 3^4 sub-grid at ``--rounds`` (exhaustive vs halving) and, with ``--full-grid``, the full grid by
    halving; returns (the sub-grid's halving gap in points, candidates searched per hour, the full grid's time)."""
    from genrestudy.models import search

    sub = search.grid_candidates(grid=subgrid(search.TABLE2_GRID))
    common = dict(num_boost_round=args.rounds, early_stopping_rounds=args.early_stopping, seed=args.seed,
                  n_jobs=args.n_jobs, progress=False)
    t0 = time.perf_counter()
    exhaustive = search.run_search(data, sub, method="grid", mode="exhaustive", **common)
    exhaustive_s = time.perf_counter() - t0
    halving_kw = dict(mode="halving", min_resources=args.halving_min_rounds, aggressive_elimination=args.aggressive,
                      warm_start=not args.cold)
    halving = search.run_search(data, sub, method="grid", **halving_kw, **common)
    winner = exhaustive.trace.set_index("candidate")
    winner_index = next(i for i, c in enumerate(sub) if c == halving.best_params)
    gap = (exhaustive.best_valid_accuracy - winner.loc[winner_index, "valid_accuracy"]) * 100
    print(f"3^4 sub-grid at {args.rounds} rounds: exhaustive {exhaustive.n_fits} fits in {exhaustive_s:.0f} s, best "
          f"{exhaustive.best_valid_accuracy:.4f}; halving ({'cold' if args.cold else 'warm'}) {halving.n_fits} fits "
          f"in {halving.wall_seconds:.0f} s, schedule {halving.settings['schedule']}, winner's exhaustive fit "
          f"{winner.loc[winner_index, 'valid_accuracy']:.4f} (in the search {halving.best_valid_accuracy:.4f}); "
          f"gap {gap:.2f} pt", flush=True)
    search_rate = len(sub) / halving.wall_seconds * 3600

    full_text = "not run"
    if args.full_grid:
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
    return gap, search_rate, full_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true",
                        help=f"the paper's size ({PAPER_SIZE['n_samples']} x {PAPER_SIZE['n_features']}, for every "
                             "section) and the full grid")
    parser.add_argument("--n-samples", type=int, default=4000)
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--class-sep", type=float, default=2.0, help="make_classification's class separation")
    parser.add_argument("--rounds", type=int, default=27, help="maximum boosting rounds of a full-budget fit")
    parser.add_argument("--early-stopping", type=int, default=10)
    parser.add_argument("--max-bin", type=int, default=None,
                        help="our side's bins (default: the study's, genrestudy.models.classifiers.STUDY_MAX_BIN)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--compare-configs", type=int, default=27,
                        help="configurations timed naive vs ours (27: an orthogonal array over Table 2; "
                             "otherwise a seeded random sample)")
    parser.add_argument("--gap-rounds", type=int, default=2000, help="rounds of the halving check at the paper's counts")
    parser.add_argument("--gap-early-stopping", type=int, default=50)
    parser.add_argument("--gap-factors", type=int, nargs="*", default=[4, 5],
                        help="other halving factors simulated on the same fits (fewer rounds per search)")
    parser.add_argument("--gap-samples", type=int, default=None, help="rows of its problem (default: --n-samples)")
    parser.add_argument("--gap-features", type=int, default=None, help="columns of its problem (default: --n-features)")
    parser.add_argument("--halving-min-rounds", type=int, default=3,
                        help="rounds of the first halving rung at --rounds (why not 1: genrestudy.models.search)")
    parser.add_argument("--cold", action="store_true",
                        help="refit survivors from scratch at every rung (scikit-learn's way) instead of continuing them")
    parser.add_argument("--aggressive", action="store_true",
                        help="aggressive elimination (scikit-learn's): repeat the first rung's resource until one "
                             "candidate is left at the last rung; repeated rungs reuse their fits")
    parser.add_argument("--full-grid", action="store_true", help="halve the full 6,561-point grid (always with --full)")
    parser.add_argument("--grid-fraction", type=float, default=1.0,
                        help="share of the 6,561-point grid halved for real; time extrapolated by 1/f when < 1")
    parser.add_argument("--seed", type=int, default=0)
    add_report_option(parser, "tune")
    args = parser.parse_args(argv)
    if not 0 < args.grid_fraction <= 1:
        parser.error(f"--grid-fraction must be in (0, 1], got {args.grid_fraction}")
    if args.full:
        args.n_samples, args.n_features, args.full_grid = PAPER_SIZE["n_samples"], PAPER_SIZE["n_features"], True
    size = size_statement(parser, args, ["n_samples", "n_features", "n_classes", "rounds", "compare_configs",
                                         "gap_rounds", ("gap_samples", lambda v, _: v < args.n_samples),
                                         ("gap_features", lambda v, _: v < args.n_features)])
    args.gap_samples = args.gap_samples or args.n_samples
    args.gap_features = args.gap_features or args.n_features
    with bench_report("tune", args.report, argv=argv, size=size, libraries=("scikit-learn", "lightgbm", "scipy")):
        return run(args)


def run(args: argparse.Namespace) -> int:
    from genrestudy.models.classifiers import STUDY_MAX_BIN, TrainingData

    args.max_bin = STUDY_MAX_BIN if args.max_bin is None else args.max_bin
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
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
    # the same search over single-threaded fits side by side: what the study's parallelism alone gives,
    # and a reference that a loaded machine's thread contention distorts less
    parallel_s, parallel_accuracy = naive_grid_search(X, y, train, valid, configs, max_bin=args.max_bin,
                                                      parallel=args.n_jobs, **naive_kw)
    print(f"naive GridSearchCV(n_jobs={args.n_jobs}) over single-threaded fits, the study's bins: {len(configs)} configs "
          f"in {parallel_s:.1f} s ({naive[args.max_bin][0] / parallel_s:.2f}x the naive search), mean validation "
          f"accuracy {parallel_accuracy.mean():.4f}", flush=True)

    ours_rate, ours_accuracy = equal_work(args, X, y, train, valid, configs, naive)
    print(f"the study's fits as they are vs the parallel naive search: {ours_rate * parallel_s / len(configs) / 3600:.2f}x",
          flush=True)
    default_accuracy = naive[LIGHTGBM_DEFAULT_MAX_BIN][1]
    bin_cost = (default_accuracy.mean() - ours_accuracy.mean()) * 100
    best_cost = (default_accuracy.max() - ours_accuracy.max()) * 100
    # the coarser bins are credited only if they keep the quality, on average and for the best configuration
    headline_bins = LIGHTGBM_DEFAULT_MAX_BIN if max(bin_cost, best_cost) <= ACCURACY_TOLERANCE_PT else args.max_bin
    print(f"the study's bins (max_bin {args.max_bin}) vs LightGBM's default ({LIGHTGBM_DEFAULT_MAX_BIN}): mean "
          f"validation accuracy {-bin_cost:+.2f} pt, best configuration {-best_cost:+.2f} pt; the headline's naive "
          f"reference: max_bin {headline_bins} (default bins only when both cost at most {ACCURACY_TOLERANCE_PT} pt)",
          flush=True)

    data = TrainingData(X[train], y[train], X[valid], y[valid], num_class=args.n_classes, max_bin=args.max_bin)
    gap, search_rate, full_text = halving_searches(args, data)
    paper_gap = halving_at_paper_rounds(args)
    print(f"load average at end {os.getloadavg()[0]:.2f}", flush=True)
    scope = "full grid" if args.full_grid else "3^4 sub-grid"
    print(f"configurations searched per hour: halving {search_rate:.0f} ({scope}) vs naive "
          f"{naive_rate[args.max_bin]:.0f} at the same bins, {naive_rate[LIGHTGBM_DEFAULT_MAX_BIN]:.0f} at "
          f"LightGBM's default bins", flush=True)
    print(f"speedup at the same bins (max_bin {args.max_bin}): {search_rate / naive_rate[args.max_bin]:.1f}x", flush=True)
    print(f"speedup: {search_rate / naive_rate[headline_bins]:.1f}x (ours {search_rate:.0f} cfg/h, naive "
          f"{naive_rate[headline_bins]:.0f} cfg/h; full grid halving {full_text}; halving gap {gap:.2f} pt at "
          f"{args.rounds} rounds, {paper_gap:.2f} pt at the paper's {args.gap_rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
