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
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


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
