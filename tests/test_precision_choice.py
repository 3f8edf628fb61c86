"""The "auto" inference precision on a CPU: measured (fake timer here), cached per machine, checked when read."""
from __future__ import annotations

import json

import pytest

from genrestudy import cache, device, precision_choice


class FakeClock:
    """A timer whose probe calls take the scripted seconds: each timed call advances it by its precision's cost."""

    def __init__(self, cost: dict):
        self.cost, self.now, self.running, self.calls = cost, 0.0, None, []

    def timer(self) -> float:
        return self.now

    def make_probe(self, policy: str):
        precision = next(p for p, pol in device.POLICIES.items() if pol == policy)

        def call():
            self.calls.append(precision)
            self.now += self.cost[precision].pop(0) if isinstance(self.cost[precision], list) else self.cost[precision]
        return call


def choose(tmp_path, cost, **kw):
    clock = FakeClock(cost)
    found = precision_choice.fastest(device.POLICIES, cache_root=tmp_path, timer=clock.timer,
                                     make_probe=clock.make_probe, **kw)
    return found, clock


@pytest.mark.parametrize("cost, expected", [
    ({"float32": 0.070, "bfloat16": 0.110}, "float32"),   # bf16 instructions without AMX: slower
    ({"float32": 0.070, "bfloat16": 0.025}, "bfloat16"),  # AMX: faster
    ({"float32": 0.070, "bfloat16": 0.066}, "float32"),   # within the margin: float32, exact, stays
])
def test_the_faster_precision_is_chosen_by_its_median(tmp_path, cost, expected):
    found, clock = choose(tmp_path, cost)
    assert found["choice"] == expected
    assert found["seconds"] == pytest.approx(cost)
    # one warm-up call each, then REPEATS timed calls in turns
    n = precision_choice.REPEATS
    assert clock.calls == ["float32", "bfloat16"] + ["float32", "bfloat16"] * n


def test_medians_not_means_decide(tmp_path):
    n = precision_choice.REPEATS
    # float32 is faster on every call but one, disturbed by other load (its mean is the larger)
    cost = {"float32": [0.5] + [10.0] + [0.05] * (n - 1), "bfloat16": [0.5] + [0.08] * n}
    found, _ = choose(tmp_path, cost)
    assert found["choice"] == "float32"


def test_the_answer_is_cached_per_machine_and_measured_again_on_another(tmp_path, monkeypatch):
    first, _ = choose(tmp_path, {"float32": 0.07, "bfloat16": 0.11})
    again, clock = choose(tmp_path, {"float32": 0.07, "bfloat16": 0.01})
    assert again["choice"] == "float32" and clock.calls == []  # read from the cache: nothing timed
    here = precision_choice.machine()
    assert again["machine"] == here and {"cpu", "flags", "threads", "backend", "libraries"} <= set(here)
    for change in ({"flags": here["flags"] + ["amx_bf16"]}, {"cpu": "another CPU"},
                   {"libraries": {**here["libraries"], "tensorflow": "0.0"}}):
        monkeypatch.setattr(precision_choice, "machine", lambda change=change: {**here, **change})
        other, clock = choose(tmp_path, {"float32": 0.07, "bfloat16": 0.01})
        assert other["choice"] == "bfloat16" and clock.calls, change


@pytest.mark.parametrize("damage", [
    lambda meta: {**meta, "choice": "float16"},
    lambda meta: {**meta, "choice": "bfloat16"},                         # not the faster of its own timings
    lambda meta: {**meta, "seconds": {"float32": float("nan"), "bfloat16": 1.0}},
    lambda meta: {**meta, "seconds": {"float32": 0.07}},
    lambda meta: {**meta, "machine": {**meta["machine"], "flags": ["avx512_bf16"]}},  # copied from elsewhere
])
def test_a_damaged_or_foreign_cache_entry_is_measured_again(tmp_path, damage):
    choose(tmp_path, {"float32": 0.07, "bfloat16": 0.11})
    key = cache.cache_key(precision_choice.KIND, precision_choice.machine())
    meta_file = cache.entry_dir(precision_choice.KIND, key, tmp_path) / "meta.json"
    meta_file.write_text(json.dumps(damage(json.loads(meta_file.read_text()))))
    found, clock = choose(tmp_path, {"float32": 0.07, "bfloat16": 0.11})
    assert found["choice"] == "float32" and clock.calls  # measured again, and the entry repaired
    assert json.loads(meta_file.read_text())["choice"] == "float32"


def test_cpu_auto_inference_follows_the_measurement_not_the_flags(monkeypatch, study_dirs):
    monkeypatch.setattr(device, "accelerator", lambda: "cpu")
    monkeypatch.setattr(device, "_cpu_choice", None)
    monkeypatch.setattr(device, "cpu_supports_bfloat16", lambda: True)  # bf16 instructions...
    clock = FakeClock({"float32": 0.07, "bfloat16": 0.11})                # ...yet bfloat16 is slower here
    real = precision_choice.fastest
    monkeypatch.setattr(precision_choice, "fastest",
                        lambda policies, **kw: real(policies, timer=clock.timer, make_probe=clock.make_probe, **kw))
    assert device.resolve_precision("auto", training=False) == "float32"
    assert device.runnable_precision("bfloat16") == "float32"  # a hybrid's stored bfloat16 runs the faster way
    assert list((study_dirs["cache"] / precision_choice.KIND).glob("*/meta.json"))  # in the study's cache folder


def test_the_real_probe_runs_both_precisions_briefly(tmp_path):
    import time

    started = time.perf_counter()
    found = precision_choice.measure(device.POLICIES, repeats=1)
    assert set(found["seconds"]) == {"float32", "bfloat16"} and found["choice"] in ("float32", "bfloat16")
    assert time.perf_counter() - started < 60  # generous on a loaded 2-core machine; the bench reports its time
