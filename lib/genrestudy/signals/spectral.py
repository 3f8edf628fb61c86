"""Segments → handcrafted spectral-shape features (neighbouring study 1: spectral features + KNN).

The six features of the source study, each computed per STFT frame from the magnitude
spectrum and summarised over a segment's frames (or a whole clip's) by its mean and
standard deviation, twelve numbers in all (:data:`FEATURE_NAMES`):

* ``centroid``: the spectrum's mean frequency (``librosa.feature.spectral_centroid``);
* ``spread``: its standard deviation around the centroid (``librosa.feature.spectral_bandwidth``, p = 2);
* ``skewness``: its third standardised moment, ``Σ p (f − μ)³ / σ³``;
* ``kurtosis``: its fourth standardised moment, ``Σ p (f − μ)⁴ / σ⁴`` (Pearson's: 3 for a
  Gaussian-shaped spectrum, as in Peeters' spectral-shape descriptors);
* ``rolloff``: the frequency below which ``roll_percent`` of the magnitude lies
  (``librosa.feature.spectral_rolloff``);
* ``flatness``: geometric over arithmetic mean of the power spectrum (``librosa.feature.spectral_flatness``).

``p`` is the frame's magnitude spectrum normalised to sum 1 over frequency bins ``f``: the
spectrum read as a distribution of frequency, whose first two moments are the centroid and
the spread. A silent frame (all-zero spectrum) has centroid, spread, rolloff, skewness and
kurtosis 0 and flatness 1 (librosa's floor makes silence flat), all finite and without a
warning; so does a frame whose spectrum sits in one bin (spread 0: skewness and kurtosis 0).

Features come from the cached decoded segments of :mod:`genrestudy.signals.signal_set`
(:func:`spectral_features` plugs :func:`spectral_shape` into its ``segment_features`` hook),
never from a second decode of the audio.

>>> params = SpectralParams(n_fft=2048, hop_length=512)
>>> spectral_shape(np.zeros((2, 22050), np.float32), sample_rate=22050, **params.extractor_kwargs()).shape
(2, 12)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

#: the six spectral-shape features of the source study, in the order of the feature vector
SPECTRAL = ("centroid", "spread", "skewness", "kurtosis", "rolloff", "flatness")
#: the summary statistics over frames
STATISTICS = ("mean", "std")
#: the columns of a spectral feature vector
FEATURE_NAMES = tuple(f"{feature}_{statistic}" for feature in SPECTRAL for statistic in STATISTICS)
#: where each spectral feature is summarised, per segment or per whole clip
LEVELS = ("segment", "clip")
#: the cache name of :func:`spectral_shape` (bump when its numbers change)
CACHE_NAME = "spectral-shape-v1"

#: Kaggle GTZAN table columns holding our features (mean, variance); no skewness, kurtosis or flatness
KAGGLE_COLUMNS = {"centroid": ("spectral_centroid_mean", "spectral_centroid_var"),
                  "spread": ("spectral_bandwidth_mean", "spectral_bandwidth_var"),
                  "rolloff": ("rolloff_mean", "rolloff_var")}


@dataclass(frozen=True)
class SpectralParams:
    """How the spectral features are computed (part of their cache key and of a KNN model file).

    Attributes
    ----------
    n_fft, hop_length : int
        STFT window and hop, in samples (the study's: those of the mel images).
    roll_percent : float
        Share of the magnitude below the rolloff frequency.
    level : {"segment", "clip"}
        Summarise each segment's frames (the study's unit), or a whole clip's frames, the
        clip's one vector then repeated on each of its segments' rows.
    """

    n_fft: int = 2048
    hop_length: int = 512
    roll_percent: float = 0.85
    level: str = "segment"

    def __post_init__(self):
        bad = {"n_fft": self.n_fft >= 16, "hop_length": self.hop_length >= 1,
               "roll_percent": 0 < self.roll_percent < 1, "level": self.level in LEVELS}
        wrong = [f"{name}={getattr(self, name)!r}" for name, ok in bad.items() if not ok]
        if wrong:
            raise ValueError(f"invalid spectral parameters {', '.join(wrong)} (n_fft >= 16, hop_length >= 1, "
                             f"0 < roll_percent < 1, level in {LEVELS})")

    def extractor_kwargs(self) -> dict:
        """The keyword arguments of :func:`spectral_shape` (all but ``sample_rate``)."""
        return asdict(self)


def study_params(inputs, *, level: str = "segment", roll_percent: float = 0.85) -> SpectralParams:
    """The spectral parameters of the study's inputs: the mel images' ``n_fft`` and ``hop_length``."""
    return SpectralParams(n_fft=int(inputs.n_fft), hop_length=int(inputs.hop_length), roll_percent=roll_percent,
                          level=level)


# ---------------------------------------------------------------- per-frame features

def magnitude_spectrogram(signal: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """``(..., 1 + n_fft // 2, frames)`` float64 magnitude of the centred STFT (periodic Hann, zero padding)."""
    import librosa

    stft = librosa.stft(np.asarray(signal, dtype=np.float32), n_fft=n_fft, hop_length=hop_length, center=True,
                        pad_mode="constant")
    return np.abs(stft).astype(np.float64)


def frame_features(S: np.ndarray, *, sample_rate: int, n_fft: int, roll_percent: float = 0.85) -> dict[str, np.ndarray]:
    """The six features of every frame of a magnitude spectrogram ``S`` (``(..., bins, frames)``).

    Returns ``{feature: (..., frames)}``, in the order of :data:`SPECTRAL`; vectorised over
    every leading axis and frame (one call per clip).
    """
    import librosa

    freq = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    centroid = librosa.feature.spectral_centroid(S=S, sr=sample_rate, freq=freq)
    spread = librosa.feature.spectral_bandwidth(S=S, sr=sample_rate, freq=freq, centroid=centroid, p=2)
    rolloff = librosa.feature.spectral_rolloff(S=S, sr=sample_rate, freq=freq, roll_percent=roll_percent)
    flatness = librosa.feature.spectral_flatness(S=S)
    total = S.sum(axis=-2, keepdims=True)
    p = S / np.where(total > 0, total, 1.0)                     # silent frames: p = 0 everywhere
    deviation = freq[:, None] - centroid                           # (..., bins, frames)
    squared = deviation * deviation                                # products, not **: pow is ten times slower
    weighted = p * squared
    m3 = (weighted * deviation).sum(axis=-2, keepdims=True)
    m4 = (weighted * squared).sum(axis=-2, keepdims=True)
    # a spread below a millihertz is silence or one bin: the standardised moments are set to 0
    defined = spread > 1e-3
    safe = np.where(defined, spread, 1.0)
    skewness = np.where(defined, m3 / safe ** 3, 0.0)
    kurtosis = np.where(defined, m4 / safe ** 4, 0.0)
    values = {"centroid": centroid, "spread": spread, "skewness": skewness, "kurtosis": kurtosis,
              "rolloff": rolloff, "flatness": flatness}
    return {name: values[name][..., 0, :] for name in SPECTRAL}


def summarise(frames: dict[str, np.ndarray]) -> np.ndarray:
    """``(..., 12)`` mean and standard deviation over frames of each feature (:data:`FEATURE_NAMES` order)."""
    columns = []
    for name in SPECTRAL:
        columns += [frames[name].mean(axis=-1), frames[name].std(axis=-1)]
    return np.stack(columns, axis=-1)


def spectral_shape(segments: np.ndarray, *, sample_rate: int, n_fft: int = 2048, hop_length: int = 512,
                   roll_percent: float = 0.85, level: str = "segment") -> np.ndarray:
    """The spectral features of one clip's ``(k, segment_samples)`` segments, ``(k, 12)`` float64.

    The extractor of :func:`spectral_features` (thread-safe, one STFT call per clip) and of
    a KNN model's predictions on new audio, so training and prediction compute the same numbers.

    Parameters
    ----------
    segments : np.ndarray
        A clip's consecutive segments.
    sample_rate : int
        Their sample rate.
    n_fft, hop_length, roll_percent, level
        As :class:`SpectralParams`; ``level="clip"`` summarises the frames of the whole clip
        (its segments back to back) and repeats that vector on each segment's row.
    """
    segments = np.asarray(segments)
    if segments.ndim != 2 or not len(segments):
        raise ValueError(f"expected a clip's (k, segment_samples) segments, got shape {segments.shape}")
    signal = segments.reshape(-1) if level == "clip" else segments
    S = magnitude_spectrogram(signal, n_fft=n_fft, hop_length=hop_length)
    vectors = summarise(frame_features(S, sample_rate=sample_rate, n_fft=n_fft, roll_percent=roll_percent))
    if level == "clip":
        vectors = np.repeat(vectors[None, :], len(segments), axis=0)
    return vectors


# ---------------------------------------------------------------- the cached feature set

def spectral_features(signal_set, params: SpectralParams = SpectralParams(), *, n_jobs: int = -1, cache_root=None):
    """The spectral features of every segment of ``signal_set``, computed once and cached.

    Goes through :func:`genrestudy.signals.signal_set.segment_features`: no audio is decoded, and the
    cache is keyed by the signal set, :data:`CACHE_NAME`, ``params`` and library versions.

    Returns
    -------
    genrestudy.signals.signal_set.SegmentFeatures
        ``values`` ``(n_segments, 12)`` (:data:`FEATURE_NAMES`), row for row with ``signal_set.segments``.
    """
    from .signal_set import segment_features

    return segment_features(signal_set, spectral_shape, name=CACHE_NAME, params=params, n_jobs=n_jobs,
                            cache_root=cache_root)


def check_aligned(features_segments: pd.DataFrame, image_segments: pd.DataFrame, *,
                  what: str = "the spectral features") -> None:
    """Raise one line unless two per-segment tables describe the same segments in the same order.

    The rows of a split index the image set; features from the signal cache may stand in
    for it only row for row.
    """
    columns = ["track_id", "segment"]
    a = features_segments[columns].astype(str).reset_index(drop=True)
    b = image_segments[columns].astype(str).reset_index(drop=True)
    if len(a) != len(b) or not a.equals(b):
        where = next((i for i in range(min(len(a), len(b))) if not a.iloc[i].equals(b.iloc[i])), min(len(a), len(b)))
        raise ValueError(f"{what} ({len(a)} segments) are not aligned with the image set "
                         f"({len(b)} segments): they first differ at row {where}")


def per_clip(values: np.ndarray, segments: pd.DataFrame, split=None):
    """One row per clip of features computed at ``level="clip"`` (its first segment's row).

    Returns ``(values, segments, split)`` of the clips; ``split`` (per segment), when given,
    must put every segment of a clip on one side (a track-grouped protocol), else one line is raised.
    """
    first = ~segments["track_id"].duplicated().to_numpy()
    if split is not None:
        sides = pd.Series(np.asarray(split)).groupby(segments["track_id"].to_numpy()).nunique()
        if (sides > 1).any():
            raise ValueError(f"{int((sides > 1).sum())} clips have segments on several sides of the split: "
                             "clip-level features need a track-grouped protocol ('track' or 'filtered')")
        split = np.asarray(split)[first]
    return np.asarray(values)[first], segments[first].reset_index(drop=True), split


# ---------------------------------------------------------------- Kaggle tables

def kaggle_spectral(feature_set) -> tuple[np.ndarray, list[str], list[str]]:
    """The spectral-shape columns of a Kaggle-format features table (:func:`genrestudy.data.kaggle_tables.read_kaggle_features`).

    Kaggle's tables carry centroid, bandwidth (our spread) and rolloff as mean and variance;
    the variance is turned into a standard deviation, so the columns mean what ours do.

    Returns
    -------
    (values, columns, missing)
        ``(n_rows, 2 × found)`` float64, their :data:`FEATURE_NAMES`, and which of the six
        features the table lacks.

    Raises
    ------
    ValueError
        The table has none of them (one line).
    """
    columns = list(feature_set.meta.get("feature_columns", []))
    found = [name for name, pair in KAGGLE_COLUMNS.items() if all(c in columns for c in pair)]
    if not found:
        wanted = ", ".join(c for pair in KAGGLE_COLUMNS.values() for c in pair)
        raise ValueError(f"the features table has no spectral-shape column (expected some of {wanted})")
    features = np.asarray(feature_set.features, dtype=np.float64)
    out, names = [], []
    for name in found:
        mean, var = (columns.index(c) for c in KAGGLE_COLUMNS[name])
        out += [features[:, mean], np.sqrt(np.maximum(features[:, var], 0.0))]
        names += [f"{name}_mean", f"{name}_std"]
    return np.stack(out, axis=1), names, [name for name in SPECTRAL if name not in found]


# ---------------------------------------------------------------- what a notebook works on

@dataclass
class SpectralTable:
    """Spectral features with their segments and split, from audio or from a Kaggle table.

    Attributes
    ----------
    values : np.ndarray
        ``(n_rows, n_columns)`` float64, columns :attr:`names`.
    names : list of str
        Feature columns (:data:`FEATURE_NAMES`, or those a Kaggle table has).
    missing : list of str
        Which of the six features the source lacks (none from audio).
    segments : pd.DataFrame
        ``track_id``, ``label``, ... per row.
    split : np.ndarray
        ``train``/``valid``/``test`` per row.
    synthetic : bool
        From the synthetic demo data.
    params : SpectralParams or None
        How the features were computed (None for a Kaggle table).
    source : str
        Where they come from, in words.
    """

    values: np.ndarray
    names: list
    missing: list
    segments: pd.DataFrame
    split: np.ndarray
    synthetic: bool
    params: SpectralParams | None
    source: str

    @property
    def classes(self) -> list[str]:
        return sorted(self.segments["label"].astype(str).unique())

    @property
    def labels(self) -> np.ndarray:
        return pd.Categorical(self.segments["label"].astype(str), categories=self.classes).codes.astype(np.int64)

    @property
    def from_audio(self) -> bool:
        return self.params is not None

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(values, labels, track_ids)`` of the rows of one side of the split."""
        rows = self.split == name
        return self.values[rows], self.labels[rows], self.segments["track_id"].to_numpy()[rows]


def study_table(inputs, *, level: str = "segment", roll_percent: float = 0.85, n_jobs: int = -1) -> SpectralTable:
    """The spectral features of the study's inputs, split by their protocol.

    ``inputs.data`` names a data set (``"auto"``, ``"demo"``, ``"gtzan"`` or any folder with
    one sub-folder per label): the features of its segments, computed from the signal cache
    (``level="clip"``: one row per clip, which needs a track-grouped protocol). A path ending
    in ``.csv``: a Kaggle-format features table, its spectral-shape columns (:func:`kaggle_spectral`),
    rows as the table has them.
    """
    from ..run import study

    if str(inputs.data).lower().endswith(".csv"):
        from ..data.kaggle_tables import read_kaggle_features

        table = read_kaggle_features(inputs.data)
        values, names, missing = kaggle_spectral(table)
        split = study.split(inputs, table.segments).to_numpy()
        return SpectralTable(values, names, missing, table.segments, split, synthetic=False, params=None,
                             source=f"Kaggle-format table {inputs.data} ({len(names)} spectral columns)")
    params = study_params(inputs, level=level, roll_percent=roll_percent)
    features = spectral_features(study.signal_set(inputs, n_jobs=n_jobs), params, n_jobs=n_jobs)
    values, segments = np.asarray(features.values, dtype=np.float64), features.segments
    split = study.split(inputs, segments).to_numpy()
    if level == "clip":
        values, segments, split = per_clip(values, segments, split)
    data = "SYNTHETIC demo data" if features.synthetic else "audio"
    return SpectralTable(values, list(FEATURE_NAMES), [], segments, split, synthetic=features.synthetic,
                         params=params, source=f"{data}, {level}-level spectral features ({features.key})")
