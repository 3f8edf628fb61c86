"""genrestudy.plan: the work of a profile's run per notebook, and its estimated duration."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from genrestudy import backbones, plan, profiles, search

ROOT = Path(__file__).resolve().parent.parent
#: the paper profile's halving search over 6,561 points up to 2000 rounds, rung by rung
#: (candidates, rounds): sklearn's schedule from 8 rounds, factor 3, survivors continuing their fits
PAPER_SCHEDULE = [(6561, 8), (2187, 24), (729, 72), (243, 216), (81, 648), (27, 1944)]


def test_search_rounds_follow_the_halving_schedule():
    assert search.halving_schedule(6561, min_resources=8, max_resources=2000) == PAPER_SCHEDULE
    fits, rounds = plan.search_rounds(6561, mode="halving", num_boost_round=2000)
    assert fits == sum(n for n, _ in PAPER_SCHEDULE) == 9828
    # warm starts: each rung trains only the rounds its survivors lack
    assert rounds == 6561 * 8 + 2187 * 16 + 729 * 48 + 243 * 144 + 81 * 432 + 27 * 1296 == 227_448
    assert plan.search_rounds(6, mode="exhaustive", num_boost_round=20) == (6, 120)
    assert plan.n_candidates("grid", 10 ** 6) == 6561 and plan.n_candidates("random", 10 ** 6) == 10 ** 6


def test_paper_plan_counts_every_search_once_and_assumes_gtzan(study_dirs):
    size, works, ledger = plan.plan("paper")
    assert size.assumed and size.clips == plan.GTZAN_CLIPS
    stems = [w.notebook for w in works]
    assert stems == [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    # notebook 03: 5 seeds x grid and random on the paper protocol; notebook 09: grid and random on
    # three protocols at the first seed, the paper protocol's two read from 03's cache
    per_search = 227_448
    inputs = profiles.PAPER_INPUTS
    # neighbouring study 3: a Random Search of compared_search_budget draws per compared image backbone
    # and input size (a music tagger: its own input only), in notebook 07 (its protocol, the paper's)
    # and under each protocol of Table 7 (the paper protocol's read from 07's cache)
    compared = inputs.get("compared_backbones", ())
    taggers = [b for b in compared if b in backbones.MUSIC_TAGGERS]
    pairs = (len(compared) - len(taggers)) * len(inputs.get("compared_input_sizes", ())) + len(taggers)
    per_compared = plan.search_rounds(inputs.get("compared_search_budget") or inputs["budget"], mode="halving",
                                      num_boost_round=2000)[1]
    has_07 = "07_backbones" in stems
    distinct = 10 + 4 + pairs * (3 if has_07 else 0)
    run_rounds = 14 * per_search + pairs * (3 if has_07 else 0) * per_compared
    asked_rounds = 16 * per_search + pairs * (4 if has_07 else 0) * per_compared
    assert len(ledger.seen) == distinct
    assert ledger.asked_rounds == asked_rounds and ledger.run_rounds == run_rounds
    by_stem = {w.notebook[:2]: w for w in works}
    refits_03 = 2 * 5 * 2000 + 2 * 2000
    assert by_stem["03"].units["boosting_round"] == 10 * per_search + refits_03
    assert any("2 searches reused from the cache" in line for line in by_stem["09"].lines)
    text = plan.format_plan("paper", size, works, ledger, None, cores=16)
    assert "ASSUMED: GTZAN's 1,000 clips" in text
    # 03's refits and retrains, Table 8's fit, 09's per protocol, and each backbone search's winner refitted
    backbone_refits = len(compared) * 2000 * (4 if has_07 else 0)
    other = refits_03 + 2000 + 3 * (2 * 2000 + 2 * 2000) + backbone_refits
    assert f"at most {run_rounds + other:,} ({distinct} distinct searches {run_rounds:,}" in text
    assert f"{asked_rounds + other:,} if every notebook ran its own searches" in text


def test_estimates_come_from_the_unit_costs(study_dirs):
    size, works, ledger = plan.plan("paper")
    costs = {"mel_image": 0.001, "forward_image": 0.02, "train_image": 0.06, "boosting_round": 0.1}
    nb03 = next(w for w in works if w.notebook.startswith("03"))
    # searches spread over the cores; one round of one thread costs 0.1 s
    assert nb03.seconds(costs, 4) == pytest.approx(nb03.units["boosting_round"] * 0.1 / 4)
    nb02 = next(w for w in works if w.notebook.startswith("02"))
    assert nb02.seconds(costs, 4) == pytest.approx(10_000 * 0.02)
    text = plan.format_plan("paper", size, works, ledger, costs, cores=4)
    assert "02_extract_features — about 3 min" in text
    assert "estimated duration on this machine: about" in text


def test_a_notebook_the_plan_does_not_know_gets_a_line(tmp_path, monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["data = 'auto'\n"],
            "execution_count": None, "outputs": []}
    (root / "notebooks" / "10_something_new.ipynb").write_text(json.dumps(
        {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setenv("GENRESTUDY_ROOT", str(root))
    _, works, _ = plan.plan("paper")
    new = next(w for w in works if w.notebook == "10_something_new")
    assert not new.known and "knows nothing about this notebook" in new.lines[0]


def test_measured_unit_costs_are_per_image_and_per_round_at_the_planned_size(monkeypatch):
    import time
    from types import SimpleNamespace

    from genrestudy import classifiers, images

    # a mel image that takes 20 ms each: the measure is per image, its warm-up call not counted
    calls = []

    def slow_images(signal, params):
        calls.append(len(signal))
        time.sleep(0.02 * len(signal))
    monkeypatch.setattr(images, "segment_images", slow_images)
    per_image = plan._measure_mel_image()
    assert calls == [1, 10] and 0.02 <= per_image < 0.04
    # a boosting fit of 5 ms per round on the rows it was given: per round, scaled to the planned rows
    fitted = []

    def fake_fit(data, params, *, num_boost_round, **kw):
        fitted.append(len(data.y_train))
        return SimpleNamespace(fit_seconds=0.005 * num_boost_round * len(data.y_train) / 1000)
    monkeypatch.setattr(classifiers, "fit_lightgbm", fake_fit)
    monkeypatch.setattr(classifiers.TrainingData, "datasets", lambda self: None)
    assert plan._measure_boosting_round(1000, rounds=4) == pytest.approx(0.005)
    assert plan._measure_boosting_round(16000, rounds=4) == pytest.approx(0.005 * 16)  # measured on 8000, scaled
    assert fitted == [1000, 8000]


def test_command_line(study_dirs, monkeypatch, capsys):
    monkeypatch.setenv("GENRESTUDY_PLAN_MEASURE", "0")
    assert plan.main(["paper", "-p", "num_boost_round", "1000"]) == 0
    out = capsys.readouterr().out
    assert "1000 rounds" in out and "2000 rounds" not in out.split("08_efficiency")[0]
    assert plan.main(["paper", "-p", "no_such_parameter", "1"]) == 1
    assert "no notebook has the parameter(s) no_such_parameter" in capsys.readouterr().err
    assert plan.main([]) == 2


@pytest.mark.slow  # run_all.sh starts Python and imports the package (a few seconds)
def test_run_all_plan_needs_neither_gtzan_nor_weights(tmp_path):
    env = {**os.environ, "GENRESTUDY_DATA": str(tmp_path / "data"), "KERAS_HOME": str(tmp_path / "keras"),
           "GENRESTUDY_PLAN_MEASURE": "0"}
    env.pop("GENRESTUDY_SCALE", None)
    run = subprocess.run([str(ROOT / "run_all.sh"), "--profile", "paper", "--plan"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "plan of the paper profile: 1,000 clips" in run.stdout and "ASSUMED" in run.stdout
    assert "boosting rounds in all" in run.stdout
    env["GENRESTUDY_SCALE"] = "smoke"
    run = subprocess.run([str(ROOT / "run_all.sh"), "--profile", "paper", "--plan"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "9 rounds" in run.stdout
