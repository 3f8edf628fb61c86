"""Content-keyed, atomically written caches.

A cache entry lives in ``<cache_dir>/<kind>/<key>/``; the key is a hash of everything
that determines the entry (input manifest, parameters, versions of the libraries that
shape the numbers). An entry counts as complete only once its ``meta.json`` exists, and
``meta.json`` is always written last, so an interrupted run never leaves a stale entry
that looks finished. ``meta.json`` lists every file of the entry with its size, CRC-32 and
(arrays) shape and dtype (:mod:`genrestudy.cache_check`); an entry is opened only once they
match, and rebuilt, with one line saying why, when they do not.

The cache folder holds a marker file (:data:`ROOT_MARKER`) from its creation and each entry
a stamp (:data:`ENTRY_STAMP`) from the start of its build, so that ``clean`` removes only
what the study wrote and refuses a folder that is not a study cache.
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

from . import cache_check, paths

META_FILE, ENTRY_STAMP, ROOT_MARKER = cache_check.META_FILE, cache_check.ENTRY_STAMP, cache_check.ROOT_MARKER
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
    """Mark ``entry`` complete by writing its ``meta.json`` (always the last file written).

    ``meta`` gets ``files``: the size, CRC-32 and (arrays) shape and dtype of every file of
    the entry, which :func:`open_checked` compares before the entry is used.
    """
    write_json(entry / META_FILE, {**meta, "files": cache_check.record_files(entry)})


def check_entry(entry: Path) -> dict:
    """The metadata of the complete ``entry`` once its files match what was recorded.

    Raises
    ------
    CacheError
        No ``meta.json``, or one that cannot be read.
    genrestudy.cache_check.EntryMismatch
        A file is missing, of another size, shape or dtype, or its bytes changed (a ``ValueError``).
    """
    if not is_complete(entry):
        raise CacheError(f"{entry} is not a complete cache entry (no {META_FILE})")
    meta = read_meta(entry)
    if not isinstance(meta, dict):
        raise CacheError(f"cache entry {entry} has a {META_FILE} that is not an object")
    cache_check.check_files(entry, meta.get("files"))
    return meta


def mark_root(root: Path) -> Path:
    """Create the cache folder ``root`` if needed, with its :data:`ROOT_MARKER` when the study creates it.

    A folder that already holds other things is not marked (it may be a user's own folder,
    named by mistake); ``clean`` then removes only the entries it recognises there.
    """
    root = Path(root)
    created = not root.exists()
    make_writable_dir(root)
    marker = root / ROOT_MARKER
    # importing genrestudy may already have put numba's cache folder there (genrestudy/__init__.py)
    if not marker.exists() and (created or all(p.name == "numba" for p in root.iterdir())):
        with write_guard(root):
            marker.write_text("genrestudy cache folder: entries <kind>/<key>/ with meta.json; "
                              "python -m genrestudy.cache clean removes them\n")
    return root


def _stamp_entry(entry: Path, kind: str, key: str) -> None:
    with write_guard(entry):
        (entry / ENTRY_STAMP).write_text(json.dumps({"kind": kind, "key": key}))


def open_checked(kind: str, entry: Path, open_entry: Callable[[Path], T]) -> T | None:
    """``open_entry(entry)`` of a complete entry whose files match their record, or None.

    A damaged entry (a changed file, an unreadable table) is logged in one line; None then
    tells the caller to build it again.
    """
    if not is_complete(entry):
        return None
    try:
        check_entry(entry)
        return open_entry(entry)
    except (CacheError, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s cache %s is damaged (%s); rebuilding it", kind, entry, str(exc).splitlines()[0][:200])
        return None


def write_entry(kind: str, key: str, files: dict[str, Callable[[Path], None]], meta: dict | None = None,
                root: Path | None = None) -> Path:
    """Write the entry ``kind/key`` of ``files`` (name -> ``writer(path)``) and finish it; returns its folder."""
    root = mark_root(Path(root or paths.cache_dir()))
    entry = entry_dir(kind, key, root)
    make_writable_dir(entry.parent)
    with entry_lock(entry):
        (entry / META_FILE).unlink(missing_ok=True)
        make_writable_dir(entry)
        _stamp_entry(entry, kind, key)
        for name, writer in files.items():
            writer(entry / name)
        finish(entry, {"kind": kind, "key": key, **(meta or {})})
    return entry


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
    root = Path(root or paths.cache_dir())
    entry = entry_dir(kind, key, root)
    if is_complete(entry):
        try:
            check_entry(entry)
            return open_entry(entry)
        except (CacheError, OSError, ValueError, KeyError, TypeError):
            pass  # damaged: said and rebuilt below, under the lock
    mark_root(root)
    make_writable_dir(entry.parent)
    with entry_lock(entry):
        # finished by another process while this one waited, or damaged (one line, then rebuilt)
        found = open_checked(kind, entry, lambda e: (open_entry(e),))
        if found is not None:
            return found[0]
        (entry / META_FILE).unlink(missing_ok=True)
        make_writable_dir(entry)
        _stamp_entry(entry, kind, key)
        meta = build(entry)
        finish(entry, {"kind": kind, "key": key, **meta})
    check_entry(entry)
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


# ---------------------------------------------------------------- cleaning (python -m genrestudy.cache clean)

from .cache_clean import KEPT_KINDS, NotACacheError, clean_caches, format_bytes, main  # noqa: E402,F401

if __name__ == "__main__":
    raise SystemExit(main())
