"""Per-segment feature sequences of neighbouring study 2: MFCC, spectral contrast, centroid, chroma.

Each 3 s segment becomes a ``(frames, 40)`` float32 array — 20 MFCC, 7 spectral-contrast
bands, the spectral centroid and 12 chroma bins per STFT frame — the input of the study's
LSTMs (Net5, Net6); its mean and standard deviation over frames (80 values) are the MLP's
(Net1) summary vector.

The source states ``n_fft = 1024`` and a hop of "4084", which is no power of two: a typo
for 4096 (two digits off) or 512. Read as 4096, as here, it gives 17 frames per 3 s
segment: the short sequences the source's LSTMs must have run on, and an LSTM and a CGAN
output eight times smaller than with 512 (130 frames), which the demo's two CPU cores need.
The price: a 1024-sample window every 4096 samples leaves three quarters of each segment
unseen. ``SequenceParams(hop_length=512)`` covers every sample with half-overlapping
windows (the hop of the study's mel images); the hop is part of every cache key and model file.

Features come from the cached decoded segments (:func:`genrestudy.signals.signal_set.segment_features`),
never from a second decode of the audio; the filter banks are built once per process.

>>> segment_sequences(np.zeros((2, 22050), np.float32), sample_rate=22050).shape
(2, 6, 40)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

#: the feature groups of a frame, and how many values each has
GROUPS = (("mfcc", 20), ("contrast", 7), ("centroid", 1), ("chroma", 12))
#: the names of a frame's 40 values
FEATURE_NAMES = tuple(f"{group}_{i}" if size > 1 else group for group, size in GROUPS for i in range(size))
#: the cache name of :func:`segment_sequences` (bump when its numbers change)
CACHE_NAME = "feature-sequences-v1"


@dataclass(frozen=True)
class SequenceParams:
    """How a segment's feature sequence is computed (part of its cache key and of a model file).

    Attributes
    ----------
    n_fft : int
        STFT window (the source's 1024).
    hop_length : int
        STFT hop (4096: the source's "4084" read as a typo, see the module's note).
    n_mels : int
        Mel bands the MFCC are taken from.
    """

    n_fft: int = 1024
    hop_length: int = 4096
    n_mels: int = 128

    def __post_init__(self):
        wrong = [f"{name}={getattr(self, name)!r}" for name, ok in
                 (("n_fft", self.n_fft >= 64), ("hop_length", self.hop_length >= 1), ("n_mels", self.n_mels >= 20))
                 if not ok]
        if wrong:
            raise ValueError(f"invalid sequence parameters {', '.join(wrong)} (n_fft >= 64, hop_length >= 1, n_mels >= 20)")

    def frames(self, segment_samples: int) -> int:
        """Frames of one segment (centred STFT)."""
        return 1 + int(segment_samples) // self.hop_length

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=8)
def _filter_banks(sample_rate: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import librosa

    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    chroma = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft)
    freq = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    return mel, chroma, freq


def segment_sequences(segments: np.ndarray, *, sample_rate: int, n_fft: int = 1024, hop_length: int = 4096,
                      n_mels: int = 128) -> np.ndarray:
    """``(k, frames, 40)`` float32 feature sequences of a clip's ``(k, samples)`` segments.

    The extractor of :func:`sequence_features` (thread-safe, one STFT per call), of
    generated waveforms (:mod:`genrestudy.networks.cgan`) and of a small network's predictions on new audio.
    """
    import librosa
    import scipy.fft

    segments = np.asarray(segments, dtype=np.float32)
    if segments.ndim != 2 or not len(segments):
        raise ValueError(f"expected (k, segment_samples) segments, got shape {segments.shape}")
    S = np.abs(librosa.stft(segments, n_fft=n_fft, hop_length=hop_length, center=True, pad_mode="constant"))
    power = S * S
    mel_basis, chroma_basis, freq = _filter_banks(int(sample_rate), int(n_fft), int(n_mels))
    mel_db = librosa.power_to_db(np.einsum("mf,kft->kmt", mel_basis, power), ref=1.0, top_db=80.0)
    mfcc = scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[:, :20]
    contrast = librosa.feature.spectral_contrast(S=S, sr=sample_rate, n_fft=n_fft, freq=freq)
    centroid = librosa.feature.spectral_centroid(S=S, sr=sample_rate, freq=freq) / (sample_rate / 2)
    chroma = np.einsum("cf,kft->kct", chroma_basis, power)
    chroma = chroma / np.maximum(chroma.max(axis=-2, keepdims=True), np.finfo(np.float32).tiny)
    out = np.concatenate([mfcc, contrast, centroid, chroma], axis=-2)     # (k, 40, frames)
    return np.ascontiguousarray(np.swapaxes(out, -1, -2), dtype=np.float32)


def summary_vectors(sequences: np.ndarray) -> np.ndarray:
    """``(n, 80)`` mean and standard deviation over frames of every feature: the MLP's input."""
    sequences = np.asarray(sequences, dtype=np.float32)
    if sequences.ndim != 3:
        raise ValueError(f"expected (n, frames, features) sequences, got shape {sequences.shape}")
    return np.concatenate([sequences.mean(axis=1), sequences.std(axis=1)], axis=1)


def sequence_features(signal_set, params: SequenceParams = SequenceParams(), *, n_jobs: int = -1, cache_root=None):
    """The feature sequences of every segment of ``signal_set``, computed once and cached.

    Returns
    -------
    genrestudy.signals.signal_set.SegmentFeatures
        ``values`` ``(n_segments, frames, 40)``, row for row with ``signal_set.segments``.
    """
    from .signal_set import segment_features

    return segment_features(signal_set, segment_sequences, name=CACHE_NAME, params=params, n_jobs=n_jobs,
                            cache_root=cache_root)


def study_sequences(inputs, image_set, params: SequenceParams = SequenceParams()):
    """The feature sequences of the study's segments, checked row for row against ``image_set``."""
    from .spectral import check_aligned
    from ..run.study import signal_set

    found = sequence_features(signal_set(inputs), params)
    check_aligned(found.segments, image_set.segments)
    return found
