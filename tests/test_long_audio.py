"""Audio of any length decoded block by block: the same signal, bounded memory, silence flagged."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from conftest import write_audio

from genrestudy.data import audio
from genrestudy.run import predict
from genrestudy.data.audio import AudioError, load_audio, open_audio
from genrestudy.signals.images import ImageParams, mel_images

PARAMS = ImageParams(n_segments=3, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256, n_mels=32,
                     image_size=32)


class Loudness(predict.GenreModel):
    """A model without a network: the class probabilities follow each segment image's mean brightness."""

    def segment_probabilities(self, images):
        level = images.reshape(len(images), -1).mean(axis=1, dtype=np.float64) / 255.0
        return np.stack([level, 1.0 - level], axis=1)


def loudness_model(params=PARAMS):
    header = {"kind": "test", "classes": ["loud", "quiet"], "image_params": params.__dict__, "synthetic": False}
    return Loudness(path=None, header=header)


def old_signal(path, rate):
    """The signal as load_audio made it before block decoding: all of the file, mixed, resampled whole."""
    import soxr

    data, native = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return mono if native == rate else soxr.resample(mono, native, rate, quality="HQ").astype(np.float32)


@pytest.mark.parametrize("suffix, rate, channels", [(".wav", 44100, 2), (".flac", 16000, 1), (".wav", 22050, 1),
                                                    (".ogg", 48000, 2)])
def test_blocks_give_the_signal_of_a_whole_decode(tmp_path, monkeypatch, suffix, rate, channels):
    path = write_audio(tmp_path / f"x{suffix}", seconds=7.3, sample_rate=rate, channels=channels)
    whole, info = load_audio(path)
    np.testing.assert_array_equal(whole, old_signal(path, 22050))
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 10_000)
    blocks = list(open_audio(path))
    assert len(blocks) > 10
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    streamed, streamed_info = load_audio(path)
    np.testing.assert_array_equal(streamed, whole)
    assert streamed_info == info


def test_prediction_of_a_long_file_is_that_of_a_whole_decode(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "long.wav", seconds=13.4, sample_rate=44100, channels=2, freq=500.0)
    model = loudness_model()
    whole = predict.predict_file(path, model)
    signal, _ = load_audio(path, sample_rate=PARAMS.sample_rate)
    expected = np.concatenate([model.segment_probabilities(mel_images(c, PARAMS))
                               for c in predict.clip_chunks(signal, PARAMS)])
    assert whole.segments == 13 and whole.probabilities["loud"] == pytest.approx(expected[:, 0].mean(), abs=0)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 7_000)
    streamed = predict.predict_file(path, model)
    assert streamed.segments == whole.segments and streamed.probabilities == whole.probabilities


def test_memory_of_a_long_file_stays_within_a_few_blocks(tmp_path, monkeypatch):
    """90 s of 44.1 kHz stereo is 32 MB as float32; decoded in 64 Ki-frame blocks, prediction holds a few MB."""
    rng = np.random.default_rng(0)
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", samplerate=44100, channels=2, subtype="PCM_16") as out:
        for _ in range(90):
            out.write((0.1 * rng.standard_normal((44100, 2))).astype(np.float32))
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 1 << 16)
    model = loudness_model()
    tracemalloc.start()
    try:
        result = predict.predict_file(path, model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.segments == 90
    assert peak < 12e6, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("make", [
    lambda n, rng: np.zeros(n),                                            # all zeros
    lambda n, rng: rng.integers(-1, 2, n) / 32768.0,                       # dither of one 16-bit step
    lambda n, rng: np.concatenate([np.zeros(n - 2000), rng.standard_normal(2000) * 0.3]),  # sound after the segments
])
def test_a_digitally_silent_file_is_flagged_not_predicted(tmp_path, make):
    rng = np.random.default_rng(1)
    path = tmp_path / "silent.wav"
    sf.write(path, make(int(3.2 * 22050) + 2000, rng).astype(np.float32), 22050, subtype="PCM_16")
    with pytest.raises(AudioError, match="digitally silent"):
        predict.predict_file(path, loudness_model())
    [failed] = predict.predict_files([path], loudness_model())
    assert not failed.ok and "digitally silent" in failed.error and "\n" not in failed.error


def test_a_quiet_but_real_file_is_predicted(tmp_path):
    path = write_audio(tmp_path / "quiet.wav", seconds=3.2)
    data, rate = sf.read(path)
    sf.write(path, data * 0.01, rate, subtype="PCM_16")   # -40 dB: quiet, not silent
    assert predict.predict_file(path, loudness_model()).ok
