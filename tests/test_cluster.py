"""The audit on a Dask cluster: a real multi-process LocalCluster gives the tables of one machine."""
from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from genrestudy import methods
from genrestudy.report import table7
from genrestudy.run import cluster, study
from genrestudy.extractors.features import open_feature_set

distributed = pytest.importorskip("distributed")

INPUTS = study.StudyInputs(budget=3, num_boost_round=12, early_stopping_rounds=4, retrain_rounds=12, seeds=(0,),
                           retrain_seed=1, max_bin=15)
LIGHTGBM_METHODS = ["hybrid_grid", "hybrid_random", "retrained_grid", "retrained_random"]


def _study_data(n_tracks=48, per_track=3, n_classes=3):
    """Generated features (the class in feature 0, plus noise) and two splits, no audio."""
    rng = np.random.default_rng(0)
    tracks = np.repeat(np.arange(n_tracks), per_track)
    labels = tracks % n_classes
    X = rng.normal(size=(len(tracks), 6)).astype(np.float32)
    X[:, 0] += 2.0 * labels
    classes = [f"g{i}" for i in range(n_classes)]
    segments = pd.DataFrame({"track_id": [f"t{t:03d}" for t in tracks], "label": [classes[c] for c in labels]})
    image_set = SimpleNamespace(key="images-cluster", classes=classes, labels=labels, segments=segments,
                                synthetic=True)
    feature_set = SimpleNamespace(features=X, meta={"image_cache": image_set.key}, root=Path("features-cluster"))
    splits = {"track": np.where(tracks < 28, "train", np.where(tracks < 38, "valid", "test")),
              "other": np.where(tracks >= 20, "train", np.where(tracks >= 10, "valid", "test"))}
    return methods.StudyData(INPUTS, image_set, opened={"features": feature_set}), splits


def _table7(data, splits, runs):
    return pd.concat([table7.protocol_rows(data, split, protocol=p, runs=runs[p], n_resamples=30, progress=False)[0]
                      for p, split in splits.items()], ignore_index=True)


def test_table7_on_a_multi_process_cluster_equals_one_machine(study_dirs, tmp_path, monkeypatch):
    data, splits = _study_data()
    local = table7.run_protocols(data, splits, LIGHTGBM_METHODS, progress=False)
    # the cluster writes into a cache of its own, so that nothing is read from the local run's
    monkeypatch.setenv("GENRESTUDY_CACHE", str(tmp_path / "cluster-cache"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1", resources={cluster.KERAS_RESOURCE: 1}) as local_cluster:
        monkeypatch.setenv(cluster.SCHEDULER_ENV, local_cluster.scheduler_address)  # as run_all.sh --scheduler
        facts = cluster.check(local_cluster.scheduler_address)  # what run_all.sh --scheduler checks first
        remote = table7.run_protocols(data, splits, LIGHTGBM_METHODS, progress=False)
        with distributed.Client(local_cluster.scheduler_address) as client:
            binned = client.run(lambda: len(__import__("genrestudy.models.classifiers").models.classifiers._BINNED))
            pids = set(client.run(__import__("os").getpid).values())
            # a task on a worker runs its own work there, not back on the cluster
            nested = client.submit(cluster.scheduler_address, "tcp://127.0.0.1:1", pure=False).result()
    assert sum(binned.values()) > 0 and __import__("os").getpid() not in pids  # the fits ran in the workers
    assert nested is None
    assert len(facts) == 2 and all("1 threads" in line and str(tmp_path / "cluster-cache") in line
                                   and line.endswith("keras=1") for line in facts)
    written = list((tmp_path / "cluster-cache" / "methods").glob("*/meta.json"))
    assert len(written) == len(LIGHTGBM_METHODS) * len(splits)  # by the workers, into the shared cache
    for protocol in splits:
        assert list(remote[protocol]) == list(local[protocol]) == LIGHTGBM_METHODS
        for key in LIGHTGBM_METHODS:
            np.testing.assert_array_equal(remote[protocol][key].proba, local[protocol][key].proba)
            assert remote[protocol][key].report["hyperparameters"] == local[protocol][key].report["hyperparameters"]
    pd.testing.assert_frame_equal(_table7(data, splits, remote), _table7(data, splits, local))


def test_a_scheduler_address_is_checked_and_an_absent_one_runs_here(monkeypatch):
    monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    assert cluster.scheduler_address() is None and cluster.scheduler_address("") is None
    monkeypatch.setenv(cluster.SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    assert cluster.scheduler_address() == "tcp://10.0.0.5:8786"
    assert cluster.scheduler_address("tls://other:8786") == "tls://other:8786"  # the parameter wins
    with pytest.raises(cluster.ClusterError, match="lacks a protocol"):
        cluster.scheduler_address("host:8786")
    monkeypatch.delenv(cluster.SCHEDULER_ENV)
    assert cluster.main(["check"]) == 1  # no address: one line, no traceback
    with pytest.raises(cluster.ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with cluster.connect("tcp://127.0.0.1:9", timeout=2):
            pass


def test_makespan_spreads_independent_tasks_longest_first():
    assert cluster.makespan([4, 3, 3, 2], 2) == 6.0
    assert cluster.makespan([10, 1, 1], 8) == 10.0  # the longest task bounds it
    assert cluster.makespan([1.0] * 27, 8) == 4.0
    assert cluster.makespan([], 3) == 0.0
    with pytest.raises(ValueError, match="n_workers"):
        cluster.makespan([1], 0)


def test_schedule_gives_each_process_one_training_and_each_machine_its_gpu_in_turn():
    assert cluster.schedule([(4, False), (3, False), (3, False), (2, False)], 2) == 6.0   # as makespan
    assert cluster.schedule([(1.0, False)] * 27, 8) == cluster.makespan([1.0] * 27, 8) == 4.0
    assert cluster.schedule([(1.0, False)] * 27, 2, slots=4) == 4.0                    # 8 processes in all
    assert cluster.schedule([(4, True), (4, True)], 1, slots=2) == 8.0                 # one GPU: in turn
    assert cluster.schedule([(6, False), (4, True), (4, True)], 2, slots=2) == 6.0     # beside the CPU job
    assert cluster.schedule([(3, True)] * 4 + [(5, False)] * 2, 2, slots=3) == 6.0
    assert cluster.schedule([], 3, slots=2) == 0.0
    with pytest.raises(ValueError, match="one slot"):
        cluster.schedule([(1, False)], 1, slots=0)


def test_a_cached_feature_set_travels_by_its_path(study_dirs, tmp_path):
    from genrestudy import cache

    entry = tmp_path / "features-entry"
    entry.mkdir()
    np.save(entry / "features.npy", np.arange(12, dtype=np.float32).reshape(4, 3))
    pd.DataFrame({"segment_id": range(4), "track_id": ["a", "a", "b", "b"], "label": ["x", "y", "x", "y"]}).to_csv(
        entry / "segments.csv", index=False)
    cache.finish(entry, {"builder": "extract_features"})
    opened = open_feature_set(entry)
    blob = pickle.dumps(opened)
    assert len(blob) < opened.features.nbytes + 2000 and b"features-entry" in blob
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.features, opened.features)
    # a set with no cache entry travels whole, as before
    whole = pickle.loads(pickle.dumps(type(opened)(root=None, features=np.ones((2, 2), np.float32),
                                                   segments=opened.segments.head(2), meta={})))
    assert whole.root is None and whole.features.sum() == 4


def _first_stage(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "first").write_text(str(__import__("os").getpid()))


def _second_stage(folder: Path) -> None:
    (folder / "second").write_text((folder / "first").read_text())   # fails unless the first stage ran before


class _Staged(methods.Method):
    """A throwaway method whose work runs as two stages of tasks before its run (as a network's grid does)."""

    key, name, needs = "staged_for_a_test", "staged (test)", ("features",)

    @property
    def folder(self) -> Path:   # the workers share the study's cache folder ($GENRESTUDY_CACHE, set before they start)
        from genrestudy import paths

        return paths.cache_dir() / "staged-for-a-test"

    def tasks(self, train, valid):
        return [[(_first_stage, (self.folder,))], [(_second_stage, (self.folder,))]]

    def prepare(self, train, valid):   # a search's place: it runs here while the tasks run on the workers
        import time

        deadline = time.monotonic() + 60
        while not (self.folder / "first").exists():
            assert time.monotonic() < deadline, "the method's tasks did not run alongside its prepare"
            time.sleep(0.05)

    def fit(self, train, valid):
        self.record = {"worker_pid": int((self.folder / "second").read_text())}

    def predict_proba(self, test):
        return np.full((len(test), len(test.data.classes)), 1.0 / len(test.data.classes))


def test_a_methods_tasks_run_on_the_workers_stage_after_stage_alongside_its_prepare_before_its_run(study_dirs, tmp_path, monkeypatch):
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(__import__("sys").modules[__name__])   # the test's own method and tasks
    data, splits = _study_data()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as local_cluster:
        # run_methods (notebooks 06, 07) goes to the cluster as run_protocols (09) does
        runs = table7.run_methods(data, splits["track"], [_Staged], scheduler_address=local_cluster.scheduler_address,
                                  progress=False)
    pid = runs["staged_for_a_test"].report["worker_pid"]
    assert pid != __import__("os").getpid() and (_Staged(None).folder / "first").read_text() == str(pid)


def _spell(seconds):
    """A task that holds its worker's thread for ``seconds``: (pid, start, end)."""
    import os
    import time

    start = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), start, time.monotonic()


def _overlapping(spells) -> bool:
    spells = sorted(spells, key=lambda s: (s[0], s[1]))
    return any(a[0] == b[0] and b[1] < a[2] for a, b in zip(spells, spells[1:]))


@pytest.mark.parametrize("declared", [False, True])
def test_trainings_run_one_at_a_time_in_a_worker_process_of_several_threads(declared):
    """Keras's seed is the process's: two trainings in two threads of one worker would share it. Plain tasks
    (a search's fits) use every thread; trainings queue inside the process, or are sent one at a time to a
    worker that declares keras=1."""
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(__import__("sys").modules[__name__])
    resources = {"resources": {cluster.KERAS_RESOURCE: 1}} if declared else {}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                                  host="127.0.0.1", **resources) as local_cluster:
        address = local_cluster.scheduler_address
        facts = cluster.check(address)
        plain = cluster.map_ordered(_spell, [(0.6,), (0.6,)], address, progress=False)
        trainings = cluster.map_ordered(_spell, [(0.3,), (0.3,), (0.3,)], address, progress=False, training=True)
        with distributed.Client(address) as client:
            hosts = cluster.cores_by_host(client)
    assert hosts == {"127.0.0.1": __import__("os").cpu_count()}   # the machine's cores, not the worker's threads
    assert _overlapping(plain)   # the worker does run two tasks at once
    assert not _overlapping(trainings)
    assert facts[-1].startswith("no worker declares keras=1") != declared
