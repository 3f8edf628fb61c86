import ast
import json

import pytest

from genrestudy import classifiers, paths, profiles


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
    assert smoke["num_boost_round"] < full["num_boost_round"] and len(smoke["seeds"]) < len(full["seeds"])
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
