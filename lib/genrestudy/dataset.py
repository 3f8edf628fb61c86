"""Finding audio data sets on disk and describing them in a manifest.

Layouts understood (``<root>`` is usually ``data/gtzan``):

* Kaggle GTZAN: ``<root>/[Data/]genres_original/<genre>/<genre>.000NN.wav``
* original GTZAN (marsyas): ``<root>/genres/<genre>/<genre>.000NN.au``
* any folder-per-label data set: ``<root>/<label>/*.{wav,au,flac,ogg,mp3}``

The manifest has one row per audio file (and one per empty label folder), with its
decoding facts and a ``status`` of ``usable`` or ``excluded`` plus the ``reason``.
Nothing is dropped silently: known-bad files, undecodable files and duplicates are all
rows with a reason.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from . import cache
from .audio import AudioError, load_audio

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")

#: Files known to be faulty in published copies of GTZAN, excluded by name with the reason.
KNOWN_BAD_FILES = {
    "jazz.00054.wav": "known fault of the Kaggle GTZAN copy: cannot be decoded",
}

MANIFEST_COLUMNS = ["track_id", "label", "path", "format", "duration", "sample_rate",
                    "channels", "samples", "bytes", "mtime_ns", "status", "reason"]

GTZAN_HINT = ("put GTZAN in data/gtzan/ as Kaggle's genres_original/<genre>/<genre>.000NN.wav "
              "or the original genres/<genre>/<genre>.000NN.au")


class DatasetLayoutError(ValueError):
    """A data folder that is not laid out as one folder per label."""


def _visible(path: Path) -> bool:
    # macOS leaves AppleDouble '._name' files and '.DS_Store' beside real ones
    return not path.name.startswith(".")


def find_dataset_root(root) -> Path:
    """The folder whose sub-folders are the labels.

    Looks for GTZAN's ``genres_original`` (Kaggle) or ``genres`` (original) up to two levels
    below ``root`` (Kaggle's archive unpacks to ``Data/genres_original``), else takes ``root``
    itself as a folder-per-label data set.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    DatasetLayoutError
        No label folder holding audio files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no data folder at {root}: {GTZAN_HINT}")
    for depth_glob in ("", "*/"):
        for name in ("genres_original", "genres"):
            hits = sorted(p for p in root.glob(depth_glob + name) if p.is_dir())
            if hits:
                return hits[0]
    label_dirs = [d for d in root.iterdir() if d.is_dir() and _visible(d)]
    has_audio = any(_audio_files(d) for d in label_dirs)
    if not has_audio:
        loose = _audio_files(root)
        detail = (f"{len(loose)} audio files lie directly in it, with no label folders"
                  if loose else "no label folder in it holds audio files")
        raise DatasetLayoutError(
            f"{root} is not a data set laid out as <root>/<label>/*.wav|au|flac|ogg|mp3: {detail}")
    return root


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and _visible(p) and p.suffix.lower() in AUDIO_EXTENSIONS)


def track_id_for(path: Path, label: str) -> str:
    """``blues.00000`` for GTZAN names (already prefixed by their genre), else ``<label>/<stem>``."""
    stem = path.stem
    return stem if stem.startswith(label + ".") else f"{label}/{stem}"


def _probe(path: Path) -> dict:
    try:
        _, info = load_audio(path, sample_rate=None)
    except AudioError as exc:
        return {"status": "excluded", "reason": str(exc)}
    return {"status": "usable", "reason": "", "duration": info.duration,
            "sample_rate": info.sample_rate, "channels": info.channels, "samples": info.samples}


def scan_dataset(root, *, n_jobs: int = 2, use_cache: bool = True) -> pd.DataFrame:
    """Manifest of every audio file under a data set ``root`` (see module doc for layouts).

    Each file is decoded once to check it and learn its rate, channels and length; the
    manifest is cached under a key of every file's path, size and modification time, so a
    rescan of unchanged data is instant.

    Returns
    -------
    pd.DataFrame
        Columns :data:`MANIFEST_COLUMNS`, one row per audio file, sorted by label and track.
    """
    base = find_dataset_root(root)
    rows = []
    for label_dir in sorted(d for d in base.iterdir() if d.is_dir() and _visible(d)):
        files = _audio_files(label_dir)
        if not files:
            log.warning("label folder %s holds no audio files; listed as excluded", label_dir)
            rows.append({"track_id": "", "label": label_dir.name, "path": str(label_dir),
                         "status": "excluded", "reason": "empty label folder: no audio files"})
            continue
        for path in files:
            stat = path.stat()
            rows.append({"track_id": track_id_for(path, label_dir.name), "label": label_dir.name,
                         "path": str(path), "format": path.suffix.lower().lstrip("."),
                         "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if not rows:
        raise DatasetLayoutError(f"{base} has no label folders")
    files = [row for row in rows if row["track_id"]]
    key = cache.cache_key("manifest-v1", [[r["path"], r["bytes"], r["mtime_ns"]] for r in files],
                          cache.library_versions("soundfile"))
    cached = cache.entry_dir("manifests", key) / "manifest.csv"
    if use_cache and cached.is_file():
        return read_manifest(cached)

    todo = [r for r in files if Path(r["path"]).name not in KNOWN_BAD_FILES]
    probes = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(_probe)(Path(r["path"])) for r in todo)
    for row, probe in zip(todo, probes):
        row.update(probe)
    seen = set()
    for row in files:
        name = Path(row["path"]).name
        if name in KNOWN_BAD_FILES:
            row.update(status="excluded", reason=KNOWN_BAD_FILES[name])
        elif row["track_id"] in seen:
            row.update(status="excluded", reason="duplicate track id (same name, other format)")
        seen.add(row["track_id"])
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    frame["reason"] = frame["reason"].fillna("")
    for _, row in frame[frame["status"] == "excluded"].iterrows():
        log.warning("excluded %s: %s", row["path"], row["reason"])
    frame = frame.sort_values(["label", "track_id"], kind="stable").reset_index(drop=True)
    if use_cache:
        try:
            cache.write_csv(cached, frame)
        except OSError as exc:
            log.warning("manifest not cached (%s)", exc)
    return frame


def read_manifest(path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`scan_dataset`."""
    frame = pd.read_csv(path, dtype={"track_id": str, "label": str, "path": str,
                                     "format": str, "status": str, "reason": str},
                        keep_default_na=False, na_values={"duration": [""], "sample_rate": [""],
                                                          "channels": [""], "samples": [""],
                                                          "bytes": [""], "mtime_ns": [""]})
    return frame


def usable(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``manifest`` whose audio decoded."""
    return manifest[manifest["status"] == "usable"]


def dataset_table(clips: pd.DataFrame) -> pd.DataFrame:
    """Table 1: tracks per genre found / usable / excluded, with the reasons for exclusions."""
    files = clips[clips["track_id"] != ""]
    labels = sorted(clips["label"].unique())
    table = pd.DataFrame(index=pd.Index(labels, name="genre"))
    table["found"] = files.groupby("label").size().reindex(labels, fill_value=0)
    table["usable"] = files[files["status"] == "usable"].groupby("label").size().reindex(labels, fill_value=0)
    table["excluded"] = table["found"] - table["usable"]
    if "segments" in clips:
        table["segments"] = clips.groupby("label")["segments"].sum().reindex(labels, fill_value=0).astype(int)

    def reasons(group: pd.DataFrame) -> str:
        bad = group[group["status"] != "usable"]
        return "; ".join(f"{Path(p).name if t else '(folder)'}: {r}"
                         for t, p, r in zip(bad["track_id"], bad["path"], bad["reason"]))

    table["reasons"] = pd.Series({label: reasons(g) for label, g in clips.groupby("label")}).reindex(labels, fill_value="")
    total = table.drop(columns="reasons").sum()
    table.loc["total"] = [*total.astype(int).tolist(), f"{int(table['excluded'].sum())} excluded"]
    return table.reset_index()
