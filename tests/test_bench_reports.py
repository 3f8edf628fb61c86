"""bench/report.py: a benchmark's Markdown report of its own run (on a fake benchmark, not the real ones)."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from genrestudy.efficiency import hardware

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def report_module():
    spec = importlib.util.spec_from_file_location("bench_report_under_test", BENCH / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_benchmark(fail: bool = False) -> int:
    print("fake: 2 configs in 0.1 s")
    if fail:
        raise ValueError("boom: the fake benchmark failed")
    print("speedup: 3.0x (ours 2 cfg/s, naive 0.7 cfg/s)")
    return 0


def started_at(text: str) -> dt.datetime:
    match = re.search(r"^- Started: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$", text, re.M)
    assert match, text
    return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)


def test_report_of_a_completed_run(report_module, tmp_path, capsys):
    path = tmp_path / "reports" / "fake.md"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with report_module.bench_report("fake", path, argv=["--n", "3"], size="the script's default size.",
                                    libraries=("numpy",)):
        assert fake_benchmark() == 0
    after = dt.datetime.now(dt.timezone.utc)

    # the printed output is unchanged, and stdout is the original again
    out = capsys.readouterr().out
    assert out == "fake: 2 configs in 0.1 s\nspeedup: 3.0x (ours 2 cfg/s, naive 0.7 cfg/s)\n"
    assert not isinstance(sys.stdout, report_module._Tee)

    text = path.read_text()
    assert text.startswith("# Benchmark report: bench/fake.py\n")
    assert "overwrites this file" in text
    assert "- Outcome: completed" in text
    assert before <= started_at(text) <= after
    assert f"- Command: `{sys.executable} bench/fake.py --n 3`" in text
    assert f"- Machine: {hardware()}" in text
    assert f"- CPUs: os.cpu_count() = {os.cpu_count()}" in text
    assert re.search(r"^- Load average at the start: \d+\.\d\d / \d+\.\d\d / \d+\.\d\d", text, re.M)
    assert "- Size: the script's default size." in text
    assert re.search(r"^- Libraries: numpy \S+, psutil \S+, genrestudy \S+$", text, re.M)
    assert re.search(r"^- Wall time: \d+\.\d s$", text, re.M)
    block = text.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert block.splitlines() == ["fake: 2 configs in 0.1 s", "speedup: 3.0x (ours 2 cfg/s, naive 0.7 cfg/s)"]
    assert "## Failure" not in text
    # written atomically: no temporary file left beside it, readable by others
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.md"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_report_of_a_failed_run(report_module, tmp_path, capsys):
    path = tmp_path / "fake.md"
    path.write_text("an earlier run's report\n")
    with pytest.raises(ValueError, match="boom"):
        with report_module.bench_report("fake", path, argv=["--fail"]):
            fake_benchmark(fail=True)
    assert capsys.readouterr().out == "fake: 2 configs in 0.1 s\n"
    assert not isinstance(sys.stdout, report_module._Tee)

    text = path.read_text()
    assert "an earlier run's report" not in text
    assert "- Outcome: FAILED: ValueError: boom: the fake benchmark failed" in text
    assert f"- Command: `{sys.executable} bench/fake.py --fail`" in text
    assert f"- Machine: {hardware()}" in text
    started_at(text)
    block = text.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert block.splitlines() == ["fake: 2 configs in 0.1 s"]
    failure = text.split("## Failure", 1)[1]
    assert "`ValueError: boom: the fake benchmark failed`" in failure
    assert "Traceback (most recent call last)" in failure and "fake_benchmark" in failure


def test_command_line_and_exit_codes(report_module, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench/fake.py", "--rounds", "6", "--note", "two words"])
    path = tmp_path / "fake.md"
    with pytest.raises(SystemExit):
        with report_module.bench_report("bench/fake.py", path):
            print("done")
            sys.exit(0)
    text = path.read_text()
    assert "- Outcome: completed" in text  # exit status 0 is success
    assert f"- Command: `{sys.executable} bench/fake.py --rounds 6 --note 'two words'`" in text

    with pytest.raises(SystemExit):
        with report_module.bench_report("fake", path):
            sys.exit(2)
    assert "- Outcome: FAILED: SystemExit: 2" in path.read_text()


def test_no_report(report_module, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stdout = sys.stdout
    with report_module.bench_report("fake", "") as report:
        assert sys.stdout is stdout
        fake_benchmark()
    assert report.path is None
    assert capsys.readouterr().out.count("\n") == 2
    assert list(tmp_path.iterdir()) == []


def test_size_statement_and_report_option(report_module):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-samples", type=int, default=8000)
    parser.add_argument("--skip-full-grid", action="store_true")
    parser.add_argument("--bigger", action="store_true")
    report_module.add_report_option(parser, "fake")

    args = parser.parse_args([])
    assert args.report == str(BENCH / "reports" / "fake.md")
    sizes = ["n_samples", "skip_full_grid", ("bigger", lambda value, default: False)]
    assert report_module.size_statement(parser, args, sizes) == "the script's default size."

    args = parser.parse_args(["--n-samples", "600", "--skip-full-grid", "--report", ""])
    assert args.report == ""
    text = report_module.size_statement(parser, args, sizes)
    assert text.startswith("**smoke-sized run**")
    assert "--n-samples 600 (default 8000)" in text and "--skip-full-grid" in text

    args = parser.parse_args(["--bigger"])
    assert report_module.size_statement(parser, args, sizes).startswith("larger than the script's defaults (--bigger")


@pytest.mark.slow  # the tuning benchmark at smoke size: naive and ours, every lever, both halving checks (~30 s)
def test_tune_benchmark_prints_the_equal_work_ratio_and_the_halving_gap_at_paper_rounds(tmp_path):
    import subprocess

    report = tmp_path / "tune.md"
    run = subprocess.run([sys.executable, str(BENCH / "tune.py"), "--n-samples", "600", "--n-features", "16",
                          "--rounds", "4", "--compare-configs", "3", "--gap-rounds", "40", "--gap-early-stopping", "5",
                          "--report", str(report)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    # every lever is measured against the same-bins naive search, with its accuracy cost (or its failure)
    assert len(re.findall(r"^lever '.*': (\d+ configs in .* pt\)|FAILED \(.*\))$", out, re.M)) == 5
    assert re.search(r"^equal work per configuration at the same bins \(max_bin 63\): \d+\.\d\dx with '.*' "
                     r"\(target 3x: (met|NOT met);", out, re.M)
    assert re.search(r"^the paper profile's schedule over 6,561 points \(\d+(, \d+)* rounds.*gap -?\d+\.\d\d pt$",
                     out, re.M)
    assert re.search(r"^factor 5 over 6,561 points .*gap -?\d+\.\d\d pt$", out, re.M)
    last = out.strip().splitlines()[-1]
    assert re.match(r"speedup: \d+\.\dx .*halving gap -?\d+\.\d\d pt at 4 rounds, -?\d+\.\d\d pt at the paper's 40\)$",
                    last), last
    assert "smoke-sized run" in report.read_text()


@pytest.mark.slow  # LightGBM's OpenCL learner vs its CPU learner on a tiny halving search (~1 min on POCL)
def test_lightgbm_device_benchmark_times_both_learners_and_compares_their_winners(tmp_path):
    import subprocess

    spec = importlib.util.spec_from_file_location("bench_lightgbm_device_under_test", BENCH / "lightgbm_device.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.opencl_platform() is None:
        pytest.skip("no OpenCL platform (e.g. apt-get install pocl-opencl-icd): LightGBM's GPU learner cannot run")
    report = tmp_path / "lightgbm_device.md"
    run = subprocess.run([sys.executable, str(BENCH / "lightgbm_device.py"), "--n-samples", "300", "--n-features",
                          "8", "--budget", "3", "--min-rounds", "1", "--rounds", "3", "--report", str(report)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"^cpu: 4 fits in .*\n^gpu: 4 fits in ", run.stdout, re.M)
    last = run.stdout.strip().splitlines()[-1]
    assert re.match(r"device: gpu/cpu time \d+\.\d\dx; same winner: (yes|no)$", last), last
    assert "smoke-sized run" in report.read_text()
