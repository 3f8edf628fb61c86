import json
import sys
import time
import types

import pytest

from genrestudy import device, efficiency, paths


def test_measure_step_sees_a_step_allocating_memory():
    import numpy as np

    # a parent already holding much memory (as pytest does after TensorFlow is loaded) must not
    # leak its high-water mark into the child's figures
    parent_hog = np.ones(40_000_000)
    small = efficiency.measure_step("numpy:ones", {"shape": [1000]})
    big = efficiency.measure_step("numpy:ones", {"shape": [40_000_000]})  # 320 MB of float64, touched
    assert big["step_rss_mb"] - small["step_rss_mb"] > 250
    assert big["peak_rss_mb"] > big["rss_before_mb"] > 10
    assert big["seconds"] >= 0 and "array" in big["result"]
    assert small["peak_rss_mb"] < parent_hog.nbytes / 1e6


def test_measure_step_times_the_call_not_the_imports():
    report = efficiency.measure_step("subprocess:run", {"args": ["sleep", "0.3"]})
    assert 0.29 < report["seconds"] < 1.5 and "CompletedProcess" in report["result"]


def test_failing_step_is_one_clear_error():
    with pytest.raises(RuntimeError, match="math:sqrt failed in its subprocess: .*TypeError"):
        efficiency.measure_step("math:sqrt", {"nope": 1})
    with pytest.raises(RuntimeError, match="ValueError: step must be 'module:function'"):
        efficiency.measure_step("math", {})


def test_latency_statistics():
    stats = efficiency.latency(lambda batch: time.sleep(0.002 * len(batch)), [0] * 4, repeats=10, warmup=1)
    assert stats["batch_size"] == 4 and stats["repeats"] == 10
    assert 0.0015 < stats["median_s"] < 0.01 and stats["q1_s"] <= stats["median_s"] <= stats["q3_s"]
    with pytest.raises(ValueError):
        efficiency.latency(lambda b: None, [0], repeats=0)


def test_hardware_names_the_cpu():
    line = efficiency.hardware()
    assert "cores" in line and "GiB RAM" in line


def test_each_step_process_enables_gpu_memory_growth_before_importing_the_step(monkeypatch, tmp_path):
    # in the child: memory growth first, then the step's module and its declared imports
    order = []
    monkeypatch.setattr(device, "enable_memory_growth", lambda: order.append("memory growth"))
    resolve = efficiency._resolve
    monkeypatch.setattr(efficiency, "_resolve", lambda target: order.append("import step") or resolve(target))
    efficiency._run_child("math:hypot", json.dumps({}), str(tmp_path / "out.json"))
    assert order == ["memory growth", "import step"]
    assert json.loads((tmp_path / "out.json").read_text())["result"] == 0.0
    # and the fresh process really runs with it (TensorFlow reads the variable when it takes the GPU)
    child = efficiency.measure_step("os:getenv", {"key": "TF_FORCE_GPU_ALLOW_GROWTH"})
    assert child["result"] == "true"


class _FakeTensorFlow(types.ModuleType):
    """Enough of tensorflow.config to see when memory growth is set, and to refuse after the GPU started."""

    def __init__(self):
        super().__init__("tensorflow")
        self.initialised, self.growth = False, []
        experimental = types.SimpleNamespace(set_memory_growth=self._set_growth)
        self.config = types.SimpleNamespace(list_physical_devices=lambda kind: ["GPU:0", "GPU:1"],
                                            experimental=experimental)

    def _set_growth(self, gpu, enable):
        if self.initialised:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.growth.append((gpu, enable))


def test_memory_growth_is_set_on_every_gpu_before_the_framework_starts(monkeypatch, caplog):
    fake = _FakeTensorFlow()
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    monkeypatch.setattr(device, "_memory_growth", None)
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    assert device.enable_memory_growth() is True
    assert fake.growth == [("GPU:0", True), ("GPU:1", True)]
    assert device.enable_memory_growth() is True and len(fake.growth) == 2  # once per process
    import os

    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    # too late: the GPU was taken first; said in one warning, not an exception
    late = _FakeTensorFlow()
    late.initialised = True
    monkeypatch.setitem(sys.modules, "tensorflow", late)
    monkeypatch.setattr(device, "_memory_growth", None)
    assert device.enable_memory_growth() is False
    assert "before device.enable_memory_growth() was called" in caplog.text


def test_notebook_08_enables_memory_growth_before_any_model_loads():
    notebook = json.loads((paths.project_root() / "notebooks" / "08_efficiency.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"
                     and "parameters" not in c["metadata"].get("tags", []))
    growth = code.index("device.enable_memory_growth()")
    for loads in ("check_environment()", "device.accelerator()", "prediction_models(", "measure_step(",
                  "study.image_set("):
        assert growth < code.index(loads), loads


def _report(seconds, **result):
    return {"seconds": seconds + 1, "peak_rss_mb": 300.0, "rss_before_mb": 200.0, "step_rss_mb": 100.0,
            "imported": ["lightgbm"], "result": {"seconds": seconds, **result}}


def test_every_reduced_measurement_is_labelled_the_lightgbm_rounds_included():
    from genrestudy.networks import endtoend
    from genrestudy.report import plots, table8

    measured = {"end_to_end_fit": _report(9.0, epochs=1, train_images=20, device="cpu"),
                "lightgbm_fit": _report(1.0, best_iteration=50, train_rows=80, frameworks=["lightgbm"]),
                "extraction": _report(3.0, images=8, precision="float32")}
    latency = {"batch_size": 1, "repeats": 3, "median_s": 0.1, "q1_s": 0.1, "q3_s": 0.1, "iqr_s": 0.0}
    latencies = {(p, k): latency for p in ("end_to_end", "hybrid") for k in ("batch1", "batched", "file")}
    common = dict(settings=endtoend.training_settings("demo"), n_images=8, extract_batch_size=4, latency_images=1,
                  hybrid_input_size=224)
    for rounds, fit_reduced in ((50, True), (table8.PAPER_LIGHTGBM_ROUNDS, False)):
        notes = table8.measurement_notes(measured, lightgbm_rounds=rounds, reduced_fit=fit_reduced, **common)
        assert ("REDUCED" in notes["lightgbm_fit"]) == (rounds < table8.PAPER_LIGHTGBM_ROUNDS)
        assert ("REDUCED" in notes["end_to_end_fit"]) == fit_reduced
        assert "REDUCED" not in notes["extraction"]  # all 8 images extracted
        table = table8.efficiency_table(end_to_end_fit=measured["end_to_end_fit"], lightgbm_fit=measured["lightgbm_fit"],
                                        extraction=measured["extraction"], latencies=latencies, settings=notes,
                                        hardware="test").set_index("measure")
        for row in ("training time (fit alone)", "peak RAM of the step's process (RSS)", "peak RAM above the imports"):
            assert table.loc[row, "hybrid_reduced"] == (rounds < table8.PAPER_LIGHTGBM_ROUNDS)
            assert table.loc[row, "end_to_end_reduced"] == fit_reduced
        assert "frameworks in the LightGBM fit's process: lightgbm" in table.loc["peak RAM of the step's process (RSS)", "how"]
        fig = plots.plot_efficiency(table.reset_index())
        hatched = [p for ax in fig.get_axes() for p in ax.patches if p.get_hatch()]
        # both fits in the time and the memory panel, and the reduced end-to-end network's latency
        assert len(hatched) == (5 if fit_reduced else 0)
        assert ("REDUCED" in fig._suptitle.get_text()) == fit_reduced
