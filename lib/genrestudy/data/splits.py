"""Train / validation / test splits under the study's three protocols.

* ``paper``: random over segments, stratified by genre, 80/10/10: the paper's protocol.
  Segments of one track land on both sides, so a test segment's neighbours were trained
  on (leakage).
* ``track``: the same proportions over tracks, stratified by genre; every segment follows
  its track, so no track is on two sides. Tracks whose files hold identical bytes (GTZAN has
  exact repeats, some under two genres) are one group and land on one side together
  (:func:`content_groups`).
* ``filtered``: tracks assigned by list files such as the fault-filtered, artist-conditional
  split of Kereliuk, Sturm & Larsen (2015): ``{train,valid,test}_filtered.txt``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from functools import lru_cache
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


#: bytes hashed first to tell files of one size apart; only files whose heads agree are hashed whole
_HEAD_BYTES = 1 << 16


@lru_cache(maxsize=None)
def _digest(path: str, size: int, mtime_ns: int, head_only: bool) -> str:
    """SHA-256 of a file's first :data:`_HEAD_BYTES` (``head_only``) or of all of it; memoised by
    the file's size and modification time, so the splits of one run hash each file once."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if head_only:
            digest.update(fh.read(_HEAD_BYTES))
        else:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _same_content(paths: dict) -> list[list]:
    """Groups (of two or more keys of ``paths``, key → file) whose files hold identical bytes.

    Files are compared by size, then by a hash of their head, then by a hash of all their bytes,
    so a data set of distinct files costs one ``stat`` each and a small read at most. A file that
    cannot be read (a Kaggle table names files it does not ship) is in no group.
    """
    candidates = defaultdict(list)
    for key, path in paths.items():
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            continue
        candidates[info.st_size].append((key, str(path), info.st_mtime_ns))
    for head_only in (True, False):
        regrouped = defaultdict(list)
        for size, members in candidates.items():
            if len(members) < 2:
                continue
            for key, path, mtime in members:
                try:
                    regrouped[(size, _digest(path, size, mtime, head_only))].append((key, path, mtime))
                except OSError:
                    continue
        candidates = regrouped
    return [[key for key, _, _ in members] for members in candidates.values() if len(members) > 1]


def content_groups(segments: pd.DataFrame) -> pd.Series:
    """Track id → the id of its group: tracks whose audio files hold identical bytes share one group.

    The groups are the connected components of "same track id or same bytes" (a union-find,
    :func:`scipy.sparse.csgraph.connected_components`), so a repeat of a repeat joins too. Each group
    is named by its first track in ``segments`` order; without a ``path`` column every track is its own.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    tracks = pd.unique(segments["track_id"])
    position = {track: n for n, track in enumerate(tracks)}
    if "path" not in segments:
        return pd.Series(tracks, index=tracks)
    files = segments.drop_duplicates("path")
    # one file per track and path; a track with several files links them all
    by_path = dict(zip(files["path"], files["track_id"]))
    edges = [(position[by_path[a]], position[by_path[b]]) for group in _same_content(
        {path: path for path in by_path}) for a, b in zip(group, group[1:])]
    edges += [(position[t], position[u]) for t, u in zip(files["track_id"], files.groupby("track_id")["track_id"]
                                                            .transform("first"))]
    rows, cols = (np.array(side, dtype=np.int64) for side in zip(*edges)) if edges else (np.zeros(0, int),) * 2
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(tracks), len(tracks)))
    _, component = connected_components(graph, directed=False)
    first = {}
    for track, label in zip(tracks, component):
        first.setdefault(label, track)
    return pd.Series([first[label] for label in component], index=tracks)


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
        group = content_groups(segments)
        # one row per group (its first track, so without repeats this is the plain split of tracks)
        groups = tracks.loc[group.unique()]
        shared = int((group != group.index).sum())
        if shared:
            log.info("track split: %d tracks repeat another's audio bytes and follow it to its side", shared)
        per_track = group.map(_three_way(groups, "label", fractions, seed))
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
    from .. import cache

    frame = segments[["segment_id", "track_id", "label"]].assign(split=split.to_numpy())
    cache.write_csv(Path(path), frame)
    return Path(path)


#: the published filtered lists (MIT licence beside them) bundled with the package: a fresh clone has them
BUNDLED_LISTS_DIR = Path(__file__).resolve().parent / "split_lists"


def resolve_lists_dir(lists_dir) -> Path | None:
    """The folder of the filtered split's lists: ``"auto"`` looks in ``../shared/data/gtzan_splits``,
    then ``data/gtzan_splits``, then the copy bundled with the package (:data:`BUNDLED_LISTS_DIR`);
    ``""`` or ``None`` means none; a path must exist."""
    from .. import paths

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
    as ``<save_dir>/<protocol>_seed<seed>_<tag>.csv``, and summarise them one row each (``file``
    relative to the study's roots, :func:`genrestudy.paths.shown`)."""
    from .. import paths

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
            row["file"] = paths.shown(save_split(split, segments, Path(save_dir) / name))
        rows.append(row)
    return pd.DataFrame(rows)
