"""Grid vs Random Search: Table 2 exactly, sklearn's halving schedule, parallel and Dask paths."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV
from sklearn.tree import DecisionTreeClassifier

from genrestudy.models import search, tuning
from genrestudy.report import plots
from genrestudy.models.classifiers import training_data


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=360, n_features=16, n_informative=6, n_classes=3, random_state=1)
    split = np.where(np.arange(360) < 240, "train", np.where(np.arange(360) < 300, "valid", "test"))
    return training_data(X, y, split, max_bin=31), X[split == "test"], y[split == "test"]


def test_grid_is_table2_exactly():
    grid = search.grid_candidates()
    assert len(grid) == 6561 == 3 ** 8
    assert {k: sorted({g[k] for g in grid}) for k in search.TABLE2_GRID} == search.TABLE2_GRID
    assert len({tuple(sorted(g.items())) for g in grid}) == 6561
    sub = search.grid_candidates(20, seed=3)
    assert len({tuple(sorted(g.items())) for g in sub}) == 20 and sub == search.grid_candidates(20, seed=3)


def test_random_space_spans_grid_bounds_and_is_seeded():
    draws = pd.DataFrame(search.random_candidates(400, seed=0))
    for name, values in search.TABLE2_GRID.items():
        assert draws[name].min() >= min(values) and draws[name].max() <= max(values), name
    for name in ("num_leaves", "max_depth", "min_child_samples"):
        assert pd.api.types.is_integer_dtype(draws[name])
    assert draws["learning_rate"].nunique() == 400  # continuous, not the grid's three values
    assert search.random_candidates(5, seed=7) == search.random_candidates(5, seed=7)
    assert search.random_candidates(5, seed=7) != search.random_candidates(5, seed=8)


@pytest.mark.parametrize("n_candidates,min_r,max_r,aggressive", [(6561, 1, 27, False), (81, 2, 60, False),
                                                                  (81, 1, 9, True), (10, 20, 240, False)])
def test_halving_schedule_matches_scikit_learn(n_candidates, min_r, max_r, aggressive):
    X, y = make_classification(n_samples=max_r, n_features=4, random_state=0)
    grid = {"min_samples_leaf": list(range(1, n_candidates + 1))}
    sk = HalvingGridSearchCV(DecisionTreeClassifier(random_state=0), grid, factor=3, min_resources=min_r,
                             max_resources=max_r, aggressive_elimination=aggressive, cv=[(np.arange(max_r),) * 2],
                             resource="n_samples").fit(X, y) if n_candidates <= 81 else None
    ours = search.halving_schedule(n_candidates, min_resources=min_r, max_resources=max_r,
                                   aggressive_elimination=aggressive)
    if sk is not None:
        assert [c for c, _ in ours] == sk.n_candidates_
        assert [r for _, r in ours] == sk.n_resources_
    else:  # 6561 candidates, 1..27 rounds: 4 rungs, each third of the last
        assert ours == [(6561, 1), (2187, 3), (729, 9), (243, 27)]


def test_exhaustive_search_selects_by_validation_accuracy(data):
    train, _, _ = data
    result = search.random_search(train, n_iter=4, seed=0, num_boost_round=15, early_stopping_rounds=5, n_jobs=2,
                                  progress=False)
    assert result.n_fits == 4 and list(result.trace["fit"]) == [1, 2, 3, 4]
    top = result.trace.sort_values(["valid_accuracy", "valid_logloss"], ascending=[False, True]).iloc[0]
    assert result.best_valid_accuracy == top["valid_accuracy"]
    assert result.best_params == {k: top[k] for k in search.TABLE2_GRID}
    # whole-number parameters stay whole numbers (Tables 3 and 4 print num_leaves 24, not 24.0)
    for name in ("num_leaves", "max_depth", "min_child_samples"):
        assert type(result.best_params[name]) is int, name
    table = result.best_table()
    assert table.loc[0, "bagging_freq"] == 1 and table.loc[0, "n_fits"] == 4


def test_parallel_threads_give_the_same_scores_as_one_job(data):
    train, _, _ = data
    candidates = search.grid_candidates(6, seed=2)
    one = search.evaluate_candidates(train, candidates, num_boost_round=12, n_jobs=1, progress=False)
    two = search.evaluate_candidates(train, candidates, num_boost_round=12, n_jobs=2, progress=False)
    pd.testing.assert_series_equal(one["valid_logloss"], two["valid_logloss"], rtol=1e-9)


@pytest.mark.parametrize("resource", ["rounds", "samples"])
def test_halving_follows_its_schedule_and_keeps_the_best(data, resource):
    train, _, _ = data
    result = search.grid_search(train, budget=9, seed=0, mode="halving", resource=resource, num_boost_round=18,
                                min_resources=2 if resource == "rounds" else None, early_stopping_rounds=None,
                                n_jobs=2, progress=False)
    assert result.settings["schedule"] == ([(9, 2), (3, 6), (1, 18)] if resource == "rounds"
                                           else [(9, 26), (3, 78), (1, 234)])  # 240 // 9, as sklearn "exhaust"
    assert list(result.trace.groupby("rung").size()) == [9, 3, 1]
    column = "num_boost_round" if resource == "rounds" else "n_rows"
    assert list(result.trace.groupby("rung")[column].first()) == [r for _, r in result.settings["schedule"]]
    for rung in (0, 1):  # survivors are the best third of each rung
        scored = result.trace[result.trace["rung"] == rung].sort_values(
            ["valid_accuracy", "valid_logloss", "candidate"], ascending=[False, True, True])
        survivors = set(result.trace.loc[result.trace["rung"] == rung + 1, "candidate"])
        assert survivors == set(scored["candidate"].head(len(survivors)))


def test_aggressive_elimination_reuses_fits_at_a_repeated_resource(data):
    train, _, _ = data
    result = search.grid_search(train, budget=9, mode="halving", min_resources=4, num_boost_round=12,
                                aggressive_elimination=True, n_jobs=2, progress=False)
    assert result.settings["schedule"] == [(9, 4), (3, 4), (1, 12)]
    assert result.n_fits == 10  # the second rung's three fits at 4 rounds are reused, not repeated


def test_equal_budget_comparison_and_summary(data, study_dirs):
    train, X_test, y_test = data
    per_seed, searches = tuning.compare_at_equal_budget(train, X_test, y_test, budget=3, seeds=[0, 1],
                                                        num_boost_round=10, early_stopping_rounds=5,
                                                        progress=False)
    assert len(per_seed) == 4 and set(per_seed["method"]) == {"grid", "random"}
    assert (per_seed["n_fits"] == 3).all()
    chance = 1 / len(np.unique(y_test))
    assert (per_seed["test_accuracy"] > chance + 0.2).all()  # learnt from the features, not guessed
    summary = tuning.summarize_comparison(per_seed)
    row = summary.set_index("method").loc["grid"]
    assert row["valid_accuracy_ci_low"] <= row["valid_accuracy_mean"] <= row["valid_accuracy_ci_high"]
    fig = plots.plot_search_trace({m: [searches[s][m] for s in searches] for m in ("grid", "random")})
    assert len(fig.axes[0].get_legend().get_texts()) == 2


def test_bad_search_arguments(data):
    train, _, _ = data
    with pytest.raises(ValueError, match="search mode"):
        search.run_search(train, search.grid_candidates(2), method="grid", mode="bayes")
    with pytest.raises(ValueError, match="halving resource"):
        search.run_search(train, search.grid_candidates(2), method="grid", mode="halving", resource="trees")
    with pytest.raises(ValueError, match="n_iter"):
        search.random_candidates(0)


def test_dask_cluster_runs_the_same_fits(data):
    distributed = pytest.importorskip("distributed")
    train, _, _ = data
    candidates = search.grid_candidates(4, seed=5)
    local = search.evaluate_candidates(train, candidates, num_boost_round=8, n_jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = search.evaluate_candidates(train, candidates, num_boost_round=8, n_jobs=2, progress=False,
                                            scheduler_address=cluster.scheduler_address)
        with distributed.Client(cluster.scheduler_address) as client:
            workers_used = client.run(lambda: __import__("genrestudy.models.classifiers").models.classifiers._BINNED.copy().keys())
        # warm-started halving: the continued fits' states travel to the workers and back
        kw = dict(method="grid", mode="halving", min_resources=2, num_boost_round=6, n_jobs=2, progress=False)
        halving_remote = search.run_search(train, candidates, scheduler_address=cluster.scheduler_address, **kw)
    halving_local = search.run_search(train, candidates, **kw)
    pd.testing.assert_series_equal(local["valid_logloss"], remote["valid_logloss"], rtol=1e-9)
    assert any(train.key in keys for keys in workers_used.values())  # the fits ran on the workers
    assert list(halving_remote.trace["start_round"]) == [0] * 4 + [2] * 2 and halving_remote.settings["warm_start"]
    pd.testing.assert_series_equal(halving_local.trace["valid_logloss"], halving_remote.trace["valid_logloss"],
                                   rtol=1e-9)


def test_warm_started_halving_trains_only_the_extra_rounds(data):
    train, _, _ = data
    kw = dict(budget=9, seed=0, mode="halving", num_boost_round=18, min_resources=2, early_stopping_rounds=None,
              n_jobs=2, progress=False)
    warm = search.grid_search(train, **kw)
    cold = search.grid_search(train, warm_start=False, **kw)
    assert warm.settings["warm_start"] and not cold.settings["warm_start"]
    # the same schedule; each survivor continues from its previous rung's rounds
    assert list(warm.trace["num_boost_round"]) == list(cold.trace["num_boost_round"]) == [2] * 9 + [6] * 3 + [18]
    assert list(warm.trace["start_round"]) == [0] * 9 + [2] * 3 + [6]
    assert (cold.trace["start_round"] == 0).all()
    # the first rung is the same fits; the survivors of rung 0 are the same candidates
    rung0 = warm.trace["rung"] == 0
    pd.testing.assert_frame_equal(warm.trace.loc[rung0, ["candidate", "valid_logloss"]],
                                  cold.trace.loc[rung0, ["candidate", "valid_logloss"]])
    assert (set(warm.trace.loc[warm.trace["rung"] == 1, "candidate"])
            == set(cold.trace.loc[cold.trace["rung"] == 1, "candidate"]))


@pytest.mark.parametrize("n_candidates,rounds,schedule", [
    (81, 27, [(81, 3), (27, 9), (9, 27)]),       # bench/tune.py's sub-grid: 3 -> 9 -> 27 rounds
    (9, 18, [(9, 6), (3, 18)]),                  # 18 // 9 = 2 < 3 rounds: one rung fewer
    (6561, 2000, [(6561, 8), (2187, 24), (729, 72), (243, 216), (81, 648), (27, 1944)]),  # the paper profile
    (4, 2, [(4, 2)]),                            # too few rounds to halve at all
])
def test_default_first_rung_has_at_least_three_rounds(data, n_candidates, rounds, schedule, monkeypatch):
    train, _, _ = data
    planned = []

    def no_fits(*args, **kwargs):  # record the plan; the fits themselves are tested above
        planned.append(kwargs["num_boost_round"])
        raise StopIteration

    monkeypatch.setattr(search, "evaluate_candidates", no_fits)
    with pytest.raises(StopIteration):
        search.run_search(train, [{"num_leaves": 16 + i} for i in range(n_candidates)], method="grid",
                          mode="halving", num_boost_round=rounds, progress=False)
    assert planned == [schedule[0][1]]
    assert search.halving_schedule(n_candidates, min_resources=schedule[0][1], max_resources=rounds) == schedule


# ---------------------------------------------------------------- Random Search's learning-rate prior

def test_learning_rate_distribution_is_a_stated_choice_with_a_uniform_option():
    low, high = min(search.TABLE2_GRID["learning_rate"]), max(search.TABLE2_GRID["learning_rate"])
    below = {}
    for name in search.LEARNING_RATE_DISTRIBUTIONS:
        rates = pd.DataFrame(search.random_candidates(4000, seed=0, learning_rate=name))["learning_rate"]
        assert low <= rates.min() and rates.max() <= high
        below[name] = float((rates < 0.02).mean())
    # log-uniform: ln 4 / ln 6 of the draws below 0.02; uniform: (0.02 - 0.005) / 0.025
    assert below["log-uniform"] == pytest.approx(np.log(4) / np.log(6), abs=0.03)
    assert below["uniform"] == pytest.approx(0.6, abs=0.03)
    assert search.random_candidates(5, seed=1) == search.random_candidates(5, seed=1, learning_rate="log-uniform")
    with pytest.raises(ValueError, match="unknown learning-rate distribution 'normal'"):
        search.random_space("normal")
    table = search.spaces_table(learning_rate="uniform").set_index("parameter")
    assert table.loc["learning_rate", "random distribution"] == "uniform"
    assert search.spaces_table().set_index("parameter").loc["learning_rate", "random distribution"] == "loguniform"


def test_each_learning_rate_distribution_has_its_own_cached_search(data, tmp_path):
    train, _, _ = data
    kw = dict(budget=3, seed=0, num_boost_round=4, early_stopping_rounds=None, n_jobs=1, progress=False,
              cache_root=tmp_path)
    log_uniform = tuning.cached_search(train, "random", **kw)
    uniform = tuning.cached_search(train, "random", random_learning_rate="uniform", **kw)
    assert uniform.trace["learning_rate"].tolist() != log_uniform.trace["learning_rate"].tolist()
    assert uniform.settings["random_learning_rate"] == "uniform"
    assert len([p for p in (tmp_path / "searches").iterdir() if p.is_dir()]) == 2
    # a grid search does not depend on the random prior: one entry for both
    tuning.cached_search(train, "grid", **kw)
    tuning.cached_search(train, "grid", random_learning_rate="uniform", **kw)
    assert len([p for p in (tmp_path / "searches").iterdir() if p.is_dir()]) == 3


# ---------------------------------------------------------------- progress in executed notebooks

def test_executed_copies_get_one_line_per_step_instead_of_a_bar(data, monkeypatch, capsys):
    from genrestudy import progress

    train, _, _ = data
    candidates = search.grid_candidates(4, seed=0)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # what run_all.sh sets for papermill runs
    search.evaluate_candidates(train, candidates, num_boost_round=3, early_stopping_rounds=None, n_jobs=1,
                               desc="grid search")
    captured = capsys.readouterr()
    assert captured.err == ""  # no bar
    (line,) = captured.out.splitlines()
    assert line.startswith("grid search: 4/4 in ") and line.endswith(" s")
    search.evaluate_candidates(train, candidates, num_boost_round=3, early_stopping_rounds=None, n_jobs=1,
                               progress=False)
    assert capsys.readouterr().out == ""  # progress=False: nothing at all
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert progress.bars_wanted()
    bar = progress.progress_bar(range(2), desc="x")  # a console or JupyterLab: tqdm's bar
    assert not isinstance(bar, progress.OneLineProgress) and list(bar) == [0, 1]


# ---------------------------------------------------------------- threads of the late halving rungs

def test_late_halving_rungs_use_the_idle_cores_and_change_nothing(data, monkeypatch):
    train, _, _ = data
    kw = dict(budget=9, seed=0, mode="halving", num_boost_round=18, min_resources=2, early_stopping_rounds=4,
              n_jobs=-1, progress=False)
    monkeypatch.setattr(search.os, "cpu_count", lambda: 4)
    spread = search.grid_search(train, **kw)
    # 9 fits on 4 cores: one thread each; 3 fits: one each (4 // 3); the last one: all four
    assert list(spread.trace.groupby("rung")["num_threads"].first()) == [1, 1, 4]
    monkeypatch.setattr(search, "threads_per_fit", lambda *args, **kwargs: 1)  # the former rule: one thread a fit
    single = search.grid_search(train, **kw)
    assert (single.trace["num_threads"] == 1).all()
    same = ["candidate", "rung", "num_boost_round", "start_round", "best_iteration", "valid_accuracy", "valid_logloss"]
    pd.testing.assert_frame_equal(spread.trace[same], single.trace[same], check_exact=True)
    assert spread.best_params == single.best_params and spread.best_valid_accuracy == single.best_valid_accuracy


def test_threads_per_fit_shares_the_cores_among_the_fits_at_once():
    assert search.threads_per_fit(729, 16, 16) == 1
    assert search.threads_per_fit(3, 16, 16) == 5 and search.threads_per_fit(1, 16, 16) == 16
    assert search.threads_per_fit(27, 128, 16, n_machines=8) == 4  # 4 fits per 16-core worker
    assert search.threads_per_fit(5, 2, 2) == 1 and search.threads_per_fit(1, 2, 2) == 2
