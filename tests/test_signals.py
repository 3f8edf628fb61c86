import errno

import numpy as np
import pytest

from genrestudy import cache
from genrestudy.signals import signal_set as signals
from genrestudy.data.audio import load_audio
from genrestudy.data.dataset import scan_dataset
from genrestudy.signals.segments import segment_clip
from genrestudy.signals.signal_set import SegmentParams, build_signal_set, segment_features
from conftest import make_dataset, write_audio

SMALL = SegmentParams(n_segments=3, segment_seconds=1.0)


def _counting(monkeypatch, module, name, fail_on=None):
    """Replace ``module.name`` by a wrapper that counts its calls (and raises Ctrl-C on call ``fail_on``)."""
    real, calls = getattr(module, name), []

    def wrapper(*a, **k):
        calls.append(1)
        if len(calls) == fail_on:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _rms(segments, sample_rate, *, scale=1.0):
    return scale * np.sqrt((segments.astype(np.float64) ** 2).mean(axis=1, keepdims=True))


def test_segment_params_are_validated():
    with pytest.raises(ValueError, match="invalid segment parameters pad_seconds=1.0"):
        SegmentParams(segment_seconds=1.0, pad_seconds=1.0)
    assert SegmentParams().segment_samples == 66150


def test_signal_rows_are_the_decoded_segments(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2, seconds=3.2)
    write_audio(root / "genres_original" / "rock" / "rock.00005.wav", seconds=2.2, freq=999)  # 2 segments
    write_audio(root / "genres_original" / "rock" / "rock.00006.wav", seconds=0.4)  # too short
    signal_set = build_signal_set(scan_dataset(root), SMALL, n_jobs=2)
    assert signal_set.signals.shape == (6, 3, 22050) and isinstance(signal_set.signals, np.memmap)
    assert len(signal_set) == 4 * 3 + 2 and signal_set.classes == ["blues", "rock"]
    clips = signal_set.clips.set_index("track_id")
    assert clips.loc["rock.00006", "status"] == "excluded" and "clip of 0.4 s is shorter than the minimum of 1 s" in clips.loc["rock.00006", "reason"]
    for track, row in clips[clips["status"] == "usable"]["signal_row"].items():
        expected = segment_clip(load_audio(clips.loc[track, "path"])[0], **vars(SMALL))
        got = signal_set.clip_segments(row)
        np.testing.assert_array_equal(got, expected)
        assert not signal_set.signals[row, len(got):].any()  # a short clip's row ends in zeros
    first = signal_set.segments.iloc[4]
    np.testing.assert_array_equal(signal_set.segment(4), signal_set.clip_segments(first["signal_row"])[first["segment"]])
    assert np.shares_memory(signal_set.clip_segments(0).reshape(-1), signal_set.signals)


def test_signal_cache_is_reused_and_keyed(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("NA", "None"), clips=1, seconds=3.2)
    first = build_signal_set(scan_dataset(root), SMALL, n_jobs=1)
    decodes = _counting(monkeypatch, signals, "load_audio")
    again = build_signal_set(scan_dataset(root), SMALL, n_jobs=1)
    assert decodes == [] and again.key == first.key
    # read back from CSV: folders named NA / None stay labels, an empty reason stays ""
    assert again.classes == ["NA", "None"] and again.clips["reason"].tolist() == ["", ""]
    other = build_signal_set(scan_dataset(root), SegmentParams(n_segments=2, segment_seconds=1.0), n_jobs=1)
    assert len(decodes) == 2 and other.key != first.key


def test_interrupted_decoding_resumes_past_stale_temporaries(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=3, seconds=3.2)
    manifest = scan_dataset(root)
    decodes = _counting(monkeypatch, signals, "load_audio", fail_on=4)
    with pytest.raises(KeyboardInterrupt):
        build_signal_set(manifest, SMALL, n_jobs=1)
    entry = cache.entry_dir("signals", signals.signal_cache_key(manifest, SMALL))
    assert not cache.is_complete(entry) and len(list((entry / "parts").glob("*.json"))) == 3
    # what a kill in the middle of atomic writes leaves behind
    (entry / "parts" / ".000003.json.abc123.tmp").write_text("{")
    (entry / ".segments.csv.def456.tmp").write_text("segment_id")
    monkeypatch.setattr(signals, "load_audio", load_audio)
    decodes = _counting(monkeypatch, signals, "load_audio")
    resumed = build_signal_set(manifest, SMALL, n_jobs=1)
    assert len(decodes) == 3 and len(resumed) == 18
    assert not (entry / "parts").exists() and not list(entry.glob(".*.tmp")) and not list(entry.glob("*.partial"))
    for row, track in enumerate(resumed.clips["path"]):
        np.testing.assert_array_equal(resumed.clip_segments(row), segment_clip(load_audio(track)[0], **vars(SMALL)))


def test_full_disk_is_one_line_naming_the_cache_folder(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=3.2)

    def disk_full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.os, "posix_fallocate", disk_full)
    with pytest.raises(cache.CacheError, match=r"cannot write to cache folder .*signals.* \(No space left on device\)") \
            as err:
        build_signal_set(scan_dataset(root), SMALL, n_jobs=1)
    assert "\n" not in str(err.value)
    assert not list((study_dirs["cache"] / "signals").glob("*/*.partial"))  # no sparse leftover


def test_write_failure_of_a_table_is_one_line(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=3.2)

    def quota(*_):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(cache, "write_csv", quota)
    with pytest.raises(cache.CacheError, match="Disk quota exceeded"):
        build_signal_set(scan_dataset(root), SMALL, n_jobs=1)


def test_segment_features_map_over_the_cached_signals(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2, seconds=3.2)
    signal_set = build_signal_set(scan_dataset(root), SMALL, n_jobs=1)
    decodes = _counting(monkeypatch, signals, "load_audio")
    features = segment_features(signal_set, _rms, name="rms-v1", n_jobs=2)
    assert decodes == [] and features.values.shape == (12, 1) and features.values.dtype == np.float64
    expected = [_rms(signal_set.segment(i)[None], 22050)[0] for i in range(12)]
    np.testing.assert_allclose(features.values, expected)
    assert features.segments.equals(signal_set.segments.drop(columns="signal_row"))
    assert features.classes == signal_set.classes and features.meta["signal_cache"] == signal_set.key

    calls = []
    again = segment_features(signal_set, lambda s, **k: calls.append(1) or _rms(s, **k), name="rms-v1")
    assert calls == [] and again.key == features.key  # name and params key the cache, not the function object
    scaled = segment_features(signal_set, _rms, name="rms-v1", params={"scale": 2.0}, n_jobs=1)
    assert scaled.key != features.key
    np.testing.assert_allclose(scaled.values, 2 * np.asarray(features.values))


def test_extractor_with_a_wrong_row_count_is_reported(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=3.2)
    signal_set = build_signal_set(scan_dataset(root), SMALL, n_jobs=1)
    with pytest.raises(ValueError, match=r"clip-mean: expected an output of shape \(3, 1\)"):
        segment_features(signal_set, lambda s, sample_rate: s.mean(keepdims=True).reshape(1, 1), name="clip-mean",
                         n_jobs=1)


def test_a_file_name_that_is_not_utf8_reaches_the_images(study_dirs, tmp_path):
    import os

    from genrestudy.data.dataset import scan_dataset
    from genrestudy.signals.images import ImageParams, build_image_set

    root = make_dataset(tmp_path / "set", genres=("blues", "rock"), clips=2, seconds=3.5)
    odd = root / "genres_original" / "blues" / os.fsdecode(b"blues.\xff0009.wav")
    (root / "genres_original" / "blues" / "blues.00001.wav").rename(odd)
    image_set = build_image_set(scan_dataset(root, n_jobs=1), ImageParams(image_size=32, n_segments=1), n_jobs=1)
    assert odd.name in {p.rsplit("/", 1)[-1] for p in image_set.segments["path"]}
    again = build_image_set(scan_dataset(root, n_jobs=1), ImageParams(image_size=32, n_segments=1), n_jobs=1)
    assert again.root == image_set.root and list(again.segments["path"]) == list(image_set.segments["path"])
