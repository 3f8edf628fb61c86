"""bench/same_outputs.py: two runs' tables and figures compared (the check behind a refactor that changes nothing)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SVG = b'<svg><dc:date>%s</dc:date><g id="p%s"><use xlink:href="#m%s" x="1.5"/></g></svg>'


@pytest.fixture(scope="module")
def same_outputs():
    spec = importlib.util.spec_from_file_location("same_outputs_under_test", BENCH / "same_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(root: Path, files: dict) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


BEFORE = {"results/table07_test_metrics.csv": b"method,accuracy,fit_seconds,model_file\nhybrid,0.5,1.2,m/a1.zip\n",
          "results/table07_test_metrics.md": b"| hybrid | 0.5 | 1.2 |\n", "figures/fig06.png": b"\x89PNG1",
          "figures/fig06.svg": SVG % (b"2026-12-05T07:00", b"0a1b", b"0c2d"),
          "results/table08_efficiency.csv": b"step,seconds\nfit,1.0\n", "results/table07_test_metrics.html": b"<p>"}


def test_runs_that_differ_only_in_their_measurements_pass(tmp_path, same_outputs, capsys):
    before = _run(tmp_path / "before", BEFORE)
    after = _run(tmp_path / "after", {
        **BEFORE, "results/table08_efficiency.csv": b"step,seconds\nfit,1.3\n",
        "results/table07_test_metrics.csv": b"method,accuracy,fit_seconds,model_file\nhybrid,0.5,1.9,m/b2.zip\n",
        "results/table07_test_metrics.md": b"| hybrid | 0.5 | 1.9 |\n", "results/table07_test_metrics.html": b"<p>x",
        "figures/fig06.svg": SVG % (b"2026-12-05T08:00", b"9f8e", b"7d6c")})
    assert same_outputs.main([str(before), str(after)]) == 0
    out = capsys.readouterr().out
    assert "1 files identical, 2 equal but for the run's measurements and SVG noise, 0 different" in out
    assert "1 measured" in out and "fit_seconds, model_file" in out


@pytest.mark.parametrize("name, changed", [
    ("results/table07_test_metrics.csv", b"method,accuracy,fit_seconds,model_file\nhybrid,0.6,1.2,m/a1.zip\n"),
    ("results/table07_test_metrics.csv", b"method,accuracy,fit_seconds\nhybrid,0.5,1.2\n"),
    ("figures/fig06.svg", SVG.replace(b'x="1.5"', b'x="1.6"') % (b"2026-12-05T07:00", b"0a1b", b"0c2d")),
    ("figures/fig06.png", b"\x89PNG2")])
def test_a_changed_value_column_or_figure_fails(tmp_path, same_outputs, name, changed):
    before = _run(tmp_path / "before", BEFORE)
    after = _run(tmp_path / "after", {**BEFORE, name: changed})
    assert same_outputs.main([str(before), str(after)]) == 1
    assert same_outputs.compare(before, after)["different"] == [name]


def test_a_file_in_one_run_only_fails(tmp_path, same_outputs):
    before = _run(tmp_path / "before", BEFORE)
    after = _run(tmp_path / "after", {**BEFORE, "results/extra.csv": b"x\n"})
    assert same_outputs.main([str(before), str(after)]) == 1
    assert same_outputs.compare(before, after)["only_after"] == ["results/extra.csv"]


def test_a_folder_that_never_ran_is_refused(tmp_path, same_outputs):
    with pytest.raises(SystemExit):
        same_outputs.main([str(tmp_path / "nothing"), str(tmp_path / "nothing")])
