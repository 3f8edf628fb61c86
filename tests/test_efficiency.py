import time

import pytest

from genrestudy import efficiency


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
