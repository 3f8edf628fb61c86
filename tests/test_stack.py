"""The stack run_all.sh installs (a GPU-capable one where nvidia-smi answers) and the device line it prints."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from genrestudy import paths
from genrestudy.run import stack

ROOT = paths.project_root()


def _fake_nvidia_smi(folder, *, answer: str = "NVIDIA H200", code: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{answer}\\n'\nexit {code}\n")
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize("gpu, system, choice, extras", [
    ("NVIDIA H200", "Linux", "auto", ["gpu"]),
    (None, "Linux", "auto", []),
    ("NVIDIA H200", "Darwin", "auto", []),    # no CUDA wheels there
    ("NVIDIA H200", "Linux", "cpu", []),      # GENRESTUDY_STACK=cpu
    (None, "Linux", "gpu", ["gpu"]),          # GENRESTUDY_STACK=gpu
])
def test_install_decision(gpu, system, choice, extras):
    assert stack.install_extras(gpu, system=system, choice=choice) == extras


def test_install_decision_reads_the_environment_and_refuses_a_typo(monkeypatch):
    monkeypatch.setenv("GENRESTUDY_STACK", "cpu")
    assert stack.install_extras("NVIDIA H200", system="Linux") == []
    with pytest.raises(ValueError, match="GENRESTUDY_STACK='cuda'"):
        stack.install_extras(None, choice="cuda")


def test_nvidia_smi_answer_decides(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_nvidia_smi(tmp_path / "ok")))
    assert stack.nvidia_gpu() == "NVIDIA H200"
    monkeypatch.setenv("PATH", str(_fake_nvidia_smi(tmp_path / "broken", answer="NVIDIA-SMI has failed", code=9)))
    assert stack.nvidia_gpu() is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert stack.nvidia_gpu() is None


def test_setup_asks_with_any_python_before_the_package_is_installed(tmp_path):
    # run_all.sh runs the file with the system's Python: standard library only, no genrestudy on the path
    env = {"PATH": f"{_fake_nvidia_smi(tmp_path / 'bin')}:/usr/bin:/bin", "GENRESTUDY_STACK": "auto"}
    out = subprocess.run([sys.executable, "-S", str(ROOT / "lib" / "genrestudy" / "run" / "stack.py"), "extras"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == ("test,gpu" if sys.platform.startswith("linux") else "test")
    env["GENRESTUDY_STACK"] = "cpu"  # the GPU answers, the user chose the CPU stack
    out = subprocess.run([sys.executable, "-S", str(ROOT / "lib" / "genrestudy" / "run" / "stack.py"), "extras"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == "test"


def test_the_gpu_extra_is_declared_and_run_all_installs_what_stack_says():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = project["optional-dependencies"]["gpu"]
    assert any(req.replace(" ", "").startswith("tensorflow[and-cuda]") for req in gpu)
    script = (ROOT / "run_all.sh").read_text()
    setup = script[script.index("setup() {"):script.index("run_study() {")]
    assert 'extras=$("$PYTHON" lib/genrestudy/run/stack.py extras)' in setup
    assert setup.count('-e ".[$extras]"') == 2 and "'.[test]'" not in setup
    run_study = script[script.index("run_study() {"):script.index("pin() {")]
    # the device line comes before the first notebook runs
    assert run_study.index("genrestudy.run.stack device") < run_study.index("for wave in ")


def test_device_line_and_cpu_warning():
    assert stack.device_line(None, None).startswith("device: CPU (no NVIDIA GPU")
    assert stack.device_line("NVIDIA H200", True) == "device: GPU (NVIDIA H200)"
    assert "sees no GPU" in stack.device_line("NVIDIA H200", False)
    warning = stack.end_to_end_cpu_warning(n_images=10_000, epochs=25, seconds_per_image=0.36)
    assert warning.startswith("WARNING: no GPU") and "25.0 h" in warning and "--plan" in warning


def test_device_command_on_a_machine_without_nvidia_smi(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert stack.main(["device", "demo"]) == 0
    assert capsys.readouterr().out.startswith("device: CPU")
    assert stack.main(["what"]) == 2


def test_cpu_warning_only_where_the_paper_profile_trains_at_its_settings(study_dirs, monkeypatch):
    from genrestudy.networks import endtoend
    from genrestudy.run import profiles

    clips = study_dirs["data"] / "gtzan" / "genres_original" / "blues"
    clips.mkdir(parents=True)
    for i in range(3):
        (clips / f"blues.0000{i}.wav").touch()
    monkeypatch.delenv(profiles.SCALE_ENV, raising=False)
    paper = endtoend.training_settings("paper")
    assert stack.paper_end_to_end_size() == (30, paper.head_epochs + paper.finetune_epochs)  # 3 clips x 10 segments
    monkeypatch.setenv(profiles.SCALE_ENV, "smoke")  # toy budgets: no hours of training to warn about
    assert stack.paper_end_to_end_size() is None


@pytest.mark.slow
def test_cpu_training_step_is_measured():
    seconds = stack.train_step_seconds_per_image(batch=2)
    assert 0 < seconds < 60
