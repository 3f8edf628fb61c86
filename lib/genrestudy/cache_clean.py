"""``python -m genrestudy.cache clean``: remove what the study wrote to its cache folder, and nothing else.

A folder is a study cache when it holds the marker the study writes on creating it
(:data:`genrestudy.cache_check.ROOT_MARKER`). In it, an entry ``<kind>/<key>/`` is removed
only when it names itself: its ``meta.json`` or the stamp written before its build
(:data:`genrestudy.cache_check.ENTRY_STAMP`) holds that kind and key. A cache written before
markers existed is recognised by its entries' own ``meta.json``; a folder with neither is
refused in one line, and anything else found in a cache folder is listed and left alone.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import paths
from .cache_check import ENTRY_STAMP, META_FILE, ROOT_MARKER

#: kinds of cache entry that ``clean`` keeps: material downloaded once (musicnn's published
#: checkpoints, :mod:`genrestudy.extractors.musicnn_weights`), not derived from the study's inputs
KEPT_KINDS = frozenset({"musicnn-weights"})
#: numba's cache of librosa's compiled functions, which the study points into its cache folder
NUMBA_FOLDER = "numba"
# entries of kinds written before meta.json was: (the one file they hold, how it starts)
_LEGACY = {"manifests": ("manifest.csv", b"track_id,label,path,")}


class NotACacheError(RuntimeError):
    """A folder that is not a study cache folder (one line)."""


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def format_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _in_use(entry: Path) -> bool:
    """Whether another process holds the entry lock of ``entry`` (it is being built)."""
    import fcntl

    lock = entry if entry.name.endswith(".lock") else entry.with_name(entry.name + ".lock")
    if not lock.is_file() or lock.is_symlink():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def is_study_entry(entry: Path) -> bool:
    """Whether the folder ``entry`` (``<root>/<kind>/<key>``) was written by the study: it names itself."""
    if entry.is_symlink() or not entry.is_dir():
        return False
    for name in (META_FILE, ENTRY_STAMP):
        try:
            record = json.loads((entry / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("kind") == entry.parent.name and record.get("key") == entry.name:
            return True
    legacy = _LEGACY.get(entry.parent.name)
    if legacy and [p.name for p in entry.iterdir()] == [legacy[0]]:
        try:
            with open(entry / legacy[0], "rb") as fh:
                return fh.read(len(legacy[1])) == legacy[1]
        except OSError:
            return False
    return False


def _is_lock(path: Path, entries: set[str], marked: bool) -> bool:
    """An entry lock the study left: an empty ``<key>.lock`` beside its entry (or anywhere in a marked cache)."""
    if path.is_symlink() or not path.is_file() or path.suffix != ".lock" or path.stat().st_size:
        return False
    return marked or path.name[:-len(".lock")] in entries


def study_items(root: Path) -> tuple[list[Path], list[Path], bool]:
    """``(removable, left alone, marked)`` of the cache folder ``root`` (kept kinds are neither)."""
    marked = (root / ROOT_MARKER).is_file()
    removable, alien = [], []
    for kind in sorted(root.iterdir()):
        if kind.name == ROOT_MARKER:
            continue
        if kind.is_symlink() or not kind.is_dir():
            alien.append(kind)
            continue
        if kind.name in KEPT_KINDS:
            continue
        if kind.name == NUMBA_FOLDER and marked:  # the study's (genrestudy/__init__.py), rebuilt on demand
            removable += sorted(kind.iterdir())
            continue
        items = sorted(kind.iterdir())
        entries = {p.name for p in items if is_study_entry(p)}
        for item in items:
            if item.name in entries or _is_lock(item, entries, marked):
                if not _in_use(item):
                    removable.append(item)
            else:
                alien.append(item)
    return removable, alien, marked


def _remove(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item)
    else:
        item.unlink()


def clean_caches(root: Path | None = None, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Remove the entries the study wrote in the cache folder (but :data:`KEPT_KINDS`); list them and the bytes freed.

    Entries another process is building (their lock is held) are left alone, and so is
    anything the study did not write (listed).

    Parameters
    ----------
    root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).
    dry_run : bool
        Only list and measure what would be removed.

    Returns
    -------
    list of (Path, int)
        Each entry removed (``<root>/<kind>/<entry>``, lock files included) and its size in bytes.

    Raises
    ------
    NotACacheError
        ``root`` holds neither the study's marker nor any entry the study wrote (nothing removed).
    """
    root = Path(root or paths.cache_dir()).expanduser()
    verb = "would free" if dry_run else "freed"
    if not root.is_dir():
        print(f"cache {root}: no cache folder there, nothing to clean")
        return []
    removable, alien, marked = study_items(root)
    if not marked and not removable:
        raise NotACacheError(f"{root} is not a genrestudy cache folder (no {ROOT_MARKER} marker and no entry the "
                             "study wrote); nothing removed")
    if not marked:
        print(f"cache {root}: no {ROOT_MARKER} marker (written before markers): only the entries the study "
              "wrote are removed")
    removed = [(item, _size(item)) for item in removable]
    for kind in sorted({item.parent for item in removable}):
        mine = [(item, size) for item, size in removed if item.parent == kind]
        for item, size in mine:
            if not item.name.endswith(".lock"):
                print(f"  {'would remove' if dry_run else 'remove'} {kind.name}/{item.name} ({format_bytes(size)})")
        if not dry_run:
            for item, _ in mine:
                _remove(item)
            if not any(kind.iterdir()):
                kind.rmdir()
        count = sum(1 for item, _ in mine if not item.name.endswith(".lock"))
        print(f"{kind.name}: {count} entries, {verb} {format_bytes(sum(size for _, size in mine))}")
    for kind in sorted(p for p in root.iterdir() if p.name in KEPT_KINDS and p.is_dir()):
        print(f"{kind.name}: kept (downloaded, not derived; remove {kind} by hand to fetch it again)")
    if alien:
        shown = ", ".join(str(p.relative_to(root)) for p in alien[:5]) + (", ..." if len(alien) > 5 else "")
        print(f"left alone: {len(alien)} item(s) the study did not write ({shown})")
    count = sum(1 for item, _ in removed if not item.name.endswith(".lock"))
    print(f"cache {root}: {count} entries in all, {verb} {format_bytes(sum(size for _, size in removed))}"
          + (" (dry run)" if dry_run else ""))
    return removed


def main(argv: list[str] | None = None) -> int:
    """``python -m genrestudy.cache clean [--dry-run] [--root FOLDER]``: 0 done, 2 not a study cache folder."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m genrestudy.cache", description="Manage the study's caches.")
    commands = parser.add_subparsers(dest="command", required=True)
    clean = commands.add_parser("clean", help="remove the cache entries the study wrote (images, signals, "
                                              "features, models, ...) and nothing else")
    clean.add_argument("--dry-run", action="store_true", help="list the entries and sizes only, remove nothing")
    clean.add_argument("--root", type=Path, default=None, help="cache folder (default: GENRESTUDY_CACHE or data/cache)")
    args = parser.parse_args(argv)
    try:
        clean_caches(args.root, dry_run=args.dry_run)
    except NotACacheError as exc:
        print(f"python -m genrestudy.cache: {exc}", file=sys.stderr)
        return 2
    return 0
