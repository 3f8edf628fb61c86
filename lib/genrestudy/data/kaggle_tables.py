"""External feature tables in the Kaggle GTZAN format, read as a :class:`~genrestudy.extractors.features.FeatureSet`.

The Kaggle GTZAN companion tables ``features_30_sec.csv`` (one row per track) and
``features_3_sec.csv`` (one row per 3 s segment) have the columns
``filename,length,<numeric feature columns>,label``. The track is named by the file name:
``blues.00000.wav`` → ``blues.00000`` (segment 0), ``blues.00000.3.wav`` → ``blues.00000``
(segment 3). ``length`` (the clip's number of samples) describes the file, not its sound, so
it is kept in ``segments`` and left out of the features.

A table saved with pandas' default index has an extra ``Unnamed: 0`` column holding the row
number; the Kaggle tables are sorted by genre, so that column would give the label away. Such
index columns (``Unnamed: N``, or integers counting the rows) are dropped, with a logged note.
Labels are text as written, stripped of surrounding spaces (with a warning naming them): a genre
called ``NA`` or ``null`` is a genre, not a missing value, and ``"rock "`` is rock. A table mixing whole-track rows and segment rows, or giving one track two labels, is refused:
the two kinds of rows describe different spans of sound (and segment 0 of one would collide
with the other), and which of two labels is right cannot be guessed.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.parsers.readers import STR_NA_VALUES

from .. import cache
from ..extractors.features import FeatureSet

log = logging.getLogger(__name__)
REQUIRED_COLUMNS = ("filename", "label")
#: columns that describe the file rather than its content
NON_FEATURE_COLUMNS = ("filename", "length", "label")
_FILENAME = re.compile(r"^(?P<track>[^/\\]+?\.\d+)(?:\.(?P<segment>\d+))?\.(?:wav|au|mp3|flac|ogg)$", re.IGNORECASE)


def parse_filename(filename: str) -> tuple[str, int]:
    """``"blues.00000.3.wav"`` → ``("blues.00000", 3)``; ``"blues.00000.wav"`` → ``("blues.00000", 0)``."""
    match = _FILENAME.match(str(filename).strip())
    if match is None:
        raise ValueError(f"file name {filename!r} is not in the Kaggle GTZAN form <genre>.<number>[.<segment>].wav")
    return match["track"], int(match["segment"] or 0)


def read_kaggle_features(path) -> FeatureSet:
    """Read a Kaggle-format GTZAN features CSV into a :class:`FeatureSet` (``root=None``).

    Parameters
    ----------
    path : str or Path
        ``features_30_sec.csv``, ``features_3_sec.csv`` or any table with ``filename``,
        ``label`` and numeric feature columns.

    Returns
    -------
    FeatureSet
        ``features`` float32 ``(n_rows, n_feature_columns)``; ``segments`` with ``segment_id``
        (row number), ``track_id``, ``label``, ``segment``, ``path`` (the file name) and
        ``length`` when present; ``meta`` with the source path, its SHA-256, the feature
        column names and ``synthetic=False``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Missing ``filename``/``label`` columns, no or non-numeric feature columns, missing
        values, malformed file names, or one file name on two rows.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"features table {path} not found (expected a Kaggle GTZAN features CSV)")
    table = _drop_index_columns(_read_table(path), path.name)
    if "label" in table.columns:
        table = _strip_labels(table, path.name)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path.name}: missing column(s) {missing}; expected filename,length,<features>,label, "
                         f"got {list(table.columns)[:6]}...")
    if table.empty:
        raise ValueError(f"{path.name} has a header but no rows")
    feature_columns = [c for c in table.columns if c not in NON_FEATURE_COLUMNS]
    if not feature_columns:
        raise ValueError(f"{path.name} has no feature columns besides {NON_FEATURE_COLUMNS}")
    non_numeric = [c for c in feature_columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise ValueError(f"{path.name}: feature column(s) {non_numeric[:5]} are not numeric")
    if table[feature_columns].isna().any().any():
        bad = table.loc[table[feature_columns].isna().any(axis=1), "filename"].head(3).tolist()
        raise ValueError(f"{path.name}: missing feature values in rows such as {bad}")
    if table["label"].isna().any():
        raise ValueError(f"{path.name}: {int(table['label'].isna().sum())} row(s) without a label")
    duplicated = table["filename"][table["filename"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{path.name}: file name(s) {duplicated.head(3).tolist()} appear on more than one row")
    parsed = _parse_rows(table, path.name)
    segments = pd.DataFrame({
        "segment_id": np.arange(len(table)),
        "track_id": [track for track, _ in parsed],
        "label": table["label"].astype(str).to_numpy(),
        "segment": [segment for _, segment in parsed],
        "path": table["filename"].astype(str).to_numpy(),
    })
    if "length" in table.columns:
        segments["length"] = table["length"].to_numpy()
    _check_float32_range(table[feature_columns].to_numpy(dtype=np.float64), feature_columns, path.name)
    features = table[feature_columns].to_numpy(dtype=np.float32)
    meta = {"source": str(path.resolve()), "sha256": cache.file_sha256(path),
            "format": "kaggle_gtzan_csv", "feature_columns": feature_columns, "synthetic": False}
    return FeatureSet(root=None, features=features, segments=segments, meta=meta)


def _check_float32_range(values: np.ndarray, columns: list[str], name: str) -> None:
    """Refuse values that are infinite, or finite but beyond float32 (which the features are kept in), saying which."""
    bad = ~np.isfinite(values) | (np.abs(values) > np.finfo(np.float32).max)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        value = values[row, column]
        what = "infinite" if np.isinf(value) else f"too large for float32 ({value:.3g})"
        raise ValueError(f"{name}: {int(bad.sum())} feature value(s) out of range, the first {what} "
                         f"(row {row + 1}, column {columns[column]!r})")


def _read_table(path: Path) -> pd.DataFrame:
    """The CSV at ``path``; what pandas cannot read is refused in one line naming the file."""
    try:
        # a genre named NA, null or None is a label, not a missing value: pandas' missing-value words
        # apply to the feature columns only; a blank label or file name is still missing
        columns = pd.read_csv(path, nrows=0).columns
        text = [c for c in columns if c in REQUIRED_COLUMNS]
        na_values = {c: [""] if c in text else sorted(STR_NA_VALUES) for c in columns}
        return pd.read_csv(path, keep_default_na=False, na_values=na_values, dtype={c: str for c in text})
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file, expected a Kaggle GTZAN features CSV "
                         "(a header line filename,length,<features>,label, then rows)") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}; "
                         "UTF-16 or Latin-1?); save it as UTF-8 CSV") from None
    except pd.errors.ParserError as exc:
        cause = str(exc).strip().splitlines()[0].replace("Error tokenizing data. C error: ", "")
        raise ValueError(f"{path}: not a well-formed CSV table (rows of unequal length?): {cause}") from None


def _strip_labels(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` with its labels stripped of surrounding spaces (``"rock "`` is the genre rock), with a
    warning naming them and the genres they joined."""
    labels = table["label"]
    padded = sorted({label for label in labels.dropna() if label != label.strip()})
    if not padded:
        return table
    merged = sorted({label.strip() for label in padded} & set(labels.dropna()))
    log.warning("%s: %d label(s) with spaces around them (%s) were stripped%s", name, len(padded),
                ", ".join(repr(label) for label in padded[:5]),
                f"; their rows join the genre(s) {', '.join(merged)} of the same name" if merged else "")
    return table.assign(label=labels.map(lambda label: label.strip() if isinstance(label, str) else label))


def _drop_index_columns(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` without columns that number the rows (a saved pandas or R index), with a note."""
    rows = len(table)
    counting = [np.arange(rows), np.arange(1, rows + 1)]
    index_like = [c for c in table.columns if re.fullmatch(r"Unnamed: \d+", str(c)) or (
        rows >= 3 and c not in NON_FEATURE_COLUMNS and pd.api.types.is_integer_dtype(table[c])
        and any(np.array_equal(table[c].to_numpy(), count) for count in counting))]
    if index_like:
        log.warning("%s: dropped index column(s) %s (row numbers, not features: the rows are sorted by genre, "
                    "so they would give the label away)", name, index_like)
    return table.drop(columns=index_like)


def _parse_rows(table: pd.DataFrame, name: str) -> list[tuple[str, int]]:
    """``(track, segment)`` of every row; a table mixing whole tracks and segments, or giving one
    track two labels, is refused."""
    parsed = [parse_filename(filename) for filename in table["filename"]]
    has_segment = np.array([_FILENAME.match(str(f).strip())["segment"] is not None for f in table["filename"]])
    if has_segment.any() and not has_segment.all():
        whole = table["filename"][~has_segment].iloc[0]
        part = table["filename"][has_segment].iloc[0]
        raise ValueError(f"{name}: mixes whole-track rows ({whole}) with 3 s segment rows ({part}); a table holds "
                         "one or the other (features_30_sec.csv or features_3_sec.csv)")
    labels = pd.DataFrame({"track": [track for track, _ in parsed], "label": table["label"].astype(str).to_numpy()})
    per_track = labels.groupby("track")["label"].unique()
    torn = per_track[per_track.map(len) > 1]
    if len(torn):
        track = torn.index[0]
        raise ValueError(f"{name}: track {track} has rows labelled {sorted(torn.iloc[0])}; a track has one "
                         f"genre ({len(torn)} track(s) like this)")
    return parsed
