"""The six spectral-shape features: each against a direct reference, silence, clip level, and their cache."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from genrestudy.signals import signal_set as signals, spectral
from genrestudy.run import study
from genrestudy.data.dataset import scan_dataset
from genrestudy.extractors.features import FeatureSet
from genrestudy.signals.signal_set import SegmentParams, build_signal_set

SR, N_FFT, HOP = 22050, 512, 128


def _noisy_tones(k=3, n=SR // 2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    out = [0.5 * np.sin(2 * np.pi * (300 + 400 * i) * t) + 0.1 * rng.standard_normal(n) for i in range(k)]
    return np.asarray(out, dtype=np.float32)


def _reference_frame(S: np.ndarray, freq: np.ndarray, roll_percent: float) -> dict:
    """The six features of one magnitude frame, the textbook way: scipy's moments of the spectrum
    read as a distribution over frequency, the rolloff by a cumulative sum, the flatness by logs."""
    moments = scipy.stats.rv_discrete(values=(freq, S / S.sum())).stats(moments="mvsk")
    mean, var, skew, excess = (float(m) for m in moments)
    cumulative = np.cumsum(S)
    power = np.maximum(S ** 2, 1e-10)
    return {"centroid": mean, "spread": np.sqrt(var), "skewness": skew, "kurtosis": excess + 3.0,
            "rolloff": freq[np.argmax(cumulative >= roll_percent * cumulative[-1])],
            "flatness": np.exp(np.mean(np.log(power))) / np.mean(power)}


@pytest.mark.parametrize("roll_percent", [0.85, 0.5])
def test_each_feature_matches_a_direct_reference_computation(roll_percent):
    S = spectral.magnitude_spectrogram(_noisy_tones(), n_fft=N_FFT, hop_length=HOP)
    frames = spectral.frame_features(S, sample_rate=SR, n_fft=N_FFT, roll_percent=roll_percent)
    freq = np.fft.rfftfreq(N_FFT, 1 / SR)
    assert list(frames) == list(spectral.SPECTRAL)
    for segment, frame in [(0, 0), (1, 7), (2, 20), (2, S.shape[-1] - 1)]:
        expected = _reference_frame(S[segment, :, frame], freq, roll_percent)
        for name in spectral.SPECTRAL:
            tolerance = freq[1] if name == "rolloff" else 0  # librosa reports the bin at or above
            assert frames[name][segment, frame] == pytest.approx(expected[name], rel=1e-6, abs=tolerance + 1e-9), name


def test_librosa_features_are_those_of_the_segment_signal():
    import librosa

    segments = _noisy_tones()
    vectors = spectral.spectral_shape(segments, sample_rate=SR, n_fft=N_FFT, hop_length=HOP)
    assert vectors.shape == (3, 12)
    named = pd.DataFrame(vectors, columns=spectral.FEATURE_NAMES)
    for i, y in enumerate(segments):
        centroid = librosa.feature.spectral_centroid(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP)[0]
        rolloff = librosa.feature.spectral_rolloff(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP)[0]
        bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP)[0]
        flatness = librosa.feature.spectral_flatness(y=y, n_fft=N_FFT, hop_length=HOP)[0]
        for name, frames in (("centroid", centroid), ("rolloff", rolloff), ("spread", bandwidth), ("flatness", flatness)):
            assert named.loc[i, f"{name}_mean"] == pytest.approx(frames.mean(), rel=1e-4), name
            assert named.loc[i, f"{name}_std"] == pytest.approx(frames.std(), rel=1e-3, abs=1e-6), name


def test_known_spectra_give_known_shapes():
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[None, :]
    noise = np.random.default_rng(0).standard_normal((1, SR)).astype(np.float32)
    tone_v, noise_v = (dict(zip(spectral.FEATURE_NAMES, spectral.spectral_shape(x, sample_rate=SR)[0]))
                       for x in (tone, noise))
    assert tone_v["centroid_mean"] == pytest.approx(1000, abs=50) and tone_v["rolloff_mean"] == pytest.approx(1000, abs=50)
    assert tone_v["spread_mean"] < 200 < noise_v["spread_mean"]
    assert tone_v["flatness_mean"] < 0.01 < 0.3 < noise_v["flatness_mean"]
    assert noise_v["centroid_mean"] == pytest.approx(SR / 4, rel=0.05)  # white noise: flat up to Nyquist
    assert noise_v["kurtosis_mean"] == pytest.approx(1.8, rel=0.05)  # a uniform distribution's kurtosis
    assert abs(noise_v["skewness_mean"]) < 0.05


def test_a_silent_segment_gives_finite_values_and_no_warning():
    segments = _noisy_tones()
    segments[1] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectors = spectral.spectral_shape(segments, sample_rate=SR, n_fft=N_FFT, hop_length=HOP)
        whole = spectral.spectral_shape(np.zeros((2, SR), np.float32), sample_rate=SR, level="clip")
    assert np.isfinite(vectors).all() and np.isfinite(whole).all()
    silent = dict(zip(spectral.FEATURE_NAMES, vectors[1]))
    assert silent["flatness_mean"] == pytest.approx(1.0)  # librosa's floor: silence is flat
    assert all(v == pytest.approx(0.0, abs=1e-9) for name, v in silent.items() if name != "flatness_mean")
    assert np.isfinite(vectors[[0, 2]]).all() and (vectors[[0, 2], 0] > 0).all()


def test_clip_level_summarises_the_whole_clip_on_every_segment_row():
    segments = _noisy_tones()
    clip = spectral.spectral_shape(segments, sample_rate=SR, n_fft=N_FFT, hop_length=HOP, level="clip")
    whole = spectral.spectral_shape(segments.reshape(1, -1), sample_rate=SR, n_fft=N_FFT, hop_length=HOP)
    np.testing.assert_allclose(clip, np.repeat(whole, 3, axis=0))
    per_segment = spectral.spectral_shape(segments, sample_rate=SR, n_fft=N_FFT, hop_length=HOP)
    assert not np.allclose(per_segment, clip)


def test_parameters_are_validated_in_one_line():
    with pytest.raises(ValueError, match="level='track'") as info:
        spectral.SpectralParams(level="track")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="roll_percent=1.5"):
        spectral.SpectralParams(roll_percent=1.5)
    inputs = study.StudyInputs(n_fft=1024, hop_length=256)
    assert spectral.study_params(inputs, level="clip") == spectral.SpectralParams(1024, 256, 0.85, "clip")
    with pytest.raises(ValueError, match="segments"):
        spectral.spectral_shape(np.zeros(100), sample_rate=SR)


def _signal_set(tmp_path, study_dirs):
    from conftest import make_dataset

    root = make_dataset(tmp_path / "set", genres=("calm", "lively"), clips=2, seconds=3.2)
    return build_signal_set(scan_dataset(root, n_jobs=1), SegmentParams(n_segments=2, segment_seconds=1.5), n_jobs=1)


def test_features_come_through_the_signal_cache_and_are_cached(tmp_path, study_dirs, monkeypatch):
    signal_set = _signal_set(tmp_path, study_dirs)

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio decoded a second time")

    monkeypatch.setattr(signals, "load_audio", no_decoding)
    params = spectral.SpectralParams(n_fft=512, hop_length=256)
    features = spectral.spectral_features(signal_set, params, n_jobs=1)
    assert features.values.shape == (len(signal_set.segments), 12)
    assert features.meta["name"] == spectral.CACHE_NAME and features.meta["signal_cache"] == signal_set.key
    row = signal_set.segments.iloc[3]
    expected = spectral.spectral_shape(signal_set.clip_segments(int(row["signal_row"])), sample_rate=SR,
                                       **params.extractor_kwargs())[int(row["segment"])]
    np.testing.assert_allclose(features.values[3], expected, rtol=1e-6)
    monkeypatch.setattr(spectral, "spectral_shape", lambda *a, **k: pytest.fail("recomputed cached features"))
    again = spectral.spectral_features(signal_set, params, n_jobs=1)
    assert again.key == features.key
    monkeypatch.undo()
    other = spectral.spectral_features(signal_set, spectral.SpectralParams(n_fft=512, hop_length=256, level="clip"),
                                       n_jobs=1)
    assert other.key != features.key


def test_misaligned_features_are_refused_in_one_line():
    segments = pd.DataFrame({"track_id": ["a", "a", "b", "b"], "segment": [0, 1, 0, 1]})
    spectral.check_aligned(segments, segments.copy())
    with pytest.raises(ValueError, match="not aligned .* first differ at row 1") as info:
        spectral.check_aligned(segments, segments.iloc[[0, 2, 1, 3]])
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="3 segments"):
        spectral.check_aligned(segments.iloc[:3], segments)


def test_clip_level_rows_need_a_track_grouped_split():
    segments = pd.DataFrame({"track_id": ["a", "a", "b", "b"], "label": ["x", "x", "y", "y"], "segment": [0, 1, 0, 1]})
    values = np.arange(8.0).reshape(4, 2)
    rows, clips, split = spectral.per_clip(values, segments, ["train", "train", "test", "test"])
    assert rows.tolist() == [[0, 1], [4, 5]] and clips["track_id"].tolist() == ["a", "b"] and list(split) == ["train", "test"]
    with pytest.raises(ValueError, match="1 clips have segments on several sides .* track-grouped"):
        spectral.per_clip(values, segments, ["train", "valid", "test", "test"])


def _kaggle(columns: dict) -> FeatureSet:
    n = 4
    segments = pd.DataFrame({"segment_id": range(n), "track_id": list("abcd"), "label": list("xyxy")})
    return FeatureSet(root=None, features=np.column_stack(list(columns.values())).astype(np.float32), segments=segments,
                      meta={"feature_columns": list(columns), "synthetic": False})


def test_kaggle_tables_give_their_spectral_columns_and_say_which_are_missing():
    table = _kaggle({"chroma_stft_mean": np.ones(4), "spectral_centroid_mean": np.full(4, 2000.0),
                     "spectral_centroid_var": np.full(4, 400.0), "rolloff_mean": np.full(4, 4000.0),
                     "rolloff_var": np.full(4, 900.0), "spectral_bandwidth_mean": np.full(4, 1500.0)})
    values, names, missing = spectral.kaggle_spectral(table)
    assert names == ["centroid_mean", "centroid_std", "rolloff_mean", "rolloff_std"]  # bandwidth lacks its variance
    assert missing == ["spread", "skewness", "kurtosis", "flatness"]
    np.testing.assert_allclose(values[0], [2000, 20, 4000, 30])  # variance → standard deviation
    with pytest.raises(ValueError, match="no spectral-shape column") as info:
        spectral.kaggle_spectral(_kaggle({"mfcc1_mean": np.ones(4)}))
    assert "\n" not in str(info.value)
