"""Audio files → mono float32 signals at the study's sample rate.

Decoding goes through libsndfile (``soundfile``: wav, au, flac, ogg, mp3), with librosa's
``audioread`` fallback for anything else a system decoder can read. Every failure
becomes an :class:`AudioError` whose message is one line, fit for a manifest's ``reason``.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .paths import SAMPLE_RATE


class AudioError(ValueError):
    """A file that cannot be used as audio; ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class AudioInfo:
    """What decoding a file told us about it (before mixing and resampling)."""

    sample_rate: int
    channels: int
    samples: int

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0


def _one_line(exc: BaseException, path: Path) -> str:
    text = str(exc).replace(str(path), "<file>").strip() or type(exc).__name__
    text = re.sub(r"\s+", " ", text)
    return text[:200]


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(frames × channels float32, native rate), trying libsndfile then audioread."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, int(rate)
    except Exception as sf_exc:  # libsndfile reports every kind of bad file as its own error type
        first_reason = _one_line(sf_exc, path)
    try:
        import librosa  # audioread fallback: slow to import, needed only for unusual formats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
        data = np.atleast_2d(y).T
        return np.ascontiguousarray(data), int(rate)
    except Exception:
        raise AudioError(f"cannot decode: {first_reason}") from None


def load_audio(path, *, sample_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode ``path`` to a mono float32 signal.

    Parameters
    ----------
    path : str or Path
        An audio file (wav, au, flac, ogg, mp3, ...).
    sample_rate : int or None
        Rate to return. The signal is resampled (soxr, high quality) only when the file is
        not already at this rate; ``None`` keeps the file's own rate.

    Returns
    -------
    signal : np.ndarray
        1-D float32, channels averaged to mono, finite values.
    info : AudioInfo
        The file's own rate, channel count and length in samples.

    Raises
    ------
    AudioError
        Unreadable, empty or non-audio file (one-line message).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError("file not found")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    data, rate = _decode(path)
    info = AudioInfo(sample_rate=rate, channels=int(data.shape[1]), samples=int(data.shape[0]))
    if info.samples == 0:
        raise AudioError("no audio samples (0 frames)")
    signal = data.mean(axis=1, dtype=np.float32) if info.channels > 1 else data[:, 0]
    if not np.isfinite(signal).all():
        signal = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate is not None and rate != sample_rate:
        import soxr

        signal = soxr.resample(signal, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(signal, dtype=np.float32), info
