"""Clips → decoded, segmented signals, cached once for every per-segment feature set.

Every feature set of the study (mel images, handcrafted spectral features, MFCC and
chroma sequences, ...) is computed from the same segments of the same decoded audio.
Decoding and resampling are the slow part of reading a clip, so they happen once, here:
:func:`build_signal_set` decodes every usable clip, cuts it into segments and keeps them
in one memory-mapped float32 array; :func:`segment_features` maps an extractor over that
array (threads, no decoding) and caches its per-segment output.

Disk: the signal cache holds every sample it segments, ``n_clips × n_segments ×
segment_seconds × sample_rate × 4`` bytes: about 2.6 GB for GTZAN (1000 clips × 30 s at
22050 Hz) and 265 MB for the demo set (100 clips). Being written in place (not gathered
from part files), a build never needs more than that. ``python -m genrestudy.cache clean``
frees it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import cache
from ..cache_check import EntryMismatch, expect_array
from ..data.audio import AudioError, load_audio
from ..data.dataset import read_manifest
from ..paths import SAMPLE_RATE
from .segments import (SEGMENT_COLUMNS, ClipTooShortError, LabelledSegments, open_segment_entry, segment_clip, segment_table)

log = logging.getLogger(__name__)

_CACHE_KIND = "signals"
_FEATURES_KIND = "segment-features"
_FORMAT_VERSION = 1


def segment_checks(sample_rate, n_segments, segment_seconds, pad_seconds) -> dict[str, bool]:
    """Which segmentation settings are valid (shared by every parameter class that segments)."""
    return {"sample_rate": sample_rate > 0, "n_segments": n_segments >= 1, "segment_seconds": segment_seconds > 0,
            "pad_seconds": 0 <= pad_seconds < segment_seconds}


def raise_invalid(params, checks: dict[str, bool], what: str) -> None:
    """One-line ``ValueError`` naming every field of ``params`` whose check failed."""
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"invalid {what} parameters {', '.join(f'{k}={getattr(params, k)!r}' for k in bad)}")


@dataclass(frozen=True)
class SegmentParams:
    """How a clip becomes segments (part of every per-segment cache key).

    The paper's 10 consecutive 3 s segments at 22050 Hz; a clip short of its last segment
    by at most ``pad_seconds`` is zero-padded (:func:`genrestudy.signals.segments.segment_count`).
    """

    sample_rate: int = SAMPLE_RATE
    n_segments: int = 10
    segment_seconds: float = 3.0
    pad_seconds: float = 0.5

    def __post_init__(self):
        raise_invalid(self, segment_checks(self.sample_rate, self.n_segments, self.segment_seconds,
                                           self.pad_seconds), "segment")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))


@dataclass
class SignalSet(LabelledSegments):
    """The decoded segments of a data set, one row of :attr:`signals` per decoded clip.

    Attributes
    ----------
    root : Path
        The cache entry folder (``signals.npy``, ``segments.csv``, ``clips.csv``, ``meta.json``).
    signals : np.ndarray
        ``(n_rows, n_segments, segment_samples)`` float32, memory-mapped read-only. Row
        ``r`` holds a clip's segments back to back; a clip with fewer segments ends in zeros
        and the row of a clip that could not be used is all zeros (no segment points to it).
    segments : pd.DataFrame
        ``segment_id``, ``track_id``, ``label``, ``segment`` (position in its clip), ``path``
        and ``signal_row``.
    clips : pd.DataFrame
        The manifest with each clip's outcome (``status``, ``reason``, ``segments``,
        ``signal_row``: its row in :attr:`signals`, -1 if it was never decoded).
    meta : dict
        Parameters, key and library versions that determined the signals.
    """

    root: Path
    signals: np.ndarray
    segments: pd.DataFrame
    clips: pd.DataFrame
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.root.name

    @property
    def params(self) -> SegmentParams:
        return SegmentParams(**self.meta["params"])

    def clip_segments(self, row: int, count: int | None = None) -> np.ndarray:
        """The ``(count, segment_samples)`` segments of signal row ``row`` (a view, no copy).

        ``count`` defaults to the clip's number of segments; the view's rows are
        contiguous, so ``.reshape(-1)`` is the clip's signal, also without a copy.
        """
        if count is None:
            count = int(self.clips.loc[self.clips["signal_row"] == row, "segments"].iloc[0])
        return self.signals[row, :count]

    def segment(self, segment_id: int) -> np.ndarray:
        """The samples of one segment (a view)."""
        row = self.segments.iloc[segment_id]
        return self.signals[int(row["signal_row"]), int(row["segment"])]

    def usable_rows(self) -> list[tuple[int, int]]:
        """``(signal_row, n_segments)`` of every usable clip, in :attr:`segments` order."""
        used = self.clips[self.clips["status"] == "usable"].sort_values("signal_row")
        return list(zip(used["signal_row"].astype(int), used["segments"].astype(int)))


def open_signal_set(root: Path, params: SegmentParams | None = None) -> SignalSet:
    """Open a complete signal cache entry (memory-mapped), checked; ``params``: what the caller expects
    (default: the entry's own parameters)."""
    root, meta, signals, segments = open_segment_entry(root, "signals.npy", what="signal",
                                                       builder="build_signal_set")
    if params is not None and meta.get("params") != asdict(params):
        raise EntryMismatch(f"{root.name}/{cache.META_FILE} records other segment parameters than those asked for")
    params = params or SegmentParams(**meta["params"])
    expect_array(signals, what=f"{root.name}/signals.npy", shape=(None, params.n_segments, params.segment_samples),
                 dtype=np.float32)
    clips = read_manifest(root / "clips.csv")
    if len(segments) != int(clips["segments"].sum()) or signals.shape[0] != int((clips["signal_row"] >= 0).sum()):
        raise cache.CacheError(f"{root}: segments.csv, clips.csv and signals.npy disagree; delete it to rebuild")
    return SignalSet(root=root, signals=signals, segments=segments, clips=clips, meta=meta)


def signal_cache_key(manifest: pd.DataFrame, params: SegmentParams) -> str:
    """Key of the signal cache: the usable clips (path, size, mtime), the segmentation, decoder versions."""
    clips = manifest[manifest["status"] == "usable"]
    return cache.cache_key(f"signals-v{_FORMAT_VERSION}",
                           clips[["track_id", "label", "path", "bytes", "mtime_ns"]].values.tolist(),
                           asdict(params), cache.library_versions("soxr", "soundfile", "librosa"))


# ---------------------------------------------------------------- the signal cache

def _decode_segments(path: str, params: SegmentParams) -> tuple[np.ndarray | None, dict]:
    """Worker: one clip → its signal row (segments, zero-padded to ``n_segments``) and outcome."""
    try:
        signal, _ = load_audio(path, sample_rate=params.sample_rate)
        segments = segment_clip(signal, **asdict(params))
    except (AudioError, ClipTooShortError) as exc:
        return None, {"status": "excluded", "reason": str(exc), "segments": 0}
    row = np.zeros((params.n_segments, params.segment_samples), dtype=np.float32)
    row[:len(segments)] = segments
    return row, {"status": "usable", "reason": "", "segments": len(segments)}


def _record_outcomes(clips: pd.DataFrame, todo: pd.Index, outcomes: list[dict]) -> pd.DataFrame:
    """``clips`` with each decoded clip's status, reason, segment count and signal row."""
    clips = clips.copy()
    clips["segments"], clips["signal_row"] = 0, -1
    for row, (i, outcome) in enumerate(zip(todo, outcomes)):
        clips.loc[i, ["status", "reason", "segments", "signal_row"]] = [
            outcome["status"], outcome["reason"], outcome["segments"], row]
        if outcome["status"] != "usable":
            log.warning("excluded %s: %s", clips.at[i, "path"], outcome["reason"])
    if not (clips.loc[todo, "status"] == "usable").any():
        raise ValueError("no clip could be decoded: " + "; ".join(clips.loc[todo, "reason"].unique()))
    return clips


def _build_signals(manifest: pd.DataFrame, params: SegmentParams, entry: Path, *, synthetic: bool,
                   n_jobs: int) -> dict:
    from tqdm import tqdm

    started = time.perf_counter()
    todo = manifest.index[manifest["status"] == "usable"]
    tasks = [(row, partial(_decode_segments, manifest.at[i, "path"], params)) for row, i in enumerate(todo)]
    outcomes = cache.fill_rows(entry, "signals.npy", (len(todo), params.n_segments, params.segment_samples),
                               np.float32, tasks, n_jobs=n_jobs, desc="decoding clips")
    clips = _record_outcomes(manifest, todo, outcomes)
    segments = segment_table(clips)
    with cache.write_guard(entry):
        cache.write_csv(entry / "segments.csv", segments)
        cache.write_csv(entry / "clips.csv", clips)
    n_used = int((clips["status"] == "usable").sum())
    tqdm.write(f"signals: {len(segments)} segments from {n_used} clips ({len(todo) - n_used} excluded) in "
               f"{time.perf_counter() - started:.1f} s, {(entry / 'signals.npy').stat().st_size / 1e6:.0f} MB → {entry}")
    return {"params": asdict(params), "synthetic": synthetic, "n_segments": len(segments), "n_clips": n_used,
            "versions": cache.library_versions("soxr", "soundfile", "librosa", "numpy")}


def build_signal_set(manifest: pd.DataFrame, params: SegmentParams = SegmentParams(), *, synthetic: bool = False,
                     n_jobs: int = -1, cache_root=None) -> SignalSet:
    """Decode (or reuse) the segments of every usable clip of ``manifest``, once for all feature sets.

    Clips are decoded in parallel threads straight into one memory-mapped array; a run
    killed half-way resumes with the clips it had not decoded. A clip that cannot be
    decoded or is shorter than one segment is excluded, its reason kept in
    :attr:`SignalSet.clips`. The same manifest and parameters return the cached set at once.

    Parameters
    ----------
    manifest : pd.DataFrame
        From :func:`genrestudy.data.dataset.scan_dataset`.
    params : SegmentParams
        Sample rate and segmentation.
    synthetic : bool
        The data are the synthetic demo set (recorded in ``meta``).
    n_jobs : int
        Worker threads (joblib convention: -1 = all cores).
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).

    Raises
    ------
    genrestudy.cache.CacheError
        The cache folder cannot be written, or the disk fills up (one line naming the folder).
    ValueError
        No usable clip in ``manifest``, or none could be decoded.

    Examples
    --------
    >>> signal_set = build_signal_set(scan_dataset(root), SegmentParams(n_segments=10))  # doctest: +SKIP
    >>> signal_set.clip_segments(0).shape                                               # doctest: +SKIP
    (10, 66150)
    """
    if not (manifest["status"] == "usable").any():
        raise ValueError("no usable clip in the manifest: nothing to decode")
    build = partial(_build_signals, manifest, params, synthetic=synthetic, n_jobs=n_jobs)
    return cache.open_or_build(_CACHE_KIND, signal_cache_key(manifest, params),
                               open_entry=partial(open_signal_set, params=params), build=build, root=cache_root)


# ---------------------------------------------------------------- per-segment arrays from the signals

def _checked_block(compute: Callable, segments: np.ndarray, row_shape: tuple, dtype, desc: str) -> np.ndarray:
    block = np.asarray(compute(segments))
    if block.shape != (len(segments), *row_shape):
        raise ValueError(f"{desc}: expected an output of shape {(len(segments), *row_shape)} for "
                         f"{len(segments)} segments, got {block.shape}")
    return block.astype(dtype, copy=False)


def write_segment_array(entry: Path, signal_set: SignalSet, compute: Callable[[np.ndarray], np.ndarray],
                        name: str, row_shape: tuple, dtype, *, n_jobs: int, desc: str) -> int:
    """Write ``compute(segments of a clip)`` of every usable clip into ``entry/name``; resumable.

    ``compute`` gets a clip's ``(k, segment_samples)`` float32 view of the memory map and
    returns ``(k, *row_shape)`` values; the output has one row per row of
    ``signal_set.segments``. ``segments.csv`` and ``clips.csv`` are written beside it.
    Returns the number of rows.
    """
    rows = signal_set.usable_rows()
    offsets = np.concatenate([[0], np.cumsum([k for _, k in rows])])

    def task(row: int, k: int) -> tuple[np.ndarray, dict]:
        return _checked_block(compute, signal_set.clip_segments(row, k), row_shape, dtype, desc), {"segments": k}

    tasks = [(slice(offsets[n], offsets[n + 1]), partial(task, row, k)) for n, (row, k) in enumerate(rows)]
    cache.fill_rows(entry, name, (int(offsets[-1]), *row_shape), dtype, tasks, n_jobs=n_jobs, desc=desc)
    with cache.write_guard(entry):
        cache.write_csv(entry / "segments.csv", signal_set.segments[SEGMENT_COLUMNS])
        cache.write_csv(entry / "clips.csv", signal_set.clips.drop(columns="signal_row"))
    return int(offsets[-1])


@dataclass
class SegmentFeatures(LabelledSegments):
    """A cached per-segment feature set computed from a :class:`SignalSet`.

    Attributes
    ----------
    root : Path
        The cache entry folder (``values.npy``, ``segments.csv``, ``clips.csv``, ``meta.json``).
    values : np.ndarray
        ``(n_segments, ...)``, memory-mapped read-only, row ``i`` for row ``i`` of :attr:`segments`.
    segments : pd.DataFrame
        ``segment_id``, ``track_id``, ``label``, ``segment``, ``path``.
    meta : dict
        ``name``, ``params``, ``signal_cache`` (the signal set's key), ``synthetic``, versions.
    """

    root: Path
    values: np.ndarray
    segments: pd.DataFrame
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.root.name


def open_segment_features(root: Path) -> SegmentFeatures:
    """Open a complete per-segment feature cache entry (memory-mapped)."""
    root, meta, values, segments = open_segment_entry(root, "values.npy", what="per-segment feature",
                                                      builder="segment_features")
    if len(segments) != values.shape[0]:
        raise cache.CacheError(f"{root}: {len(segments)} segment rows but {values.shape[0]} values; delete it to rebuild")
    if "shape" in meta and "dtype" in meta:
        expect_array(values, what=f"{root.name}/values.npy", shape=(None, *meta["shape"]), dtype=meta["dtype"])
    return SegmentFeatures(root=root, values=values, segments=segments, meta=meta)


SegmentFeatures._reopen = staticmethod(open_segment_features)


def _build_features(signal_set: SignalSet, compute: Callable, name: str, params: dict, entry: Path, *,
                    n_jobs: int) -> dict:
    first_row, _ = signal_set.usable_rows()[0]
    # one segment through the extractor tells the shape and dtype of its output
    probe = np.asarray(compute(signal_set.clip_segments(first_row, 1)))
    n_rows = write_segment_array(entry, signal_set, compute, "values.npy", probe.shape[1:], probe.dtype,
                                 n_jobs=n_jobs, desc=name)
    return {"name": name, "params": params, "signal_cache": signal_set.key, "synthetic": signal_set.synthetic,
            "n_segments": n_rows, "shape": list(probe.shape[1:]), "dtype": str(probe.dtype)}


def segment_features(signal_set: SignalSet, extractor: Callable[..., np.ndarray], *, name: str, params=None,
                     n_jobs: int = -1, libraries: tuple[str, ...] = ("numpy", "scipy", "librosa"),
                     cache_root=None) -> SegmentFeatures:
    """Map ``extractor`` over the cached segments of every clip and cache its output.

    The hook every per-segment feature set plugs into: no audio is decoded, clips run in
    parallel threads over the memory map, and the output is cached under the signal set's
    key, ``name``, ``params`` and the versions of ``libraries``.

    Parameters
    ----------
    signal_set : SignalSet
        From :func:`build_signal_set`.
    extractor : callable
        ``extractor(segments, sample_rate=..., **params)``: ``segments`` is one clip's
        ``(k, segment_samples)`` float32 (read-only); returns ``(k, ...)`` values, the same
        trailing shape for every clip. It must be thread-safe.
    name : str
        Names the feature set in the cache key and progress bar; change it (``"shape-v2"``)
        when the extractor's code changes its numbers.
    params : dict or dataclass, optional
        Keyword arguments of ``extractor`` (part of the key).
    n_jobs : int
        Worker threads (joblib convention).
    libraries : tuple of str
        Libraries whose versions shape the numbers (part of the key).
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).

    Examples
    --------
    >>> def rms(segments, sample_rate):
    ...     return np.sqrt((segments ** 2).mean(axis=1, keepdims=True))
    >>> loudness = segment_features(signal_set, rms, name="rms-v1")   # doctest: +SKIP
    >>> loudness.values.shape                                        # doctest: +SKIP
    (1000, 1)
    """
    params = asdict(params) if is_dataclass(params) else dict(params or {})
    compute = partial(extractor, sample_rate=signal_set.params.sample_rate, **params)
    key = cache.cache_key(f"segment-features-v{_FORMAT_VERSION}", signal_set.key, name, params,
                          cache.library_versions(*libraries))
    build = partial(_build_features, signal_set, compute, name, params, n_jobs=n_jobs)
    return cache.open_or_build(_FEATURES_KIND, key, open_entry=open_segment_features, build=build, root=cache_root)
