"""Finding audio data sets on disk and describing them in a manifest.

Layouts understood (``<root>`` is usually ``data/gtzan``):

* Kaggle GTZAN: ``<root>/[Data/]genres_original/<genre>/<genre>.000NN.wav``
* original GTZAN (marsyas): ``<root>/genres/<genre>/<genre>.000NN.au``
* any folder-per-label data set: ``<root>/<label>/*.{wav,au,flac,ogg,mp3}``

The manifest has one row per audio file (and one per empty or unreadable label folder),
with its decoding facts and a ``status`` of ``usable`` or ``excluded`` plus the ``reason``.
Nothing is dropped silently: known-bad files, undecodable files, broken symbolic links and
duplicates are all rows with a reason; usable files whose bytes repeat another file's get a
``note``. Paths keep names that are not valid UTF-8 (the CSV stores them surrogate-escaped);
labels, track ids, reasons and notes show such bytes as ``\\xNN``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISFIFO, S_ISREG, S_ISSOCK

import pandas as pd
from joblib import Parallel, delayed

from .. import cache
from .audio import AudioError, describe_os_error, probe_audio

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")

#: Which copy of a track (same name, several formats) is kept: the complete one first (the longest
#: decode, within :data:`SAME_LENGTH_SECONDS`), then lossless before lossy in this order (Kaggle's
#: wav, flac, the original GTZAN au; ogg before mp3), then path order.
FORMAT_PREFERENCE = ("wav", "flac", "au", "ogg", "mp3")
#: Copies whose decoded lengths differ by at most this much are equally complete: MP3 and Vorbis
#: encoders add up to about two frames (0.1 s at 22050 Hz) of padding to the same sound.
SAME_LENGTH_SECONDS = 0.25

#: Files known to be faulty in published copies of GTZAN, excluded by name with the reason.
KNOWN_BAD_FILES = {
    "jazz.00054.wav": "known fault of the Kaggle GTZAN copy: cannot be decoded",
}

MANIFEST_COLUMNS = ["track_id", "label", "path", "format", "duration", "sample_rate",
                    "channels", "samples", "bytes", "mtime_ns", "status", "reason", "note"]

GTZAN_HINT = ("put GTZAN in data/gtzan/ as Kaggle's genres_original/<genre>/<genre>.000NN.wav "
              "or the original genres/<genre>/<genre>.000NN.au")


class DatasetLayoutError(ValueError):
    """A data folder that is not laid out as one folder per label."""


def _visible(path: Path) -> bool:
    # macOS leaves AppleDouble '._name' files and '.DS_Store' beside real ones
    return not path.name.startswith(".")


def printable(text: str) -> str:
    """``text`` with bytes of a file name that are not UTF-8 shown as ``\\xNN`` (fit for any table)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
            # a GTZAN root holds label folders; a label folder that happens to be named "genres" does not
            hits = sorted(p for p in root.glob(depth_glob + name) if p.is_dir() and _has_subfolder(p))
            if hits:
                return hits[0]
    label_dirs = [d for d in root.iterdir() if d.is_dir() and _visible(d)]
    has_audio = any(_readable_audio_files(d) for d in label_dirs)
    if not has_audio:
        loose = _audio_files(root)
        detail = (f"{len(loose)} audio files lie directly in it, with no label folders"
                  if loose else "no label folder in it holds audio files")
        raise DatasetLayoutError(
            f"{root} is not a data set laid out as <root>/<label>/*.wav|au|flac|ogg|mp3: {detail}")
    return root


def _has_subfolder(folder: Path) -> bool:
    try:
        return any(d.is_dir() and _visible(d) for d in folder.iterdir())
    except OSError:
        return False


def _audio_files(folder: Path) -> list[Path]:
    """Entries named like audio anywhere under ``folder`` (sub-folders too: ``blues/live/x.wav``), with
    symbolic links that lead nowhere and special files such as named pipes (listed, then excluded;
    only ``stat`` looks at them, never ``open``)."""
    found = []
    for entry in sorted(folder.iterdir()):
        if not _visible(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            try:
                found += _audio_files(entry)
            except OSError:
                continue  # an unreadable sub-folder: its files cannot be listed
        elif entry.suffix.lower() in AUDIO_EXTENSIONS and not entry.is_dir():
            found.append(entry)
    return found


def _readable_audio_files(folder: Path) -> list[Path]:
    try:
        return _audio_files(folder)
    except OSError:  # an unreadable label folder becomes a row of the manifest, not an error here
        return []


def track_id_for(path: Path, label: str, folder: Path | None = None) -> str:
    """``blues.00000`` for GTZAN names (already prefixed by their genre), else ``<label>/<stem>``
    (``<label>/<sub-folders>/<stem>`` for a file below its label folder)."""
    stem = printable(path.stem)
    if folder is not None and path.parent != folder:
        return f"{label}/{printable(str(path.parent.relative_to(folder)))}/{stem}"
    return stem if stem.startswith(label + ".") else f"{label}/{stem}"


def _folder_row(folder: Path, reason: str) -> dict:
    log.warning("label folder %s: %s; listed as excluded", printable(str(folder)), reason)
    return {"track_id": "", "label": printable(folder.name), "path": str(folder), "status": "excluded",
            "reason": reason}


def _special_kind(mode: int) -> str:
    for test, name in ((S_ISFIFO, "a named pipe"), (S_ISSOCK, "a socket"), (S_ISCHR, "a character device"),
                       (S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


#: label of the rows of audio files lying directly in the data root, beside its label folders
NO_LABEL = "(no label folder)"


def _root_rows(base: Path, label_dirs: list[Path]) -> list[dict]:
    """Rows for what the label folders do not hold: audio directly in the root (no label: excluded)
    and a warning for label folders whose names differ only in case (two genres here)."""
    rows = []
    for path in sorted(p for p in base.iterdir() if _visible(p) and not p.is_dir()
                       and p.suffix.lower() in AUDIO_EXTENSIONS):
        rows.append({"track_id": f"{NO_LABEL}/{printable(path.stem)}", "label": NO_LABEL, "path": str(path),
                     "format": path.suffix.lower().lstrip("."), "status": "excluded",
                     "reason": "directly in the data root, not in a label folder: its genre is unknown"})
    by_case = defaultdict(list)
    for folder in label_dirs:
        by_case[folder.name.casefold()].append(printable(folder.name))
    for names in by_case.values():
        if len(names) > 1:
            log.warning("label folders %s differ only in case: they are %d genres here; merge them if they are one",
                        " and ".join(repr(n) for n in names), len(names))
    return rows


def _label_rows(folder: Path) -> list[dict]:
    """One row per audio file of a label folder (or one for the folder when it is empty or unreadable)."""
    label = printable(folder.name)
    try:
        files = _audio_files(folder)
    except OSError as exc:
        return [_folder_row(folder, f"cannot list the label folder: {describe_os_error(exc, folder)}")]
    if not files:
        return [_folder_row(folder, "empty label folder: no audio files")]
    rows = []
    for path in files:
        row = {"track_id": track_id_for(path, label, folder), "label": label, "path": str(path),
               "format": path.suffix.lower().lstrip(".")}
        try:
            stat = path.stat()
            row.update(bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, mode=stat.st_mode)
            if not S_ISREG(stat.st_mode):  # a named pipe would block a reader forever: never opened
                row.update(status="excluded", reason=f"not a regular file ({_special_kind(stat.st_mode)})")
        except OSError as exc:  # a broken or looping link, or a file the folder's permissions hide
            row.update(status="excluded", reason=describe_os_error(exc, path))
        rows.append(row)
    return rows


def _probe(path: Path) -> dict:
    """Decode a file (block by block: any length) to check it; note one that decodes shorter than its header says."""
    try:
        info = probe_audio(path)
    except AudioError as exc:
        return {"status": "excluded", "reason": str(exc)}
    row = {"status": "usable", "reason": "", "duration": info.duration,
           "sample_rate": info.sample_rate, "channels": info.channels, "samples": info.samples}
    if info.truncated:
        row["note"] = info.truncated
        log.warning("%s %s", printable(str(path)), info.truncated)
    return row


def _add_note(row: dict, note: str) -> None:
    row["note"] = f"{row['note']}; {note}" if row.get("note") else note


def _check_files(files: list[dict], n_jobs: int) -> None:
    """Decode every file not already excluded; known-bad files are excluded by name."""
    for row in files:
        name = Path(row["path"]).name
        if "status" not in row and name in KNOWN_BAD_FILES:
            row.update(status="excluded", reason=KNOWN_BAD_FILES[name])
    todo = [r for r in files if "status" not in r]
    probes = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(_probe)(Path(r["path"])) for r in todo)
    for row, probe in zip(todo, probes):
        row.update(probe)


def _keep_one_copy(files: list[dict]) -> None:
    """Of the usable copies of a track (same name, other format), keep the complete one: the longest
    decode (copies within :data:`SAME_LENGTH_SECONDS` of it tie), then :data:`FORMAT_PREFERENCE`.

    A copy that does not decode keeps its own reason, so a bad copy never hides a good one, and a
    truncated copy that still decodes never hides the whole track.
    """
    copies = defaultdict(list)
    for row in files:
        if row["status"] == "usable":
            copies[row["track_id"]].append(row)
    for rows in copies.values():
        longest = max(r["duration"] for r in rows)
        rows.sort(key=lambda r: (r["duration"] < longest - SAME_LENGTH_SECONDS,
                                 FORMAT_PREFERENCE.index(r["format"]), r["path"]))
        kept = rows[0]
        name = printable(Path(kept["path"]).name)
        for row in rows[1:]:
            shorter = row["duration"] < longest - SAME_LENGTH_SECONDS
            row.update(status="excluded", reason=f"duplicate of {name}" + (
                f" (this copy decodes to {row['duration']:.2f} s, that one to {kept['duration']:.2f} s)"
                if shorter else ""))


def _digest(path: str) -> str | None:
    try:
        return cache.file_sha256(path)
    except OSError:
        return None


def _note_repeats(files: list[dict], base: Path, n_jobs: int) -> None:
    """Note on each usable file whose bytes repeat another's (GTZAN has exact repeats, Sturm 2012).

    Only files sharing a byte size are hashed: repeats must be the same size, so a data set
    of distinct sizes costs nothing.
    """
    sizes = defaultdict(list)
    for row in files:
        if row["status"] == "usable":
            sizes[row["bytes"]].append(row)
    candidates = [r for group in sizes.values() if len(group) > 1 for r in group]
    digests = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(_digest)(r["path"]) for r in candidates)
    same = defaultdict(list)
    for row, digest in zip(candidates, digests):
        if digest:
            same[digest].append(row)
    repeats = [group for group in same.values() if len(group) > 1]
    for group in repeats:
        names = [printable(str(Path(r["path"]).relative_to(base))) for r in group]
        for row, name in zip(group, names):
            others = [n for n in names if n != name]
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            _add_note(row, f"same audio bytes as {shown}")
    if repeats:
        log.warning("%d files repeat the audio bytes of another file (see the manifest's note column)",
                    sum(len(g) for g in repeats))


def scan_dataset(root, *, n_jobs: int = 2, use_cache: bool = True) -> pd.DataFrame:
    """Manifest of every audio file under a data set ``root`` (see module doc for layouts).

    Each file is decoded once to check it and learn its rate, channels and length; usable
    files of equal size are hashed to note exact repeats. A track found in several formats
    keeps its one usable copy, or the first in :data:`FORMAT_PREFERENCE`. The manifest is
    cached under a key of every file's path, size, mode and modification time, so a rescan of
    unchanged data is instant.

    Returns
    -------
    pd.DataFrame
        Columns :data:`MANIFEST_COLUMNS`, one row per audio file, sorted by label and track.

    Examples
    --------
    >>> manifest = scan_dataset("data/gtzan")                   # doctest: +SKIP
    >>> manifest.groupby("status").size()                      # doctest: +SKIP
    """
    base = find_dataset_root(root)
    label_dirs = sorted(d for d in base.iterdir() if d.is_dir() and _visible(d))
    rows = [row for folder in label_dirs for row in _label_rows(folder)]
    rows += _root_rows(base, label_dirs)
    if not rows:
        raise DatasetLayoutError(f"{base} has no label folders")
    # v2: the note column, duplicate rule and stricter checks changed what a scan finds; the
    # mode is keyed so that a chmod (which leaves mtime alone) rescans a file refused as unreadable
    # v3: the complete copy of a track is kept, a truncated file noted, nested and loose audio and
    # special files listed
    key = cache.cache_key("manifest-v3", [[r["path"], r.get("bytes"), r.get("mtime_ns"), r.get("mode"),
                                           r.get("reason", "")] for r in rows], cache.library_versions("soundfile"))
    # a cache entry with a meta.json recording the table's size and checksum: a shortened or
    # garbled manifest.csv is scanned again, never read back as the data set
    cached = cache.open_checked("manifests", cache.entry_dir("manifests", key),
                                lambda entry: read_manifest(entry / "manifest.csv")) if use_cache else None
    if cached is not None:
        return cached

    files = [row for row in rows if row["track_id"]]
    _check_files(files, n_jobs)
    _keep_one_copy(files)
    _note_repeats(files, base, n_jobs)
    for row in files:
        if row["status"] == "excluded":
            log.warning("excluded %s: %s", printable(row["path"]), row["reason"])
    frame = pd.DataFrame([{"reason": "", "note": "", **row} for row in rows], columns=MANIFEST_COLUMNS)
    frame = frame.sort_values(["label", "track_id"], kind="stable").reset_index(drop=True)
    if use_cache:
        try:
            cache.write_entry("manifests", key, {"manifest.csv": lambda path: write_manifest(path, frame)})
        except (OSError, cache.CacheError) as exc:
            log.warning("manifest not cached (%s)", exc)
    return frame


def write_manifest(path, frame: pd.DataFrame) -> None:
    """Write a manifest CSV atomically; paths that are not valid UTF-8 keep their bytes."""
    with cache.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, errors="surrogateescape")


def read_manifest(path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`scan_dataset` (one without ``note`` gets it, empty)."""
    frame = pd.read_csv(path, dtype={"track_id": str, "label": str, "path": str, "format": str,
                                     "status": str, "reason": str, "note": str},
                        keep_default_na=False, encoding_errors="surrogateescape",
                        na_values={"duration": [""], "sample_rate": [""], "channels": [""], "samples": [""],
                                   "bytes": [""], "mtime_ns": [""]})
    if "note" not in frame:
        frame.insert(frame.columns.get_loc("reason") + 1 if "reason" in frame else len(frame.columns),
                     "note", "")
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
        return "; ".join(f"{printable(Path(p).name) if t else '(folder)'}: {r}"
                         for t, p, r in zip(bad["track_id"], bad["path"], bad["reason"]))

    table["reasons"] = pd.Series({label: reasons(g) for label, g in clips.groupby("label")}).reindex(labels, fill_value="")
    total = table.drop(columns="reasons").sum()
    table.loc["total"] = [*total.astype(int).tolist(), f"{int(table['excluded'].sum())} excluded"]
    return table.reset_index()
