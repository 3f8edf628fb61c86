"""Two processes asking for the same cache entry at once: one builds, the other waits and reuses it."""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from genrestudy import cache

from conftest import make_dataset


def _build_images(root: str, cache_dir: str) -> tuple[str, int, float]:
    os.environ["GENRESTUDY_CACHE"] = cache_dir
    from genrestudy.data.dataset import scan_dataset
    from genrestudy.signals.images import ImageParams, build_image_set

    image_set = build_image_set(scan_dataset(root, n_jobs=1), ImageParams(image_size=32, n_segments=2), n_jobs=1)
    return str(image_set.root), int(image_set.images.sum()), time.time()


def test_two_processes_building_one_image_cache_share_it(tmp_path):
    # defect: the first to finish deleted parts/ while the second still read it (FileNotFoundError)
    root = make_dataset(tmp_path / "set", genres=("blues", "rock"), clips=6, seconds=6.5)
    cache_dir = tmp_path / "cache"
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(_build_images, str(root), str(cache_dir)) for _ in range(2)]
        results = [run.result(timeout=300) for run in runs]
    assert results[0][:2] == results[1][:2]  # the same entry, the same images
    entries = [p for p in (cache_dir / "images").iterdir() if p.is_dir()]
    assert len(entries) == 1 and cache.is_complete(entries[0]) and not (entries[0] / "parts").exists()


def _slow_build(entry, marker: str) -> dict:
    with open(marker, "a") as fh:
        fh.write("built\n")
    time.sleep(1.0)
    cache.save_array(entry / "values.npy", np.arange(5))
    return {"what": "test"}


def _open_or_build(cache_dir: str, marker: str) -> list:
    return cache.open_or_build("test", "key", root=cache_dir, build=lambda entry: _slow_build(entry, marker),
                               open_entry=lambda entry: np.load(entry / "values.npy").tolist())


def test_every_cache_of_the_study_builds_once_under_the_entry_lock(tmp_path):
    # searches, trained models, features and method runs all go through cache.open_or_build
    marker = tmp_path / "builds.txt"
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [run.result(timeout=120) for run in
                   [pool.submit(_open_or_build, str(tmp_path / "cache"), str(marker)) for _ in range(3)]]
    assert results == [[0, 1, 2, 3, 4]] * 3
    assert marker.read_text() == "built\n"
