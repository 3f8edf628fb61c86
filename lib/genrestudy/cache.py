"""Content-keyed, atomically written caches.

A cache entry lives in ``<cache_dir>/<kind>/<key>/``; the key is a hash of everything
that determines the entry (input manifest, parameters, versions of the libraries that
shape the numbers). An entry counts as complete only once its ``meta.json`` exists, and
``meta.json`` is always written last, so an interrupted run never leaves a stale entry
that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import pandas as pd

from . import paths

META_FILE = "meta.json"
T = TypeVar("T")
log = logging.getLogger(__name__)


class CacheError(RuntimeError):
    """A cache location cannot be used (read-only, corrupt, ...)."""


def _canonical(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return _canonical(obj.to_dict(orient="split"))
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float):
        return repr(obj)
    return obj


def cache_key(*parts: Any, length: int = 16) -> str:
    """Hex digest of ``parts`` (dicts, lists, DataFrames, paths, scalars), order-insensitive for dict keys."""
    blob = json.dumps(_canonical(list(parts)), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]



def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (keys caches on an input file's content)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (the libraries whose output a cache depends on)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def entry_dir(kind: str, key: str, root: Path | None = None) -> Path:
    """Folder of the cache entry ``kind/key`` (not created)."""
    return Path(root or paths.cache_dir()) / kind / key


def is_complete(entry: Path) -> bool:
    return (entry / META_FILE).is_file()


def read_meta(entry: Path) -> dict:
    try:
        return json.loads((entry / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CacheError(f"cache entry {entry} is unreadable ({exc}); delete the folder to rebuild it") from exc


def make_writable_dir(path: Path) -> Path:
    """Create ``path`` and check it can be written, with a one-line error if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CacheError(
            f"cannot write to cache folder {path} ({exc.strerror or exc}); "
            "pass another cache_dir or set GENRESTUDY_CACHE to a writable folder"
        ) from None
    return path


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); outputs get the permissions a plain open() gives
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` atomically; file names that are not valid UTF-8 round-trip (surrogateescape)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, errors="surrogateescape")


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically (readable later with ``mmap_mode='r'``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def finish(entry: Path, meta: dict) -> None:
    """Mark ``entry`` complete by writing its ``meta.json`` (always the last file written)."""
    write_json(entry / META_FILE, meta)


@contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache entry ``entry`` while the block runs.

    A second process (a notebook in JupyterLab while ``run_all.sh`` runs) that asks for the
    same entry waits here, then finds it complete instead of building it again. The lock is
    an ``flock`` on ``<entry>.lock`` beside the entry, released when the holder exits or dies.
    """
    import fcntl

    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(entry.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_or_build(kind: str, key: str, *, open_entry: Callable[[Path], T], build: Callable[[Path], dict],
                  root: Path | None = None) -> T:
    """The one way the study reads or makes a cache entry: open ``kind/key``, or build it.

    Parameters
    ----------
    kind, key : str
        The entry ``<cache_dir>/<kind>/<key>/`` (:func:`entry_dir`).
    open_entry : callable
        ``open_entry(entry) -> T`` reads a complete entry; it raises :class:`CacheError`,
        ``OSError`` or ``ValueError`` when the entry is damaged, which is then rebuilt.
    build : callable
        ``build(entry) -> meta`` writes the entry's files into the (existing, writable) folder
        and returns its metadata; :func:`finish` then writes ``meta.json`` last.
    root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).

    Returns
    -------
    T
        ``open_entry(entry)`` of the complete entry. Building holds :func:`entry_lock`, so two
        processes never build one entry side by side.
    """
    entry = entry_dir(kind, key, root)
    if is_complete(entry):
        try:
            return open_entry(entry)
        except (CacheError, OSError, ValueError):
            pass  # damaged: rebuilt below, under the lock
    make_writable_dir(entry.parent)
    with entry_lock(entry):
        if is_complete(entry):  # finished by another process while this one waited
            try:
                return open_entry(entry)
            except (CacheError, OSError, ValueError) as exc:
                log.warning("%s cache %s is damaged (%s); rebuilding it", kind, entry, exc)
                (entry / META_FILE).unlink(missing_ok=True)
        make_writable_dir(entry)
        meta = build(entry)
        finish(entry, {"kind": kind, "key": key, **meta})
    return open_entry(entry)


@contextmanager
def write_guard(folder: Path) -> Iterator[None]:
    """Turn an ``OSError`` of the block (disk full, quota, permissions) into a one-line :class:`CacheError`."""
    try:
        yield
    except OSError as exc:
        raise CacheError(f"cannot write to cache folder {folder} ({exc.strerror or exc}); free space or "
                         "pass another cache_dir or set GENRESTUDY_CACHE to another folder") from None


# ---------------------------------------------------------------- a resumable array, filled in parallel

_PARTS = "parts"


def _remove_stale_temporaries(entry: Path) -> None:
    """Delete the half-written files a killed run left (:func:`atomic_path` names them ``.*.tmp``)."""
    for folder in (entry, entry / _PARTS):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _allocate(path: Path, shape: tuple, dtype) -> np.memmap:
    """A new ``.npy`` memory map with every block reserved on disk.

    Reserving up front makes a full disk an ``OSError`` here; a write into an unreserved
    page of a memory map on a full disk would kill the process with SIGBUS instead.
    """
    import errno

    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        with open(path, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # else: a file system without fallocate
            del out
            path.unlink(missing_ok=True)
            raise
    return out


def _resumable(path: Path, shape: tuple, dtype) -> np.memmap | None:
    """The array a killed run was filling, if it is there and has the expected layout."""
    try:
        out = np.lib.format.open_memmap(path, mode="r+")
    except (OSError, ValueError):
        return None
    return out if out.shape == tuple(shape) and out.dtype == np.dtype(dtype) else None


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fill_one(out: np.memmap, where, compute: Callable, marker: Path, entry: Path) -> dict:
    block, outcome = compute()
    if block is not None:
        out[where] = block
    # the marker is written after the block, so a task with a marker never runs again
    with write_guard(entry):
        write_json(marker, outcome)
    return outcome


def fill_rows(entry: Path, name: str, shape: tuple, dtype, tasks: list, *, n_jobs: int, desc: str) -> list[dict]:
    """Write every task's block into the array ``entry/name`` in parallel threads; resumable.

    ``tasks`` are ``(where, compute)`` pairs: ``compute() -> (block or None, outcome)``
    puts ``block`` into ``array[where]`` and returns a JSON-able ``outcome``; the outcomes
    come back in task order. ``entry`` is a folder being built under :func:`entry_lock`;
    ``n_jobs`` counts threads (joblib convention), ``desc`` labels the progress bar.

    The array is written in place into ``<name>.partial`` (never gathered from part files,
    so the disk holds it once) and each finished task leaves a JSON marker in ``parts/``:
    a run killed half-way resumes with the tasks it had not finished. At the end the array
    is renamed to ``name`` and ``parts/`` removed.
    """
    import shutil

    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits
    from .progress import progress_bar

    parts, partial_path = entry / _PARTS, entry / f"{name}.partial"
    with write_guard(entry):
        parts.mkdir(exist_ok=True)
        _remove_stale_temporaries(entry)
        out = _resumable(partial_path, shape, dtype) if partial_path.exists() else None
        if out is None:
            for marker in parts.glob("*.json"):  # their blocks went with the array
                marker.unlink()
            out = _allocate(partial_path, shape, dtype)
    markers = [parts / f"{n:06d}.json" for n in range(len(tasks))]
    outcomes = [_read_marker(marker) for marker in markers]
    pending = [n for n, outcome in enumerate(outcomes) if outcome is None]
    # Threads, not processes: decoding, FFT, BLAS and numpy's loops release the GIL, and
    # every thread writes into the one memory map; BLAS is held to one thread per worker.
    with threadpool_limits(limits=1, user_api="blas"):
        jobs = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
            delayed(_fill_one)(out, tasks[n][0], tasks[n][1], markers[n], entry) for n in pending)
        for n, outcome in progress_bar(zip(pending, jobs), total=len(pending), desc=desc, unit="clip"):
            outcomes[n] = outcome
    with write_guard(entry):
        out.flush()
        del out
        os.replace(partial_path, entry / name)
        shutil.rmtree(parts)
    return outcomes


# ---------------------------------------------------------------- cleaning

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
    """Whether another process holds :func:`entry_lock` on ``entry`` (it is being built)."""
    import fcntl

    lock = entry if entry.name.endswith(".lock") else entry.with_name(entry.name + ".lock")
    if not lock.is_file():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


#: kinds of cache entry that ``clean`` keeps: material downloaded once (musicnn's published
#: checkpoints, :mod:`genrestudy.musicnn_weights`), not derived from the study's inputs
KEPT_KINDS = frozenset({"musicnn-weights"})


def clean_caches(root: Path | None = None, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Remove every entry of the cache folder (but :data:`KEPT_KINDS`); print the bytes freed per kind and in all.

    Entries another process is building (their lock is held) are left alone.

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
    """
    import shutil

    root = Path(root or paths.cache_dir())
    verb = "would free" if dry_run else "freed"
    removed = []
    for kind in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if kind.name in KEPT_KINDS:
            print(f"{kind.name}: kept (downloaded, not derived; remove {kind} by hand to fetch it again)")
            continue
        entries = [(entry, _size(entry)) for entry in sorted(kind.iterdir()) if not _in_use(entry)]
        if not dry_run:
            for entry, _ in entries:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            if not any(kind.iterdir()):
                kind.rmdir()
        removed += entries
        count = sum(1 for entry, _ in entries if not entry.name.endswith(".lock"))
        print(f"{kind.name}: {count} entries, {verb} {format_bytes(sum(size for _, size in entries))}")
    count = sum(1 for entry, _ in removed if not entry.name.endswith(".lock"))
    print(f"cache {root}: {count} entries in all, {verb} {format_bytes(sum(size for _, size in removed))}"
          + (" (dry run)" if dry_run else ""))
    return removed


def main(argv: list[str] | None = None) -> int:
    """``python -m genrestudy.cache clean [--dry-run] [--root FOLDER]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m genrestudy.cache", description="Manage the study's caches.")
    commands = parser.add_subparsers(dest="command", required=True)
    clean = commands.add_parser("clean", help="remove every cache entry (images, signals, features, models, ...)")
    clean.add_argument("--dry-run", action="store_true", help="list the sizes only, remove nothing")
    clean.add_argument("--root", type=Path, default=None, help="cache folder (default: GENRESTUDY_CACHE or data/cache)")
    args = parser.parse_args(argv)
    clean_caches(args.root, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
