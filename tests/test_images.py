import logging

import numpy as np
import pytest

from genrestudy import cache
from genrestudy.signals import images, signal_set as signals
from genrestudy.data.audio import load_audio
from genrestudy.data.dataset import scan_dataset
from genrestudy.data.demo import generate_demo_dataset
from genrestudy.signals.images import ImageParams, build_image_set, mel_images
from genrestudy.signals.segments import ClipTooShortError, segment_clip, segment_count
from conftest import make_dataset, write_audio

SMALL = dict(n_segments=3, segment_seconds=1.0, image_size=32, n_mels=32)


def test_segment_count_policy():
    seg = 66150
    assert segment_count(661500, n_segments=10, segment_samples=seg, pad_samples=11025) == 10
    assert segment_count(660000, n_segments=10, segment_samples=seg, pad_samples=11025) == 10  # 29.93 s
    assert segment_count(seg * 5 + 10, n_segments=10, segment_samples=seg, pad_samples=11025) == 5
    assert segment_count(seg - 1, n_segments=10, segment_samples=seg, pad_samples=11025) == 0


def test_segment_clip_shapes_and_short_clip():
    out = segment_clip(np.ones(22050 * 7, np.float32), sample_rate=22050, n_segments=10, segment_seconds=3.0)
    assert out.shape == (2, 66150)
    with pytest.raises(ClipTooShortError, match=r"^clip of 2 s is shorter than the minimum of 3 s \(one 3 s segment; 44100 of 66150 samples at 22050 Hz\)$"):
        segment_clip(np.ones(44100, np.float32), sample_rate=22050)


def test_mel_power_equals_librosa_melspectrogram():
    import librosa

    rng = np.random.default_rng(1)
    signal = rng.standard_normal(22050 * 4).astype(np.float32)
    for params in (ImageParams(), ImageParams(n_fft=1024, hop_length=256, n_mels=64, fmin=30.0, fmax=8000.0)):
        ours = images.mel_power(signal, params)
        ref = librosa.feature.melspectrogram(y=signal, sr=22050, n_fft=params.n_fft, hop_length=params.hop_length,
                                             n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5 * ref.max())


def test_mel_images_paper_defaults():
    t = np.arange(22050 * 30) / 22050
    signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = mel_images(signal)
    assert out.shape == (10, 224, 224) and out.dtype == np.uint8
    # a 440 Hz tone: brightest rows sit in the lower part of the image (low frequencies at the bottom)
    brightest_row = out[0].mean(axis=1).argmax()
    assert brightest_row > 224 // 2


def test_mel_images_match_a_per_segment_computation():
    """Slicing one clip spectrogram gives the same picture as computing each segment alone."""
    import librosa
    from PIL import Image

    rng = np.random.default_rng(0)
    signal = (rng.standard_normal(22050 * 9) * np.repeat(rng.uniform(0.1, 1, 90), 2205)).astype(np.float32)
    ours = mel_images(signal, ImageParams(n_segments=3))
    segment = signal[66150:2 * 66150]
    db = librosa.power_to_db(librosa.feature.melspectrogram(y=segment, sr=22050), ref=np.max, top_db=None)
    scaled = ((np.clip(db, -80, 0) + 80) * 255 / 80).astype(np.float32)[::-1]
    naive = np.asarray(Image.fromarray(scaled).resize((224, 224), Image.BILINEAR))
    # the same picture up to frame alignment at the segment's edges (white noise: worst case)
    assert np.corrcoef(naive.ravel(), ours[1].ravel())[0, 1] > 0.95
    assert np.abs(naive - ours[1].astype(np.float32)).mean() < 8


def test_silent_clip_gives_zero_images_without_nan():
    out = mel_images(np.zeros(22050 * 3, np.float32), ImageParams(n_segments=1))
    assert out.shape == (1, 224, 224) and out.max() == 0


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="n_mels=1"):
        ImageParams(n_mels=1)


def _build(root, **kw):
    return build_image_set(scan_dataset(root), ImageParams(**{**SMALL, **kw}), n_jobs=1)


def test_build_cache_is_reused_and_keyed_by_parameters(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2, seconds=3.2)
    first = _build(root)
    assert first.images.shape == (12, 32, 32) and isinstance(first.images, np.memmap)
    assert list(first.segments.columns) == ["segment_id", "track_id", "label", "segment", "path"]
    assert first.segments["segment"].tolist() == [0, 1, 2] * 4
    assert first.classes == ["blues", "rock"] and first.labels.tolist() == [0] * 6 + [1] * 6
    np.testing.assert_array_equal(first.rgb([0])[..., 2], first.images[[0]])

    calls, decodes = [], []
    real, real_load = images.segment_images, signals.load_audio
    monkeypatch.setattr(images, "segment_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(signals, "load_audio", lambda *a, **k: decodes.append(1) or real_load(*a, **k))
    again = _build(root)
    assert calls == [] and again.key == first.key
    other = _build(root, n_mels=24)
    assert len(calls) == 4 and other.key != first.key
    assert decodes == [] and other.meta["signal_cache"] == first.meta["signal_cache"]  # no second decode
    write_audio(root / "genres_original" / "rock" / "rock.00001.wav", seconds=2.2, freq=999)
    changed = _build(root)
    assert changed.key != first.key and len(changed) == 3 * 3 + 2


def test_short_and_silent_clips_in_a_data_set(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", genres=("blues",), clips=2, seconds=3.2)
    write_audio(root / "genres_original" / "blues" / "blues.00002.wav", seconds=0.5)
    write_audio(root / "genres_original" / "blues" / "blues.00003.wav", seconds=3.0, silent=True)
    image_set = _build(root)
    clips = image_set.clips.set_index("track_id")
    assert clips.loc["blues.00002", "status"] == "excluded"
    assert "clip of 0.5 s is shorter than the minimum of 1 s (one 1 s segment;" in clips.loc["blues.00002", "reason"]
    assert clips.loc["blues.00003", "segments"] == 3
    silent = image_set.images[image_set.segments["track_id"] == "blues.00003"]
    assert silent.max() == 0


def test_stereo_44k_and_non_ascii_clip(study_dirs, tmp_path):
    write_audio(tmp_path / "ds" / "músic" / "stéréo 日本.wav", seconds=3.5, sample_rate=44100, channels=2)
    write_audio(tmp_path / "ds" / "other" / "mono.flac", seconds=3.5)
    image_set = _build(tmp_path / "ds")
    assert len(image_set) == 6 and image_set.images.dtype == np.uint8
    # a tone plus noise draws a picture, not a blank or saturated square, in every segment
    assert all(0 < img.mean() < 255 and img.std() > 1 for img in image_set.images)
    assert set(image_set.segments["label"]) == {"músic", "other"}


def test_interrupted_build_resumes(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=3, seconds=3.2)
    reference = _build(root, n_mels=30)
    ref_images = np.array(reference.images)
    cache_root = tmp_path / "cache2"
    monkeypatch.setenv("GENRESTUDY_CACHE", str(cache_root))
    real = images.segment_images
    calls = []

    def dies_on_fourth(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # a user's Ctrl-C half-way
        return real(*a, **k)

    monkeypatch.setattr(images, "segment_images", dies_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        _build(root, n_mels=30)
    entry = cache_root / "images" / reference.key
    assert not cache.is_complete(entry) and len(list((entry / "parts").glob("*.json"))) == 3
    (entry / "parts" / ".000003.json.k1ll3d.tmp").write_text("{")  # the killed run's half-written marker
    calls.clear()
    monkeypatch.setattr(images, "segment_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = _build(root, n_mels=30)
    assert len(calls) == 3  # only the clips the interrupted run had not finished
    np.testing.assert_array_equal(np.array(resumed.images), ref_images)
    assert not (entry / "parts").exists() and not list(entry.glob("*.partial"))


def test_damaged_cache_is_rebuilt(study_dirs, tmp_path, caplog):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=3.2)
    first = _build(root)
    (first.root / "images.npy").unlink()
    with caplog.at_level(logging.WARNING):
        again = _build(root)
    assert "damaged" in caplog.text and len(again) == len(first)


def test_unwritable_cache_is_one_clear_error(study_dirs, tmp_path, monkeypatch, unwritable_dir):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=3.2)
    manifest = scan_dataset(root)
    monkeypatch.setenv("GENRESTUDY_CACHE", str(unwritable_dir))
    with pytest.raises(cache.CacheError, match="cannot write to cache folder .*GENRESTUDY_CACHE") as err:
        build_image_set(manifest, ImageParams(**SMALL), n_jobs=1)
    assert "\n" not in str(err.value)


def test_parallel_build_matches_sequential(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2, seconds=3.2)
    sequential = np.array(_build(root).images)
    monkeypatch.setenv("GENRESTUDY_CACHE", str(tmp_path / "cache-parallel"))
    parallel = build_image_set(scan_dataset(root, use_cache=False), ImageParams(**SMALL), n_jobs=2)
    np.testing.assert_array_equal(np.array(parallel.images), sequential)


def test_real_gtzan_clip_yields_ten_segments(shared_data):
    signal, _ = load_audio(shared_data / "gtzan_sample" / "country" / "country.00000.wav")
    out = mel_images(signal)
    assert out.shape == (10, 224, 224)
    assert 60 < out.mean() < 220 and out.std() > 20  # a real spectrogram, not a blank or saturated one


def test_images_from_the_signal_cache_equal_images_from_the_audio(study_dirs, tmp_path):
    """Going through the cached signals changes no pixel: the same samples reach the same code."""
    root = generate_demo_dataset(tmp_path / "demo", clips_per_genre=2, duration=7.0, genres=("blues", "metal"),
                                 n_jobs=1)
    params = ImageParams(n_segments=2, segment_seconds=3.0, image_size=64, n_mels=48)
    image_set = build_image_set(scan_dataset(root), params, synthetic=True, n_jobs=2)
    assert image_set.synthetic and len(image_set) == 8
    for track, rows in image_set.segments.groupby("track_id").groups.items():
        path = image_set.segments.loc[rows[0], "path"]
        direct = mel_images(load_audio(path)[0], params)
        np.testing.assert_array_equal(image_set.images[rows], direct, err_msg=track)


def test_labels_named_na_and_none_stay_labels(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", genres=("NA", "None"), clips=1, seconds=3.2)
    _build(root)
    reopened = _build(root)  # read back from the cache's CSV files
    assert reopened.classes == ["NA", "None"] and reopened.clips["reason"].tolist() == ["", ""]
