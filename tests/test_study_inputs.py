"""One set of study inputs: every notebook has them with the same defaults, and a value given once reaches all."""
from __future__ import annotations

import dataclasses
import re
import json

import pytest

from genrestudy import cache, paths
from genrestudy.run import profiles, study

NOTEBOOKS = sorted(p.stem for p in (paths.project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# retrain_rounds: None in a notebook, the search's round cap once resolved
DEFAULTS = {**study.StudyInputs().as_dict(), "retrain_rounds": None}


def _code(stem: str) -> str:
    cells = json.loads((paths.project_root() / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_notebook_takes_the_study_inputs_with_their_defaults(stem):
    defaults = profiles.notebook_defaults(stem)
    shared = {name: value for name, value in defaults.items() if name in DEFAULTS}
    for name, value in shared.items():
        expected = list(DEFAULTS[name]) if isinstance(DEFAULTS[name], tuple) else DEFAULTS[name]
        assert value == expected, f"{stem}: {name} = {value!r}, the study's default is {expected!r}"
    assert {"data", "demo_clips_per_genre", "demo_seed", *study.IMAGE_FIELDS} <= set(shared), stem
    assert "StudyInputs.from_parameters(globals())" in _code(stem)


def test_inputs_are_frozen_hashable_and_validated():
    inputs = study.StudyInputs(n_mels=96, seeds=[3, 4], retrain_seed=0)
    assert inputs.seeds == (3, 4) and hash(inputs) == hash(study.StudyInputs(n_mels=96, seeds=(3, 4), retrain_seed=0))
    assert inputs.image_params()["n_mels"] == 96 and inputs.key() != study.StudyInputs().key()
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.n_mels = 64
    with pytest.raises(ValueError, match="protocol='leaky'"):
        study.StudyInputs(protocol="leaky")
    picked = study.StudyInputs.from_parameters({"n_mels": 64, "n_samples": 12, "protocol": "paper"})
    assert (picked.n_mels, picked.protocol, picked.budget) == (64, "paper", DEFAULTS["budget"])


def test_an_override_reaches_every_notebook_that_has_the_parameter(capsys):
    for stem in NOTEBOOKS:
        params = profiles.notebook_parameters("demo", stem, {"n_mels": 96})
        assert params["n_mels"] == 96, stem  # every notebook builds images, so every one has it
    paper = profiles.notebook_parameters("paper", "03_tune_lightgbm", {"n_mels": 96, "budget": 9})
    assert (paper["n_mels"], paper["budget"], paper["weights"], paper["protocol"]) == (96, 9, "imagenet", "paper")
    assert "budget" not in profiles.notebook_parameters("paper", "01_preprocess", {"budget": 9})
    assert profiles.main(["params", "demo", "02_extract_features", "-p", "n_mels", "96", "-p", "weights", "None"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n_mels": 96, "weights": None}
    assert profiles.main(["check", "demo", "-p", "n_mel", "96"]) == 1
    assert "no notebook has the parameter(s) n_mel" in capsys.readouterr().err
    assert profiles.parse_value("[0, 1]") == [0, 1] and profiles.parse_value("imagenet") == "imagenet"


def test_a_changed_n_mels_reaches_the_features_notebook_03_tunes_on(study_dirs, tmp_path):
    # defect: notebook 03 called study.image_set(data) and silently rebuilt the default images
    from conftest import make_dataset
    import papermill

    root = make_dataset(tmp_path / "set", genres=("blues", "rock", "jazz"), clips=10, seconds=7.0)
    params = {"data": str(root), "n_segments": 2, "n_mels": 48, "image_size": 64, "input_size": 32,
              "backbone": "MobileNetV2", "protocol": "track", "budget": 2, "seeds": [0], "num_boost_round": 5,
              "retrain_rounds": 5, "hybrid_model_file": str(tmp_path / "hybrid.zip")}
    papermill.execute_notebook(str(paths.project_root() / "notebooks" / "03_tune_lightgbm.ipynb"),
                               str(tmp_path / "03.ipynb"), parameters=params, progress_bar=False, kernel_name="python3")
    image_entries = [cache.read_meta(p.parent) for p in (study_dirs["cache"] / "images").glob("*/meta.json")]
    assert [m["params"]["n_mels"] for m in image_entries] == [48]  # no default-setting images were built
    feature_entries = [cache.read_meta(p.parent) for p in (study_dirs["cache"] / "features").glob("*/meta.json")]
    assert [m["image_cache"] for m in feature_entries] == [image_entries[0]["key"]]
    inputs = study.StudyInputs.from_parameters(params)
    assert study.feature_set(inputs).meta["image_cache"] == image_entries[0]["key"]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebooks_in_git_carry_no_outputs_and_one_kernel(stem):
    notebook = json.loads((paths.project_root() / "notebooks" / f"{stem}.ipynb").read_text())
    assert notebook["metadata"]["kernelspec"] == {"display_name": "Python 3 (genrestudy)", "language": "python",
                                                  "name": "python3"}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{stem} has outputs"


#: a measured quantity: a number with a unit of time, memory, throughput, or a speed-up
MEASURED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(ms|s|min|h|MB|GB|MiB|GiB|img/s|images/s|clips/s|cfg/h|×|x)"
                      r"(?![\w/\d])")
#: the paper's own figures (docs/PAPER.md), which notebooks may restate
PAPER_FIGURES = {"30 s", "3 s", "65.8529 s", "0.9373 s", "1000.60 MB", "45.49 MB", "1145.52 MB", "70×", "22×",
                 "0.0054 s"}


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_no_measured_number_is_typed_into_a_notebook(stem):
    # a measurement in prose goes stale: notebooks show what their own run measured
    cells = json.loads((paths.project_root() / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    found = {m.group(0) for m in MEASURED.finditer(text)} - PAPER_FIGURES
    assert not found, f"{stem} states measured figures by hand: {sorted(found)}"


@pytest.mark.parametrize("given, name", [
    ({"seeds": "35"}, "seeds"),                 # what `papermill -r seeds 35` passes: not the seeds (3, 5)
    ({"n_mels": 96.5}, "n_mels"), ({"n_mels": "abc"}, "n_mels"), ({"n_mels": True}, "n_mels"),
    ({"n_segments": 100000}, "n_segments"),      # about 2.6 TB of signal cache
    ({"segment_seconds": float("nan")}, "segment_seconds"), ({"hop_length": 0}, "hop_length"),
    ({"protocol": "leaky"}, "protocol"), ({"seeds": [0, "a"]}, "seeds"), ({"seeds": []}, "seeds"),
    ({"budget": 2.5}, "budget"), ({"head_learning_rates": [0.01, "x"]}, "head_learning_rates"),
    ({"compared_backbones": ["ResNet5O"]}, "compared_backbones"), ({"precision": "float8"}, "precision"),
    ({"early_stopping_rounds": -1}, "early_stopping_rounds"), ({"input_size": "224"}, "input_size"),
])
def test_every_study_input_is_checked_by_value_in_one_line_naming_it(given, name):
    with pytest.raises(ValueError) as err:
        study.StudyInputs(**given)
    message = str(err.value)
    assert "\n" not in message and f"{name}=" in message, message


def test_a_single_seed_is_a_tuple_of_one():
    assert study.StudyInputs(seeds=3, retrain_seed=1).seeds == (3,)


@pytest.mark.parametrize("args, name", [
    (["-p", "n_segments", "100000"], "n_segments"), (["-p", "n_mels", "96.5"], "n_mels"),
    (["-p", "n_mels", "abc"], "n_mels"), (["-p", "protocol", "leaky"], "protocol"), (["-p", "seeds", "35x"], "seeds"),
    (["-p", "n_resamples", "abc"], "n_resamples"),     # a notebook's own parameter: the kind of its default
])
def test_profiles_check_refuses_a_bad_value_before_any_notebook_exit_2(capsys, args, name):
    assert profiles.main(["check", "demo", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{name}=" in err, err
    assert profiles.main(["check", "demo", "-p", "n_mels", "96"]) == 0


def _run_study(*args) -> "subprocess.CompletedProcess":
    """run_all.sh's run_study alone (its set-up would reinstall the environment), in the project root."""
    import subprocess
    import sys

    root = paths.project_root()
    script = (f'set -euo pipefail; cd "{root}"; PY="{sys.executable}"; VENV=.venv\n'
              + re.search(r"^run_study\(\) \{.*?^\}", (root / "run_all.sh").read_text(), re.S | re.M).group(0)
              + '\nrun_study "$@"')
    return subprocess.run(["bash", "-c", script, "run_all.sh", *args], capture_output=True, text=True, timeout=300)


def test_run_all_with_an_unknown_notebook_number_is_one_line_exit_2():
    done = _run_study("--profile", "demo", "99")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "no notebook numbered 99" in done.stderr
    assert "== " not in done.stdout  # nothing ran, no earlier outputs listed


def test_run_all_with_a_bad_value_is_one_line_exit_2():
    done = _run_study("--profile", "demo", "-p", "n_mels", "abc", "01")
    assert done.returncode == 2 and "n_mels='abc'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
