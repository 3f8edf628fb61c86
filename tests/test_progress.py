"""Progress: bars where a person watches, one line per step in a notebook executed unattended (whoever runs it)."""
from __future__ import annotations

import json
import os
import sys

import nbformat
import pytest

from genrestudy import progress

CELL = """\
import time
from genrestudy.progress import bars_wanted, progress_bar
for _ in progress_bar(range(3), desc="steps"):
    time.sleep(0.01)
print("bars wanted:", bars_wanted())
"""


@pytest.mark.slow  # a Jupyter kernel
def test_a_notebook_run_by_papermill_directly_keeps_one_line_per_step_and_no_widget(tmp_path, monkeypatch):
    """As the README shows it: ``papermill in.ipynb out.ipynb``, without run_all.sh's TQDM_DISABLE."""
    import papermill

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))  # the kernel imports this genrestudy
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    papermill.execute_notebook(str(source), str(executed), kernel_name="python3", progress_bar=False)
    outputs = nbformat.read(executed, as_version=4).cells[0].outputs
    text = "".join(out.get("text", "") for out in outputs)
    assert not any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in outputs), outputs
    assert "\r" not in text and "it/s" not in text
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("steps: 3/3 in ") and lines[1] == "bars wanted: False", lines


class _Kernel:
    def __init__(self, allow_stdin):
        self._allow_stdin = allow_stdin


@pytest.mark.parametrize("allow_stdin, wanted", [(True, True), (False, False)])
def test_a_kernel_cell_that_nobody_can_answer_gets_no_bar(monkeypatch, allow_stdin, wanted):
    import types

    import IPython

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace(kernel=_Kernel(allow_stdin)))
    assert progress.bars_wanted() is wanted
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.bars_wanted() is False


def test_outside_a_kernel_bars_follow_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress.bars_wanted() is True  # pytest: no kernel, whatever has imported ipykernel
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.bars_wanted() is False
