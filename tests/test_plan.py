"""genrestudy.run.plan: the work of a profile's run per notebook, and its estimated duration."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genrestudy.extractors import backbones
from genrestudy.models import search
from genrestudy.run import plan, plan_costs, profiles

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
    # notebook 03: one seed, grid and random on the paper protocol; notebook 09: the paper protocol only,
    # its two searches read from 03's cache
    per_search = 227_448
    assert len(ledger.seen) == 2
    assert ledger.run_rounds == 2 * per_search and ledger.asked_rounds == 4 * per_search
    by_stem = {w.notebook[:2]: w for w in works}
    refits_03 = 2 * 1 * 2000 + 2 * 2000
    assert by_stem["03"].units["boosting_round"] == 2 * per_search + refits_03
    assert any("2 searches reused from the cache" in line for line in by_stem["09"].lines)
    # the neighbouring studies are left out, and say so
    for stem in ("05", "06", "07"):
        assert not by_stem[stem].units and "left out of the paper profile" in by_stem[stem].lines[0]
    text = plan.format_plan("paper", size, works, ledger, None, plan.Machine(16))
    assert "ASSUMED: GTZAN's 1,000 clips" in text and text.startswith("profile paper: the paper's experiments only")
    other = refits_03 + 2000   # 03's refits and retrains, Table 8's fit (09 reads 03's winner fits back)
    assert any("winners' refits and retrains read from the cache" in line for line in by_stem["09"].lines)
    rounds = 2 * per_search + other
    assert f"at most {rounds:,} (2 distinct searches {2 * per_search:,}" in text
    # the target: the paper profile trains at most 0.6 M boosting rounds
    assert rounds <= 600_000
    assert f"{6561 * 2000 * 2:,} rounds for the searches instead of {2 * per_search:,}" in text


def test_audit_plan_counts_every_notebook_and_method(study_dirs):
    size, works, ledger = plan.plan("audit")
    by_stem = {w.notebook[:2]: w for w in works}
    inputs = profiles.AUDIT_INPUTS
    compared = inputs["compared_backbones"]
    taggers = [b for b in compared if b in backbones.MUSIC_TAGGERS]
    pairs = (len(compared) - len(taggers)) * len(inputs["compared_input_sizes"]) + len(taggers)
    per_search = 227_448
    per_compared = plan.search_rounds(inputs["compared_search_budget"], mode="halving", num_boost_round=2000)[1]
    # 03: 5 seeds x 2 on paper; 09: 2 searches on track and on filtered; 07 and 09: one per extractor and protocol
    assert len(ledger.seen) == 10 + 4 + 3 * pairs
    assert ledger.run_rounds == 14 * per_search + 3 * pairs * per_compared
    # nothing is left uncounted: every neighbouring study has units of work
    assert any(u.startswith("smallnet_row:net") for u in by_stem["06"].units)
    assert any(u.startswith("cgan_waveform_row") for u in by_stem["06"].units)   # the waveform CGAN (audit)
    assert "cgan_feature_row" in by_stem["06"].units and "head_row" in by_stem["07"].units
    assert {f"backbone:EfficientNetB7@{s}" for s in inputs["compared_input_sizes"]} <= set(by_stem["07"].units)
    assert "knn_evaluation" in by_stem["05"].units
    # Table 7 trains the neighbouring studies' methods under the two protocols notebooks 05-07 did not run
    assert sum("six small networks" in line for line in by_stem["09"].lines) == 2
    assert not any("not estimated" in line for w in works for line in w.lines)


def test_method_runs_and_their_tasks_spread_over_workers_whole_and_stage_after_stage(study_dirs, monkeypatch):
    from genrestudy.networks import smallnets
    from genrestudy.run.cluster import schedule

    monkeypatch.setattr(plan_costs.os, "cpu_count", lambda: 2)   # the Keras units measured on two cores

    _, works, _ = plan.plan("audit")
    nb06 = next(w for w in works if w.notebook.startswith("06"))
    grid = smallnets.GRIDS["paper"]
    # a task per configuration of every network (Net6 twice: the feature and the waveform CGAN's rows), after
    # the CGANs' own tasks; one model's epochs never split
    n_configs = sum(len(grid.configs(net)) for net in smallnets.NETWORKS) + len(grid.configs("net6"))
    stages = [stage for stage, _ in nb06.jobs]
    assert stages.count(0) == n_configs - 2 * len(grid.configs("net6")) + 2 and stages.count(1) == 16
    costs = {u: 0.0 for u in ("mel_image", "forward_image", "train_image", "boosting_round", "knn_evaluation",
                              "head_row", "cgan_feature_row", "cgan_waveform_row")}
    costs.update({f"smallnet_row:{net}": 0.0 for net in ("net1", "net2", "net3", "net5")})
    costs["cgan_waveform_row"] = 1.0   # the one 100-epoch waveform CGAN dominates: however many workers, it is whole
    waveform = grid.cgan_epochs * 8000
    for workers in (1, 8):
        assert nb06.seconds(costs, plan.Machine(16, workers=workers)) == pytest.approx(waveform)
    costs.update(cgan_waveform_row=0.0, **{"smallnet_row:net5": 1.0})   # Net6's configurations after the CGANs
    net6 = [c["epochs"] * 8000 * 2 for c in grid.configs("net6")]
    net5 = [c["epochs"] * 8000 for c in grid.configs("net5")]
    one = nb06.seconds(costs, plan.Machine(16))
    assert one == pytest.approx(2 * sum(net6) + sum(net5))
    spread = nb06.seconds(costs, plan.Machine(16, workers=8))   # 8 machines of 8 worker processes
    assert spread == pytest.approx(schedule([(s, False) for s in net5], 8, 8)
                                   + schedule([(s, False) for s in 2 * net6], 8, 8))
    assert spread == pytest.approx(max(net5) + max(net6))   # fewer jobs than processes: the longest bounds it


def test_a_worker_machine_runs_a_training_per_process_and_its_gpu_jobs_in_turn(study_dirs, monkeypatch):
    from genrestudy.networks import smallnets
    from genrestudy.run.cluster import makespan

    _, works, _ = plan.plan("audit")
    nb06 = next(w for w in works if w.notebook.startswith("06"))
    grid = smallnets.GRIDS["paper"]
    costs = {u: 0.0 for u in ("mel_image", "forward_image", "train_image", "boosting_round", "knn_evaluation",
                              "head_row", "cgan_feature_row", "cgan_waveform_row")}
    costs.update({f"smallnet_row:{net}": 0.0 for net in ("net1", "net2", "net3", "net5")}, **{"smallnet_row:net2": 1.0})
    net2 = [c["epochs"] * 8000 for c in grid.configs("net2")]
    # no GPU: each of a machine's 8 processes trains one network; with one: the machine's GPU takes them in turn
    monkeypatch.setattr(plan_costs.os, "cpu_count", lambda: 2)
    assert nb06.seconds(costs, plan.Machine(16, workers=2, here=False)) == pytest.approx(makespan(net2, 16))
    gpu = plan.Machine(16, gpu=True, workers=2, here=False)
    assert nb06.seconds(costs, gpu) == pytest.approx(makespan(net2, 2))
    # a Keras step off the GPU measured on more cores than a worker process has is slower there, in proportion
    monkeypatch.setattr(plan_costs.os, "cpu_count", lambda: 8)
    assert nb06.seconds(costs, plan.Machine(16, workers=2, here=False)) == pytest.approx(4 * makespan(net2, 16))
    assert nb06.seconds(costs, gpu) == pytest.approx(makespan(net2, 2))
    # one machine without a cluster runs the notebook's trainings one after another; so does a measured one
    assert plan.Machine(16).slots == 1 and plan.Machine(16, workers=2, measured="x").slots == 1
    assert plan.Machine(16, workers=2).slots == 8 and plan.Machine(3, workers=2).slots == 1


def test_a_genetic_run_fits_no_more_knns_than_the_plan_counts(study_dirs):
    from genrestudy.models import genetic, knn

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(120, 4)), rng.integers(0, 3, 120)
    X[:, 0] += y
    problem = knn.KnnProblem(X[:90], y[:90], X[90:], y[90:], n_classes=3)
    fits = []
    original = problem.valid_accuracy
    problem.valid_accuracy = lambda k: fits.append(k) or original(k)
    for population, generations in ((5, 10), (15, 30), (3, 1)):
        fits.clear()
        choice = genetic.ga_knn(problem, genetic.GASettings(population=population, generations=generations), seed=1)
        assert len(fits) == choice.distinct_k <= min(population * (generations + 1), len(knn.K_VALUES))
    _, works, _ = plan.plan("audit")
    nb05 = next(w for w in works if w.notebook.startswith("05"))
    # 3 GA seeds × 9 settings, each at most one fit per k; k enumerated under 5 seeds
    assert nb05.units["knn_evaluation"] == 3 * 9 * len(knn.K_VALUES) + 5 * len(knn.K_VALUES)


def test_the_efficiency_notebooks_lightgbm_fit_runs_on_every_core(study_dirs):
    _, works, _ = plan.plan("paper")
    nb08 = next(w for w in works if w.notebook.startswith("08"))
    rounds = nb08.parts["boosting_round", "machine"]
    costs = {"mel_image": 0.0, "forward_image": 0.0, "train_image": 0.0, "boosting_round": 1.0}
    assert rounds > 0 and nb08.seconds(costs, plan.Machine(16)) == pytest.approx(rounds / 16)


def test_the_knn_line_counts_the_features_the_knn_uses(study_dirs):
    from genrestudy.signals import spectral

    _, works, _ = plan.plan("audit")
    line = next(line for w in works if w.notebook.startswith("05") for line in w.lines)
    width = spectral.spectral_shape(np.zeros((1, 3 * 22050), np.float32), sample_rate=22050).shape[1]
    assert f"KNN on {width} spectral statistics" in line and width == 12


def test_estimates_come_from_the_unit_costs(study_dirs):
    size, works, ledger = plan.plan("paper")
    costs = {"mel_image": 0.001, "forward_image": 0.02, "train_image": 0.06, "boosting_round": 0.1}
    nb03 = next(w for w in works if w.notebook.startswith("03"))
    # searches spread over the cores; one round of one thread costs 0.1 s
    assert nb03.seconds(costs, plan.Machine(4)) == pytest.approx(nb03.units["boosting_round"] * 0.1 / 4)
    # ... the searches over every core of every worker, the winners' refits over the notebook machine's
    searches, refits = nb03.parts["boosting_round", "cores"], nb03.parts["boosting_round", "machine"]
    assert searches + refits == nb03.units["boosting_round"] and refits == 4 * 2000
    assert nb03.seconds(costs, plan.Machine(4, workers=3)) == pytest.approx(searches * 0.1 / 12 + refits * 0.1 / 4)
    nb02 = next(w for w in works if w.notebook.startswith("02"))
    assert nb02.seconds(costs, plan.Machine(4)) == pytest.approx(10_000 * 0.02)
    text = plan.format_plan("paper", size, works, ledger, costs, plan.Machine(4))
    assert "02_extract_features — about 3 min" in text
    assert "estimated duration on this machine (4 cores, no GPU): about" in text
    assert "dominated by ResNet-50 fine-tuning" in text   # 25 epochs of 8,000 images at 60 ms each
    # on a GPU machine ResNet-50 runs at its published throughput, and the plan says so
    gpu = plan.Machine(16, gpu=True, here=False)
    assert nb02.seconds(plan.plan_costs.machine_costs(costs, gpu), gpu) == pytest.approx(
        10_000 / plan.plan_costs.PUBLISHED_GPU["forward_images_per_second"])
    text = plan.format_plan("paper", size, works, ledger, costs, gpu)
    assert "published, not measured here" in text and "one machine of 16 cores + one A100-class GPU" in text


def test_machine_options():
    machine, rest, costs = plan.parse_machine(["--cores", "16", "--gpu", "--workers", "8", "-p", "budget", "9"])
    assert costs is None
    assert (machine.cores, machine.gpu, machine.workers, machine.here) == (16, True, 8, False)
    assert rest == ["-p", "budget", "9"]
    with pytest.raises(profiles.ProfileError, match="--cores needs a whole number"):
        plan.parse_machine(["--cores", "many"])
    # a bigger backbone at a bigger input costs more than ResNet-50 at 224 px, by Keras's published table
    assert plan.plan_costs.backbone_forward_factor("EfficientNetB7", 600, gpu=False) > 20
    assert plan.plan_costs.backbone_forward_factor("ResNet50", 224, gpu=True) == 1


def _costs_file(tmp_path, **changes) -> Path:
    costs = {unit: 0.001 * (i + 1) for i, unit in enumerate(plan.plan_machine.REQUIRED_UNITS)}
    content = {"format": 1, "profile": "paper", "batch": 32,
               "machine": {"cpu": "Test CPU", "cores": 16, "gpu": "NVIDIA Test", "keras_backend": "jax",
                           "precision": "bfloat16", "measured_at": "2026-12-04 19:00 UTC"}, "costs": costs}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            content[section][name] = value
        else:
            content[section] = value
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(content))
    return path


def test_a_machine_measured_there_is_planned_from_its_own_costs(tmp_path, study_dirs):
    path = _costs_file(tmp_path)
    machine, rest, costs = plan.parse_machine(["--costs", str(path), "--workers", "8", "-p", "budget", "9"])
    assert (machine.cores, machine.gpu, machine.workers, rest) == (16, True, 8, ["-p", "budget", "9"])
    assert "NVIDIA Test" in machine.describe() and "8 Dask workers" in machine.describe()
    # nothing scaled: the measured ResNet-50 cost is used as it is, not the published throughput
    assert plan.plan_costs.machine_costs(costs, machine) == costs
    size, works, ledger = plan.plan("paper")
    nb02 = next(w for w in works if w.notebook.startswith("02"))
    assert nb02.seconds(costs, machine) == pytest.approx(10_000 * costs["forward_image"])
    text = plan.format_plan("paper", size, works, ledger, costs, machine)
    assert "unit costs measured on 16 cores (Test CPU) + one NVIDIA Test, measured there on 2026-12-04" in text
    assert plan.plan_costs.PUBLISHED_GPU["source"] not in text   # no A100 throughput stands in for it
    with pytest.raises(profiles.ProfileError, match="--cores and --gpu go without it"):
        plan.parse_machine(["--costs", str(path), "--gpu"])


@pytest.mark.parametrize("change, message", [
    ({"format": 2}, "not a costs file of format 1"),
    ({"machine__cores": 0}, "machine.cores must be a whole number"),
    ({"machine__cores": True}, "machine.cores must be a whole number"),
    ({"costs": {"boosting_round": 0.1}}, "missing units"),
    ({"costs": {"made_up": 1.0}}, "unknown units"),
])
def test_a_costs_file_is_checked_before_use(tmp_path, change, message):
    path = _costs_file(tmp_path, **change)
    with pytest.raises(profiles.ProfileError, match=message):
        plan.parse_machine(["--costs", str(path)])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "fast", None])
def test_a_costs_file_refuses_a_cost_that_is_not_positive_seconds(tmp_path, bad):
    path = _costs_file(tmp_path)
    content = json.loads(path.read_text())
    content["costs"]["boosting_round"] = bad
    path.write_text(json.dumps(content).replace("NaN", "NaN"))
    with pytest.raises(plan.plan_machine.CostsFileError, match="positive finite seconds.*boosting_round"):
        plan.plan_machine.load(path)


def test_a_costs_file_that_is_not_one_is_refused_in_one_line(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(plan.plan_machine.CostsFileError, match="a.json is not JSON"):
        plan.plan_machine.load(tmp_path / "a.json")
    with pytest.raises(plan.plan_machine.CostsFileError, match="cannot read the costs file"):
        plan.plan_machine.load(tmp_path / "missing.json")
    (tmp_path / "big.json").write_bytes(b" " * (plan.plan_machine.MAX_FILE_BYTES + 1))
    with pytest.raises(plan.plan_machine.CostsFileError, match="too large"):
        plan.plan_machine.load(tmp_path / "big.json")


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
    from types import SimpleNamespace

    from genrestudy.signals import images
    from genrestudy.models import classifiers

    # a fake CPU clock that advances only inside the measured work: 20 ms per mel image, 5 ms per
    # boosting round per 1000 rows; the measure is per image, its warm-up call not counted
    clock, calls = [0.0], []
    monkeypatch.setattr(plan.plan_costs, "CPU_CLOCK", lambda: clock[0])

    def slow_images(signal, params):
        calls.append(len(signal))
        clock[0] += 0.02 * len(signal)
    monkeypatch.setattr(images, "segment_images", slow_images)
    assert plan.plan_costs.measure_mel_image() == pytest.approx(0.02)
    assert calls == [10, 10]  # one warm-up call, one timed call
    fitted = []

    def fake_fit(data, params, *, num_boost_round, **kw):
        fitted.append(len(data.y_train))
        clock[0] += 0.005 * num_boost_round * len(data.y_train) / 1000
    monkeypatch.setattr(classifiers, "fit_lightgbm", fake_fit)
    monkeypatch.setattr(classifiers.TrainingData, "datasets", lambda self: None)
    assert plan.plan_costs.measure_boosting_round(1000, rounds=4) == pytest.approx(0.005)
    assert plan.plan_costs.measure_boosting_round(16000, rounds=4) == pytest.approx(0.005 * 16)  # measured on 8000, scaled
    assert fitted == [1000] * 4 + [8000] * 4  # an untimed warm-up fit, then three timed ones

    # one fit slowed down (another program, a cold cache) does not move the median
    fits = iter(range(4))

    def one_slow_fit(data, params, *, num_boost_round, **kw):
        clock[0] += 0.005 * num_boost_round * (10 if next(fits) == 2 else 1)
    monkeypatch.setattr(classifiers, "fit_lightgbm", one_slow_fit)
    assert plan.plan_costs.measure_boosting_round(1000, rounds=4) == pytest.approx(0.005)


def test_command_line(study_dirs, monkeypatch, capsys):
    monkeypatch.setenv("GENRESTUDY_PLAN_MEASURE", "0")
    assert plan.main(["paper", "-p", "num_boost_round", "1000"]) == 0
    out = capsys.readouterr().out
    assert "1000 rounds" in out and "2000 rounds" not in out.split("08_efficiency")[0].split("plan of the")[1]
    assert plan.main(["audit", "--cores", "16", "--gpu", "--workers", "8"]) == 0
    assert "plan of the audit profile" in capsys.readouterr().out
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


def test_prepared_searches_run_alongside_the_method_tasks_on_a_cluster_only(study_dirs, monkeypatch):
    monkeypatch.setattr(plan_costs.os, "cpu_count", lambda: 2)
    costs = {"boosting_round": 1.0, "cgan_feature_row": 1.0, "knn_evaluation": 1.0}
    cluster8 = plan.Machine(16, workers=8, here=False)   # 8 machines of 8 worker processes, 128 cores
    for rounds, together in ((1280, 35.0), (12800, 100 + 35 / 64)):
        work = plan.NotebookWork("x")
        work.add("boosting_round", rounds, spread="prepared")        # a method's search: every core
        work.add_job({"cgan_feature_row": 30}, stage=0)               # its tasks, stage after stage
        work.add_job({"cgan_feature_row": 5}, stage=1)
        work.add_job({"knn_evaluation": 7})                           # the method runs, after both
        # on a cluster the fits fill the cores the tasks leave; on one machine they come one after the other
        assert work.seconds(costs, cluster8) == pytest.approx(together + 7)
        assert work.seconds(costs, plan.Machine(16)) == pytest.approx(rounds / 16 + 35 + 7)
    _, works, _ = plan.plan("audit")
    for stem in ("07", "09"):   # the searches run_protocols prepares
        assert next(w for w in works if w.notebook.startswith(stem)).parts["boosting_round", "prepared"] > 0
    assert ("boosting_round", "prepared") not in next(w for w in works if w.notebook.startswith("03")).parts


def test_on_a_cluster_the_notebooks_of_a_wave_share_it_at_once(monkeypatch):
    monkeypatch.setattr(plan_costs.os, "cpu_count", lambda: 2)
    costs = {"boosting_round": 1.0, "cgan_feature_row": 1.0, "train_image": 1.0}
    cluster8 = plan.Machine(16, workers=8, here=False)   # 128 cores, 64 worker processes

    def work(name, unit, count, spread=None, stage=None):
        w = plan.NotebookWork(name)
        w.add_job({unit: count}, stage=stage) if stage is not None else w.add(unit, count, spread=spread)
        return w

    searches, networks = work("03_a", "boosting_round", 1280, "cores"), work("06_b", "cgan_feature_row", 30, stage=0)
    finetune, after = work("04_c", "train_image", 5, "one"), work("08_d", "train_image", 2, "one")
    waves = plan.wave_seconds([searches, finetune, networks, after], costs, cluster8)
    # 03, 04 and 06 at once: the longest alone (06's one 30 s training) bounds them; 08 after them, alone
    assert [([w.notebook for w in g], s) for g, s, _ in waves] == [(["03_a", "04_c", "06_b"], 30.0), (["08_d"], 2.0)]
    assert "notebooks 03-06 at once on the cluster" in waves[0][2]
    # more work than the cluster holds at once: their work on it together bounds them
    more = work("07_e", "boosting_round", 6400, "prepared")
    heavy = work("03_a", "boosting_round", 12800, "cores")
    assert plan.wave_seconds([heavy, more], costs, cluster8)[0][1] == pytest.approx(100 + 50)
    # one machine without a cluster: one notebook after another
    one = plan.wave_seconds([searches, finetune, networks, after], costs, plan.Machine(16))
    assert [s for _, s, _ in one] == [80.0, 5.0, 30.0, 2.0]


def test_the_printed_estimate_is_the_waves_total(study_dirs):
    from genrestudy.run.plan_time import duration, total_seconds

    size, works, ledger = plan.plan("audit")
    costs = {u: 0.001 for u in plan_costs.UNITS}
    for machine in (plan.Machine(16, gpu=True, workers=8, here=False), plan.Machine(4)):
        text = plan.format_plan("audit", size, works, ledger, costs, machine)
        total = total_seconds(works, plan_costs.machine_costs(costs, machine), machine)
        assert f"estimated duration on {machine.describe()}: about {duration(total)}" in text
