"""With a cluster, ``run_all.sh`` runs the notebooks of a wave at once (``genrestudy.run.cluster.waves``)."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from genrestudy.run import cluster

distributed = pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]


def test_waves_group_the_notebooks_that_need_only_01_and_02():
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    groups = cluster.waves(notebooks)
    assert [n for g in groups for n in g] == notebooks   # every notebook once, in order
    assert [[n[:2] for n in g] for g in groups] == [["01"], ["02"], ["03", "04", "05", "06", "07"], ["08"], ["09"]]
    # a selection keeps its waves; a notebook no wave names runs alone
    assert cluster.waves(["x/06_b.ipynb", "x/01_a.ipynb", "x/05_a.ipynb", "x/10_new.ipynb"]) == [
        ["x/01_a.ipynb"], ["x/05_a.ipynb", "x/06_b.ipynb"], ["x/10_new.ipynb"]]
    assert cluster.main(["waves", "01_a.ipynb", "02_b.ipynb"]) == 0


@pytest.mark.slow
def test_run_all_runs_a_waves_notebooks_at_once_on_a_cluster(tmp_path, monkeypatch):
    """``./run_all.sh --scheduler ADDRESS 01 05 06`` on a real two-process cluster: 05 and 06 start together
    (06 sends its networks' tasks to the workers), both finish, and their tables are written."""
    env = {"GENRESTUDY_DATA": str(tmp_path / "data"), "GENRESTUDY_CACHE": str(tmp_path / "data" / "cache"),
           "GENRESTUDY_FIGURES": str(tmp_path / "figures"), "GENRESTUDY_RESULTS": str(tmp_path / "results")}
    for name, value in env.items():   # the workers start with this environment: the same cache folder
        monkeypatch.setenv(name, value)
    for name in ("GENRESTUDY_SCALE", "GENRESTUDY_SCHEDULER"):
        monkeypatch.delenv(name, raising=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1", resources={cluster.KERAS_RESOURCE: 1}) as local_cluster:
        run = subprocess.run([str(ROOT / "run_all.sh"), "--profile", "demo", "--scheduler",
                              local_cluster.scheduler_address, "01", "05", "06"], cwd=ROOT, env=dict(os.environ),
                             capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    lines = run.stdout.splitlines()
    started = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^== (\d\d)_\w+\.ipynb$", line))}
    finished = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^   (\d\d)_\w+: \d+ s", line))}
    assert set(started) == {"01", "05", "06"} and set(finished) == {"05", "06"}
    assert max(started["05"], started["06"]) < min(finished.values())   # both ran before either finished
    assert started["01"] < min(started["05"], started["06"])            # after the wave before
    for table in ("table_knn_comparison", "table_six_networks"):
        assert (tmp_path / "results" / f"{table}.csv").is_file()
