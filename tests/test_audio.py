import numpy as np
import pytest

from genrestudy.data.audio import AudioError, load_audio
from conftest import write_audio


@pytest.mark.parametrize("suffix", [".wav", ".au", ".flac", ".ogg", ".mp3"])
def test_formats_decode_to_mono_float32_at_22050(tmp_path, suffix):
    path = write_audio(tmp_path / f"clip{suffix}", seconds=1.0)
    signal, info = load_audio(path)
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert info.sample_rate == 22050
    assert abs(len(signal) - 22050) < 2300  # mp3/ogg codecs pad a little
    assert np.isfinite(signal).all() and np.abs(signal).max() > 0.1


def test_stereo_44k_is_mixed_and_resampled(tmp_path):
    path = write_audio(tmp_path / "stereo.wav", seconds=2.0, sample_rate=44100, channels=2)
    signal, info = load_audio(path)
    assert (info.sample_rate, info.channels, info.samples) == (44100, 2, 88200)
    assert len(signal) == 44100  # 2 s at 22050 Hz


def test_no_resampling_when_already_at_rate(tmp_path, monkeypatch):
    import soxr

    def refuse(*args, **kwargs):
        raise AssertionError("resampled a file already at 22050 Hz")

    monkeypatch.setattr(soxr, "resample", refuse)
    signal, _ = load_audio(write_audio(tmp_path / "a.wav", seconds=1.0))
    assert len(signal) == 22050


def test_native_rate_kept_with_none(tmp_path):
    signal, info = load_audio(write_audio(tmp_path / "a.wav", seconds=1.0, sample_rate=16000), sample_rate=None)
    assert len(signal) == 16000 and info.sample_rate == 16000


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"this is a text file, not audio\n" * 20, "not a .wav file"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot decode"),  # truncated header
])
def test_bad_files_give_one_line_reason(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert "\n" not in str(err.value) and str(path) not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_real_gtzan_clip(shared_data):
    signal, info = load_audio(shared_data / "gtzan_sample" / "country" / "country.00000.wav")
    assert (info.sample_rate, info.channels, info.samples) == (22050, 1, 663_300)
    assert len(signal) == 663_300
