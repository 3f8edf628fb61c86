import ast
import json

import pytest

from genrestudy import paths
from genrestudy.models import classifiers
from genrestudy.run import profiles


def test_demo_is_the_notebooks_defaults_and_the_default_without_gtzan(study_dirs):
    assert profiles.default_profile() == "demo"
    assert profiles.notebook_parameters("demo", "03_tune_lightgbm") == {}
    profiles.check_profile("demo")


def test_paper_profile_refuses_without_gtzan_or_weights(study_dirs, monkeypatch, tmp_path):
    with pytest.raises(profiles.ProfileError, match="needs GTZAN.*data/gtzan") as err:
        profiles.check_profile("paper")
    assert "\n" not in str(err.value)
    (study_dirs["data"] / "gtzan" / "genres_original").mkdir(parents=True)
    assert profiles.default_profile() == "paper"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    with pytest.raises(profiles.ProfileError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        profiles.check_profile("paper")


def test_paper_parameters_and_command_line(capsys):
    assert profiles.notebook_parameters("paper", "02_extract_features")["weights"] == "imagenet"
    assert profiles.main(["params", "paper", "03_tune_lightgbm"]) == 0
    assert json.loads(capsys.readouterr().out)["budget"] == 6561
    assert profiles.main(["check", "nope"]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert profiles.main(["what"]) == 2


def test_every_notebook_bins_lightgbm_as_the_study_does():
    # one binning for the whole study: the searches' max_bin parameter is the library's default
    for stem in ("03_tune_lightgbm", "09_results"):
        notebook = json.loads((paths.project_root() / "notebooks" / f"{stem}.ipynb").read_text())
        cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
        values = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse("".join(cell["source"])).body
                  if isinstance(node, ast.Assign)}
        assert values["max_bin"] == classifiers.STUDY_MAX_BIN, stem
        assert "max_bin" not in profiles.notebook_parameters("paper", stem)


def test_smoke_scale_shrinks_the_profile_and_nothing_else(monkeypatch, capsys):
    monkeypatch.delenv(profiles.SCALE_ENV, raising=False)
    full = profiles.notebook_parameters("paper", "03_tune_lightgbm")
    smoke = profiles.notebook_parameters("paper", "03_tune_lightgbm", scale="smoke")
    assert full["budget"] == 6561 and smoke["budget"] == profiles.SMOKE_INPUTS["budget"] < 6561
    assert smoke["num_boost_round"] < full["num_boost_round"] and len(smoke["seeds"]) <= len(full["seeds"])
    # the paper profile's data, weights, protocol and search mode stay: only budgets shrink
    for name in ("data", "weights", "protocol", "search_mode"):
        assert smoke[name] == full[name], name
    # an override still wins over the scale
    assert profiles.notebook_parameters("paper", "03_tune_lightgbm", {"budget": 9}, scale="smoke")["budget"] == 9
    # run_all.sh --scale smoke sets the environment variable every later call reads
    monkeypatch.setenv(profiles.SCALE_ENV, "smoke")
    assert profiles.notebook_parameters("paper", "03_tune_lightgbm") == smoke
    assert profiles.main(["params", "paper", "03_tune_lightgbm"]) == 0
    assert json.loads(capsys.readouterr().out)["budget"] == profiles.SMOKE_INPUTS["budget"]
    monkeypatch.setenv(profiles.SCALE_ENV, "tiny")
    assert profiles.main(["check", "demo"]) == 1
    assert "unknown scale 'tiny'" in capsys.readouterr().err


def test_the_paper_profile_holds_only_the_papers_experiments(monkeypatch):
    from genrestudy import methods
    from genrestudy.report import table7
    from genrestudy.run import study

    monkeypatch.delenv(profiles.SCALE_ENV, raising=False)
    stems = [p.stem for p in sorted(profiles.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))]
    run = [s for s in stems if not profiles.left_out("paper", s)]
    # the paper's notebooks only: images, features, Table 2's searches, end to end, Table 8, Table 7
    assert [s[:2] for s in run] == ["01", "02", "03", "04", "08", "09"]
    assert all(profiles.left_out("audit", s) is None for s in stems)
    for stem in run:
        given = profiles.notebook_parameters("paper", stem)
        assert given.get("seeds", [0]) == [0], stem                      # one seed
        assert given.get("protocol", "paper") == "paper", stem           # the paper's split
        assert not {"compared_backbones", "compared_input_sizes", "compared_search_budget"} & set(given), stem
    results = profiles.notebook_parameters("paper", "09_results")
    assert results["protocols"] == ["paper"] and results["table7_methods"] == "paper"
    tuning = profiles.notebook_parameters("paper", "03_tune_lightgbm")
    assert (tuning["budget"], tuning["num_boost_round"], tuning["early_stopping_rounds"]) == (6561, 2000, 50)
    # Table 7 of the paper profile: the paper's five methods, those with the paper's numbers
    inputs = study.StudyInputs.from_parameters(profiles.notebook_parameters("paper", "09_results"))
    chosen = table7.chosen_methods(inputs, results["table7_methods"])
    assert {m.key for m in chosen} == {"hybrid_grid", "hybrid_random", "end_to_end", "retrained_grid",
                                       "retrained_random"}
    assert len(table7.chosen_methods(inputs, "all")) > len(chosen)
    assert all(m.paper for m in chosen) and set(methods.registered()) > set(chosen)
    # the ImageNet weights it needs: ResNet-50's alone
    assert profiles.profile_backbones("paper") == [("ResNet50", None)]


def test_the_audit_profile_holds_what_the_study_adds(monkeypatch):
    monkeypatch.delenv(profiles.SCALE_ENV, raising=False)
    assert profiles.notebook_parameters("audit", "03_tune_lightgbm")["seeds"] == [0, 1, 2, 3, 4]
    results = profiles.notebook_parameters("audit", "09_results")
    assert results["protocols"] == ["paper", "track", "filtered"] and results["table7_methods"] == "all"
    assert len(profiles.notebook_parameters("audit", "07_backbones")["compared_backbones"]) == 9
    # the searches both profiles run with the same inputs are the same searches (one cache entry)
    for name in ("budget", "num_boost_round", "early_stopping_rounds", "search_mode", "protocol", "data", "weights"):
        assert profiles.PAPER_INPUTS[name] == profiles.AUDIT_INPUTS[name], name


def test_each_profile_says_what_it_runs_and_leaves_out(capsys):
    paper = profiles.describe("paper")
    assert paper[0].startswith("profile paper: the paper's experiments only")
    assert any("leaves out notebooks 05, 06, 07" in line for line in paper)
    assert any("successive halving" in line and "departs from the source" in line for line in paper)
    assert profiles.describe("audit")[0].startswith("profile audit: everything the study adds")
    assert profiles.main(["describe", "demo"]) == 0 and "synthetic" in capsys.readouterr().out
    assert profiles.main(["left-out", "paper", "notebooks/06_six_networks.ipynb"]) == 0
    assert "neighbouring study 2" in capsys.readouterr().out
    assert profiles.main(["left-out", "audit", "06_six_networks"]) == 0 and capsys.readouterr().out == "\n"
    with pytest.raises(profiles.ProfileError, match="unknown profile"):
        profiles.describe("nope")


def test_smoke_scale_cuts_seeds_and_shrinks_only_what_the_profile_sets(monkeypatch):
    monkeypatch.delenv(profiles.SCALE_ENV, raising=False)
    assert profiles.notebook_parameters("paper", "03_tune_lightgbm", scale="smoke")["seeds"] == [0]
    assert profiles.notebook_parameters("audit", "03_tune_lightgbm", scale="smoke")["seeds"] == [0, 1]
    # the paper profile gets no compared backbones from the smoke scale (it compares none)
    assert "compared_backbones" not in profiles.notebook_parameters("paper", "09_results", scale="smoke")
    assert profiles.notebook_parameters("audit", "09_results", scale="smoke")["compared_backbones"] == ["MobileNetV2"]


def test_demo_budgets_fit_the_whole_demos_fifteen_minutes():
    stems = {p.stem[:2] for p in profiles.notebooks_dir().glob("[0-9][0-9]_*.ipynb")}
    assert set(profiles.DEMO_BUDGET_SECONDS) == stems
    assert sum(profiles.DEMO_BUDGET_SECONDS.values()) <= profiles.DEMO_TOTAL_BUDGET_SECONDS == 900
