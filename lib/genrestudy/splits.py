"""Train / validation / test splits under the study's three protocols.

* ``paper``: random over segments, stratified by genre, 80/10/10: the paper's protocol.
  Segments of one track land on both sides, so a test segment's neighbours were trained
  on (leakage).
* ``track``: the same proportions over tracks, stratified by genre; every segment follows
  its track, so no track is on two sides.
* ``filtered``: tracks assigned by list files such as the fault-filtered, artist-conditional
  split of Kereliuk, Sturm & Larsen (2015): ``{train,valid,test}_filtered.txt``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

PROTOCOLS = ("paper", "track", "filtered")
SPLITS = ("train", "valid", "test")


def _three_way(items: pd.DataFrame, stratify: str, fractions, seed: int) -> pd.Series:
    train_f, valid_f, test_f = fractions
    rest_f = valid_f + test_f
    labels = items[stratify]
    try:
        train_idx, rest_idx = train_test_split(items.index, test_size=rest_f, stratify=labels, random_state=seed)
        valid_idx, test_idx = train_test_split(rest_idx, test_size=test_f / rest_f,
                                               stratify=labels.loc[rest_idx], random_state=seed)
    except ValueError as err:
        # scikit-learn's message speaks of its own two-way split; say what it means for this one
        counts = labels.value_counts()
        unit = "tracks" if items.index.name == "track_id" else "segments"
        raise ValueError(f"too few {unit} per {stratify} for a stratified train/valid/test split with shares "
                         f"{tuple(fractions)}: {counts.idxmin()!r} has {counts.min()} of {len(items)}; every "
                         f"{stratify} needs about {int(np.ceil(2 / rest_f))} or more ({err})") from None
    out = pd.Series("train", index=items.index, name="split")
    out.loc[valid_idx] = "valid"
    out.loc[test_idx] = "test"
    return out


def read_split_lists(lists_dir, *, suffix: str = "filtered") -> pd.Series:
    """Track id → split from ``{train,valid,test}_<suffix>.txt`` (lines like ``blues/blues.00012.wav``).

    Raises
    ------
    FileNotFoundError
        A list file is missing (the message names the folder and the files expected).
    ValueError
        A track listed in two splits.
    """
    lists_dir = Path(lists_dir)
    names = [f"{s}_{suffix}.txt" for s in SPLITS]
    missing = [n for n in names if not (lists_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"split lists {', '.join(missing)} not found in {lists_dir}; "
                                f"the 'filtered' protocol needs {', '.join(names)}")
    assignment = {}
    for split, name in zip(SPLITS, names):
        for line in (lists_dir / name).read_text().split():
            track = Path(line.strip()).stem
            if track in assignment and assignment[track] != split:
                raise ValueError(f"track {track} is listed in both {assignment[track]} and {split}")
            assignment[track] = split
    return pd.Series(assignment, name="split")


def make_split(segments: pd.DataFrame, protocol: str, *, seed: int = 0,
               fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
               lists_dir=None, list_suffix: str = "filtered") -> pd.Series:
    """Assign each segment (row of ``segments``: ``track_id``, ``label``) to train/valid/test.

    Parameters
    ----------
    segments : pd.DataFrame
        One row per segment, with ``track_id`` and ``label`` columns.
    protocol : {"paper", "track", "filtered"}
        See the module docstring.
    seed : int
        Seed of the random protocols (same seed, same split).
    fractions : (float, float, float)
        Train, validation and test shares (``paper`` and ``track``).
    lists_dir : path, optional
        Folder of the list files (``filtered``).

    Returns
    -------
    pd.Series
        ``"train"``, ``"valid"``, ``"test"`` (or ``"unlisted"`` for ``filtered`` tracks that
        no list names), aligned with ``segments``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown split protocol {protocol!r}; expected one of {PROTOCOLS}")
    if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three positive shares summing to 1, got {fractions}")
    if protocol == "paper":
        return _three_way(segments, "label", fractions, seed)
    tracks = segments.drop_duplicates("track_id").set_index("track_id")[["label"]]
    if protocol == "track":
        per_track = _three_way(tracks, "label", fractions, seed)
    else:
        if lists_dir is None:
            raise ValueError("the 'filtered' protocol needs lists_dir, the folder of its list files")
        listed = read_split_lists(lists_dir, suffix=list_suffix)
        per_track = listed.reindex(tracks.index).fillna("unlisted")
        report = filtered_coverage(tracks.index, listed)
        if report["missing"] or report["unlisted"]:
            log.warning("filtered split: %d listed tracks missing from the data, %d tracks in no list (left out)",
                        len(report["missing"]), len(report["unlisted"]))
    return segments["track_id"].map(per_track).rename("split")


def filtered_coverage(track_ids, listed: pd.Series) -> dict:
    """Listed tracks missing from the data, and tracks of the data that no list names."""
    present = set(track_ids)
    return {"missing": sorted(set(listed.index) - present), "unlisted": sorted(present - set(listed.index))}


def split_summary(segments: pd.DataFrame, split: pd.Series) -> dict:
    """Counts per split, and how many test tracks also have segments in train (leakage)."""
    frame = segments.assign(split=split.to_numpy())
    tracks_in = {s: set(frame.loc[frame["split"] == s, "track_id"]) for s in (*SPLITS, "unlisted")}
    summary = {f"{s}_segments": int((frame["split"] == s).sum()) for s in SPLITS}
    summary.update({f"{s}_tracks": len(tracks_in[s]) for s in SPLITS})
    summary["unlisted_tracks"] = len(tracks_in["unlisted"])
    summary["test_tracks_with_train_segments"] = len(tracks_in["test"] & tracks_in["train"])
    summary["valid_tracks_with_train_segments"] = len(tracks_in["valid"] & tracks_in["train"])
    return summary


def save_split(split: pd.Series, segments: pd.DataFrame, path) -> Path:
    """Write the split as CSV (segment_id, track_id, label, split)."""
    from . import cache

    frame = segments[["segment_id", "track_id", "label"]].assign(split=split.to_numpy())
    cache.write_csv(Path(path), frame)
    return Path(path)


#: the published filtered lists (MIT licence beside them) bundled with the package: a fresh clone has them
BUNDLED_LISTS_DIR = Path(__file__).resolve().parent / "split_lists"


def resolve_lists_dir(lists_dir) -> Path | None:
    """The folder of the filtered split's lists: ``"auto"`` looks in ``../shared/data/gtzan_splits``,
    then ``data/gtzan_splits``, then the copy bundled with the package (:data:`BUNDLED_LISTS_DIR`);
    ``""`` or ``None`` means none; a path must exist."""
    from . import paths

    if lists_dir in (None, ""):
        return None
    if lists_dir == "auto":
        for candidate in (paths.shared_data_dir() / "gtzan_splits", paths.data_dir() / "gtzan_splits",
                          BUNDLED_LISTS_DIR):
            if (candidate / "train_filtered.txt").is_file():
                return candidate
        log.warning("no filtered split lists found (looked in ../shared/data/gtzan_splits, data/gtzan_splits and "
                    "%s); the 'filtered' protocol is skipped", BUNDLED_LISTS_DIR)
        return None
    path = Path(lists_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"split lists folder {path} does not exist")
    return path


def protocol_summaries(segments: pd.DataFrame, *, seed: int = 0, lists_dir=None, save_dir=None,
                       tag: str = "") -> pd.DataFrame:
    """Make every protocol's split (``filtered`` only with ``lists_dir``), optionally save each
    as ``<save_dir>/<protocol>_seed<seed>_<tag>.csv``, and summarise them one row each."""
    rows = []
    for protocol in PROTOCOLS:
        if protocol == "filtered" and lists_dir is None:
            continue
        split = make_split(segments, protocol, seed=seed, lists_dir=lists_dir)
        row = {"protocol": protocol, **split_summary(segments, split)}
        if protocol == "filtered":
            coverage = filtered_coverage(segments["track_id"].unique(), read_split_lists(lists_dir))
            row.update(listed_tracks_missing=len(coverage["missing"]))
        if save_dir is not None:
            name = f"{protocol}_seed{seed}" + (f"_{tag}" if tag else "") + ".csv"
            row["file"] = str(save_split(split, segments, Path(save_dir) / name))
        rows.append(row)
    return pd.DataFrame(rows)
