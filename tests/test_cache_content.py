"""Cache entries are checked against the size, checksum, shape and dtype recorded when they were written."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import make_dataset

from genrestudy import cache, cache_check
from genrestudy.extractors import features
from genrestudy.data.dataset import scan_dataset
from genrestudy.signals.images import ImageParams, build_image_set
from genrestudy.signals.signal_set import build_signal_set

PARAMS = ImageParams(n_segments=2, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256, n_mels=32,
                     image_size=32)


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("GENRESTUDY_CACHE", str(tmp_path / "cache"))
    root = make_dataset(tmp_path / "set", genres=("blues", "rock"), clips=2, seconds=2.2)
    manifest = scan_dataset(root, n_jobs=1)
    images = build_image_set(manifest, PARAMS, n_jobs=1)
    return {"root": root, "manifest": manifest, "images": images, "reference": np.array(images.images)}


def _rewrite_npy(path, array):
    path.unlink()  # the memory map of the open set keeps the old inode
    np.save(path, array)


def _flip(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x10
    path.unlink()
    path.write_bytes(bytes(data))


def _damaged_line(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]


@pytest.mark.parametrize("damage", ["wrong_shape", "bit_flip", "float16", "truncated"])
def test_a_changed_image_cache_is_rebuilt_with_one_line(study, caplog, damage):
    # defect: only the row count was checked; a wrong-shaped, bit-flipped or re-typed array was used
    path = study["images"].root / "images.npy"
    n = len(study["reference"])
    if damage == "wrong_shape":
        _rewrite_npy(path, np.zeros((n, 8, 8), np.uint8))
    elif damage == "bit_flip":
        _flip(path)
    elif damage == "float16":
        _rewrite_npy(path, study["reference"].astype(np.float16))  # the same shape
    else:
        path.write_bytes(path.read_bytes()[:-64])
    with caplog.at_level(logging.WARNING):
        again = build_image_set(study["manifest"], PARAMS, n_jobs=1)
    lines = _damaged_line(caplog)
    assert len(lines) == 1 and "images.npy" in lines[0] and "rebuilding it" in lines[0] and "\n" not in lines[0]
    np.testing.assert_array_equal(again.images, study["reference"])


@pytest.mark.parametrize("damage", ["bit_flip", "float16"])
def test_a_changed_signal_cache_is_rebuilt(study, caplog, damage):
    params = PARAMS.segment_params
    signals = build_signal_set(study["manifest"], params, n_jobs=1)
    reference = np.array(signals.signals)
    path = signals.root / "signals.npy"
    if damage == "bit_flip":
        _flip(path, 4 * 1000)
    else:  # float16 in twice the rows: the same file size as the float32 array
        _rewrite_npy(path, np.concatenate([reference, reference]).astype(np.float16))
    with caplog.at_level(logging.WARNING):
        again = build_signal_set(study["manifest"], params, n_jobs=1)
    assert len(_damaged_line(caplog)) == 1 and "signals.npy" in _damaged_line(caplog)[0]
    np.testing.assert_array_equal(again.signals, reference)


@pytest.mark.parametrize("damage", ["shortened", "garbage"])
def test_a_damaged_manifest_is_scanned_again(study, caplog, damage):
    # defect: a shortened manifest.csv was read back as the data set (5 of 8 clips, silently)
    (entry,) = [p for p in (cache.paths.cache_dir() / "manifests").iterdir() if p.is_dir()]
    table = entry / "manifest.csv"
    if damage == "shortened":
        lines = table.read_text().splitlines(keepends=True)
        table.write_text("".join(lines[:-2]))
    else:
        table.write_bytes(b"track_id,label,path\n\x00\x01garbage,,\n")
    with caplog.at_level(logging.WARNING):
        again = scan_dataset(study["root"], n_jobs=1)
    assert len(_damaged_line(caplog)) == 1 and "manifest.csv" in _damaged_line(caplog)[0]
    pd.testing.assert_frame_equal(again, study["manifest"])


def _feature_entry(tmp_path, columns: int):
    """A feature cache entry as extract_features writes it (MobileNetV2: 1280 features)."""
    def build(entry):
        cache.save_array(entry / "features.npy", np.ones((4, columns), np.float32))
        cache.write_csv(entry / "segments.csv", pd.DataFrame({
            "segment_id": range(4), "track_id": ["a", "a", "b", "b"], "label": ["x", "x", "y", "y"],
            "segment": [0, 1, 0, 1], "path": ["a.wav", "a.wav", "b.wav", "b.wav"]}))
        return {"backbone": "MobileNetV2", "n_features": columns}
    return cache.open_or_build("features", f"k{columns}", open_entry=lambda e: e, build=build, root=tmp_path)


def test_a_feature_table_of_another_width_is_refused_even_with_a_matching_record(tmp_path):
    entry = _feature_entry(tmp_path, 1280)
    assert features.open_feature_set(entry).features.shape == (4, 1280)
    np.save(entry / "features.npy", np.ones((4, 7), np.float32))
    with pytest.raises(cache_check.EntryMismatch, match=r"features.npy is \(4, 7\) float32, \(4, 1280\) float32 was"):
        features.open_feature_set(entry)
    # the record rewritten to match the 7 columns: the width the caller expects still refuses it
    meta = cache.read_meta(entry)
    cache.finish(entry, {k: v for k, v in meta.items() if k != "files"})
    with pytest.raises(cache_check.EntryMismatch, match=r"expected \(n, 1280\) float32"):
        features.open_feature_set(entry)


def test_an_entry_from_before_the_records_is_rebuilt(tmp_path, caplog):
    builds = []

    def build(entry):
        builds.append(1)
        cache.save_array(entry / "values.npy", np.arange(3))
        return {}

    cache.open_or_build("toy", "k", open_entry=lambda e: 1, build=build, root=tmp_path)
    meta = json.loads((tmp_path / "toy" / "k" / cache.META_FILE).read_text())
    (tmp_path / "toy" / "k" / cache.META_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "files"}))
    with caplog.at_level(logging.WARNING):
        cache.open_or_build("toy", "k", open_entry=lambda e: 1, build=build, root=tmp_path)
    assert len(builds) == 2 and "written by an older genrestudy" in _damaged_line(caplog)[0]


def test_a_meta_json_with_wrong_parameters_is_rebuilt_not_a_traceback(study, caplog):
    meta_path = study["images"].root / cache.META_FILE
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "params": {"image_size": "big"}}))
    with caplog.at_level(logging.WARNING):
        again = build_image_set(study["manifest"], PARAMS, n_jobs=1)
    assert len(_damaged_line(caplog)) == 1
    np.testing.assert_array_equal(again.images, study["reference"])
