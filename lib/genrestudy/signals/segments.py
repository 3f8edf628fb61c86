"""Clips → fixed-length segments (the paper: 10 windows of 3 s per 30 s clip)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .. import cache
from ..data import audio

if TYPE_CHECKING:
    import pandas as pd


class ClipTooShortError(ValueError):
    """A clip shorter than one segment (or, for a tagger, one patch)."""

    @classmethod
    def of(cls, n_samples: int, minimum_samples: int, sample_rate: int, unit: str) -> "ClipTooShortError":
        """The study's one message for a clip too short to use, as :func:`too_short_message` words it."""
        return cls(too_short_message(n_samples, minimum_samples, sample_rate, unit))


def _seconds(n: int, rate: int, digits: int) -> str:
    return f"{n / rate:.{digits}f}".rstrip("0").rstrip(".")


def too_short_message(n_samples: int, minimum_samples: int, sample_rate: int, unit: str) -> str:
    """``clip of 2.99995 s is shorter than the minimum of 3 s (one 3 s segment; 66149 of 66150 samples at 22050 Hz)``.

    Both lengths are shown with as many decimals as it takes for them to differ (a clip one
    sample short is not "3.00 s shorter than 3 s"), and in samples. ``unit`` names what the
    minimum is (``"3 s segment"``, ``"187-frame patch"``).

    >>> too_short_message(66149, 66150, 22050, "3 s segment")
    'clip of 2.99995 s is shorter than the minimum of 3 s (one 3 s segment; 66149 of 66150 samples at 22050 Hz)'
    """
    digits = 2
    while digits < 9 and _seconds(n_samples, sample_rate, digits) == _seconds(minimum_samples, sample_rate, digits):
        digits += 1
    return (f"clip of {_seconds(n_samples, sample_rate, digits)} s is shorter than the minimum of "
            f"{_seconds(minimum_samples, sample_rate, digits)} s (one {unit}; {n_samples} of {minimum_samples} "
            f"samples at {sample_rate} Hz)")


def minimum_samples(*, n_segments: int, segment_samples: int, pad_samples: int) -> int:
    """The fewest samples that give one segment under :func:`segment_count`'s rule."""
    return max(1, min(segment_samples, n_segments * segment_samples - pad_samples))


def segment_count(n_samples: int, *, n_segments: int, segment_samples: int, pad_samples: int) -> int:
    """How many segments a clip of ``n_samples`` yields.

    GTZAN's "30 s" clips run from 29.93 s to 30.65 s; a clip short of ``n_segments`` full
    segments by at most ``pad_samples`` still yields all of them (its tail zero-padded),
    so the shortest GTZAN clips are not cut to 9 segments. Shorter clips yield as many
    whole segments as they hold.
    """
    if n_samples >= n_segments * segment_samples - pad_samples:
        return n_segments
    return min(n_segments, n_samples // segment_samples)


def segment_clip(signal: np.ndarray, *, sample_rate: int, n_segments: int = 10,
                 segment_seconds: float = 3.0, pad_seconds: float = 0.5) -> np.ndarray:
    """Cut ``signal`` into ``(k, segment_samples)`` consecutive segments from its start.

    Raises
    ------
    ClipTooShortError
        The clip is shorter than one segment.
    """
    seg = int(round(segment_seconds * sample_rate))
    k = segment_count(len(signal), n_segments=n_segments, segment_samples=seg,
                      pad_samples=int(round(pad_seconds * sample_rate)))
    if k == 0:
        pad = int(round(pad_seconds * sample_rate))
        least = minimum_samples(n_segments=n_segments, segment_samples=seg, pad_samples=pad)
        raise ClipTooShortError.of(len(signal), least, sample_rate, f"{segment_seconds:g} s segment")
    needed = k * seg
    if len(signal) < needed:
        signal = np.pad(signal, (0, needed - len(signal)))
    return signal[:needed].reshape(k, seg)


class LabelledSegments:
    """What every per-segment table of the study offers (images, features): rows described by
    a ``segments`` DataFrame with a ``label`` column, and a ``meta`` dict."""

    segments: pd.DataFrame
    meta: dict
    #: ``open_*(root)`` of the subclass's complete cache entry (set beside each opener)
    _reopen = None

    def __len__(self) -> int:
        return len(self.segments)

    def __reduce_ex__(self, protocol):
        # a set held in a complete cache entry travels by its path, so that a task in another
        # process (a Dask worker on a shared file system) maps the array there instead of
        # receiving a copy of it; one built in memory travels whole
        root = getattr(self, "root", None)
        if type(self)._reopen is not None and isinstance(root, Path) and cache.is_complete(root):
            return type(self)._reopen, (root,)
        return super().__reduce_ex__(protocol)

    @property
    def classes(self) -> list[str]:
        """Genre names in sorted order (the label order every model uses)."""
        return sorted(self.segments["label"].unique())

    @property
    def labels(self) -> np.ndarray:
        """Integer label of each row, indexing :attr:`classes`."""
        import pandas as pd

        return pd.Categorical(self.segments["label"], categories=self.classes).codes.astype(np.int64)

    @property
    def synthetic(self) -> bool:
        """Whether the rows come from the synthetic demo data set."""
        return bool(self.meta.get("synthetic", False))


#: the columns of every per-segment table written to a cache (``segments.csv``)
SEGMENT_COLUMNS = ["segment_id", "track_id", "label", "segment", "path"]


def read_segments(path) -> pd.DataFrame:
    """Read a ``segments.csv`` written by a cache builder.

    Text columns stay text: a genre folder named ``NA`` or ``None`` is a label, not a
    missing value (``keep_default_na=False``); the integer columns have no missing values.
    """
    import pandas as pd

    return pd.read_csv(path, dtype={"track_id": str, "label": str, "path": str}, keep_default_na=False,
                       encoding_errors="surrogateescape")


def open_segment_entry(root, array_file: str, *, what: str, builder: str):
    """``(root, meta, array, segments)`` of a complete per-segment cache entry (image, signal or
    feature cache): its metadata, its array memory-mapped read-only, its ``segments.csv``.

    Every file is first checked against the size, checksum, shape and dtype recorded when
    the entry was written (:func:`genrestudy.cache.check_entry`).

    Raises
    ------
    genrestudy.cache.CacheError
        The entry is not complete (one line naming ``builder``, the function that makes it).
    genrestudy.cache_check.EntryMismatch
        A file differs from what was written (a ``ValueError``; the cache rebuilds the entry).
    """
    root = Path(root)
    if not cache.is_complete(root):
        raise cache.CacheError(f"{root} is not a complete {what} cache (no {cache.META_FILE}); run {builder}")
    meta = cache.check_entry(root)
    return root, meta, np.load(root / array_file, mmap_mode="r"), read_segments(root / "segments.csv")


def segment_table(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per segment of the usable clips of ``clips``, in signal-row order.

    ``clips`` has ``status``, ``segments`` and ``signal_row`` columns; the table has
    :data:`SEGMENT_COLUMNS` and ``signal_row``.
    """
    import pandas as pd

    used = clips[clips["status"] == "usable"].sort_values("signal_row")
    counts = used["segments"].astype(int).to_numpy()
    return pd.DataFrame({
        "segment_id": np.arange(counts.sum()),
        **{column: np.repeat(used[column].to_numpy(), counts) for column in ("track_id", "label")},
        "segment": np.concatenate([np.arange(n) for n in counts]),
        "path": np.repeat(used["path"].to_numpy(), counts),
        "signal_row": np.repeat(used["signal_row"].to_numpy(), counts),
    })


# ---------------------------------------------------------------- a file of any length, clip by clip

def clip_chunks(signal: np.ndarray, params) -> Iterator[np.ndarray]:
    """A signal cut into clips of ``n_segments × segment_seconds``, as training clips were.

    A tail after the last whole clip is yielded when it holds at least one whole segment.

    Raises
    ------
    ClipTooShortError
        The whole signal is shorter than one segment.
    """
    clip = params.n_segments * params.segment_samples
    pad = int(round(params.pad_seconds * params.sample_rate))
    for start in range(0, max(len(signal), 1), clip):
        chunk = signal[start:start + clip]
        if segment_count(len(chunk), n_segments=params.n_segments, segment_samples=params.segment_samples,
                         pad_samples=pad):
            yield chunk
        elif start == 0:
            least = minimum_samples(n_segments=params.n_segments, segment_samples=params.segment_samples,
                                    pad_samples=pad)
            raise ClipTooShortError.of(len(signal), least, params.sample_rate, f"{params.segment_seconds:g} s segment")


def stream_clips(path, params) -> Iterator[np.ndarray]:
    """The clips :func:`clip_chunks` cuts from a file's signal, decoded block by block
    (:func:`genrestudy.data.audio.open_audio`): memory holds a block and a clip, whatever the file's length.

    Raises
    ------
    genrestudy.data.audio.AudioError
        The file cannot be decoded.
    ClipTooShortError
        The whole file is shorter than one segment.
    """
    clip = params.n_segments * params.segment_samples
    pending, held, yielded = [], 0, False
    for block in audio.open_audio(path, sample_rate=params.sample_rate):
        pending.append(block)
        held += len(block)
        if held < clip:
            continue
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        whole = len(joined) // clip
        for k in range(whole):
            yield joined[k * clip:(k + 1) * clip]
        yielded = True
        pending = [joined[whole * clip:].copy()]  # a copy: the joined block is freed
        held = len(pending[0])
    tail = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    if not yielded:
        yield from clip_chunks(tail, params)  # the whole file is this tail: it says when it is too short
    elif _segments_in(len(tail), params):  # a tail after whole clips counts when it holds a segment
        yield tail


#: Largest peak of a segment called digitally silent: one step of 16-bit audio (-90 dBFS). A mel
#: image is scaled to its segment's loudest bin, so silence (or dither) would still be "classified".
SILENT_PEAK = 2.0 ** -15


def _segments_in(n_samples: int, params) -> int:
    return segment_count(n_samples, n_segments=params.n_segments, segment_samples=params.segment_samples,
                         pad_samples=int(round(params.pad_seconds * params.sample_rate)))


def segments_peak(chunk: np.ndarray, params) -> float:
    """Largest |sample| of the whole segments of one clip (the samples its images are made of)."""
    k = _segments_in(len(chunk), params)
    used = chunk[:k * params.segment_samples]
    return float(np.abs(used).max()) if len(used) else 0.0
