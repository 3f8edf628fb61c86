"""bench/same_outputs.py: two runs' tables and figures compared byte for byte (the check behind a no-change refactor)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


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


def test_identical_runs_pass_and_a_changed_byte_fails(tmp_path, same_outputs, capsys):
    files = {"results/table07_test_metrics.csv": b"method,accuracy\nhybrid,0.5\n", "figures/fig06.png": b"\x89PNG1",
             "results/table08_efficiency.csv": b"seconds\n1.0\n", "results/table07_test_metrics.html": b"<p>"}
    before = _run(tmp_path / "before", files)
    after = _run(tmp_path / "after", {**files, "results/table08_efficiency.csv": b"seconds\n1.3\n",
                                      "results/table07_test_metrics.html": b"<p>other"})
    assert same_outputs.main([str(before), str(after)]) == 0
    assert "2 files identical, 0 different, 0 in one run only, 1 measured" in capsys.readouterr().out

    (after / "figures/fig06.png").write_bytes(b"\x89PNG2")
    (after / "results/extra.csv").write_bytes(b"x\n")
    assert same_outputs.main([str(before), str(after)]) == 1
    found = same_outputs.compare(before, after)
    assert found["different"] == ["figures/fig06.png"] and found["only_after"] == ["results/extra.csv"]


def test_a_folder_that_never_ran_is_refused(tmp_path, same_outputs):
    with pytest.raises(SystemExit):
        same_outputs.main([str(tmp_path / "nothing"), str(tmp_path / "nothing")])
