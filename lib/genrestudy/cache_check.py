"""What a cache entry holds, recorded when it is written and checked when it is opened.

Every file of a complete entry is listed in its ``meta.json`` under ``files``: its size,
a CRC-32 of its bytes and, for a ``.npy`` array, its shape and dtype. Opening the entry
checks them all, so a truncated, bit-flipped, re-typed (float16 written over float32) or
reshaped array, or a shortened table, is found before anything reads it.

CRC-32 (zlib, over the file in 16 MiB blocks) rather than a cryptographic hash: the check
is against damage and stale files, not forgery, and it reads about 1 GB/s on one core
(``bench/cache_verify.py`` measures it against building the entry). A file checked once
in a process is not checked again while its inode, size and change time stay the same.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

META_FILE = "meta.json"
#: the file that makes a folder a study cache folder (written when the study creates it)
ROOT_MARKER = ".genrestudy-cache"
#: the file that makes a folder an entry of the study's (written before the entry is built)
ENTRY_STAMP = ".genrestudy-entry"
#: files of an entry that are not listed in its record: its metadata and its stamp
SKIPPED_NAMES = (META_FILE, ENTRY_STAMP)
_BLOCK = 16 << 20
# (path, inode, size, mtime_ns, ctime_ns) -> crc of files already read in this process
_checked: dict[tuple, str] = {}


class EntryMismatch(ValueError):
    """A cache entry's files differ from what was recorded when it was written (one line)."""


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_crc32(path: Path) -> str:
    """CRC-32 of the bytes of ``path``, as 8 hex digits (read in 16 MiB blocks)."""
    stamp = _stamp(path)
    if stamp in _checked:
        return _checked[stamp]
    crc = 0
    with open(path, "rb", buffering=0) as fh:
        buffer = bytearray(_BLOCK)
        view = memoryview(buffer)
        while True:
            n = fh.readinto(buffer)
            if not n:
                break
            crc = zlib.crc32(view[:n], crc)
    digest = f"{crc:08x}"
    _checked[stamp] = digest
    return digest


def npy_layout(path: Path) -> tuple[tuple[int, ...], str, int]:
    """``(shape, dtype, data offset)`` from the header of a ``.npy`` file (no data read)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
        return tuple(int(n) for n in shape), dtype.str, fh.tell()


def file_record(path: Path) -> dict:
    """``{"bytes", "crc32"}`` of a file, plus ``"shape"`` and ``"dtype"`` for a ``.npy`` array."""
    record = {"bytes": path.stat().st_size, "crc32": file_crc32(path)}
    if path.suffix == ".npy":
        shape, dtype, _ = npy_layout(path)
        record.update(shape=list(shape), dtype=dtype)
    return record


def _entry_files(entry: Path) -> list[Path]:
    return sorted(p for p in entry.rglob("*") if p.is_file() and not p.is_symlink()
                  and p.name not in SKIPPED_NAMES and not (p.name.startswith(".") and p.name.endswith(".tmp")))


def record_files(entry: Path) -> dict[str, dict]:
    """:func:`file_record` of every file of ``entry`` (relative names), for its ``meta.json``."""
    entry = Path(entry)
    return {p.relative_to(entry).as_posix(): file_record(p) for p in _entry_files(entry)}


def check_files(entry: Path, recorded) -> None:
    """Raise :class:`EntryMismatch` (naming the file) unless ``entry`` holds exactly the ``recorded`` files.

    Sizes, ``.npy`` shapes and dtypes are compared before any content is read.
    """
    entry = Path(entry)
    if not isinstance(recorded, dict):
        raise EntryMismatch("no checksums recorded (written by an older genrestudy)")
    for name, want in recorded.items():
        path = entry / name
        if not path.is_file():
            raise EntryMismatch(f"{name} is missing")
        if not isinstance(want, dict):
            raise EntryMismatch(f"{name} has no record")
        if "shape" in want:
            try:
                shape, dtype, _ = npy_layout(path)
            except (OSError, ValueError) as exc:
                raise EntryMismatch(f"{name} is not a readable .npy array ({exc})") from None
            if list(shape) != want["shape"] or dtype != want.get("dtype"):
                raise EntryMismatch(f"{name} is {shape} {np.dtype(dtype).name}, "
                                    f"{tuple(want['shape'])} {np.dtype(want.get('dtype')).name} was written")
        if path.stat().st_size != want.get("bytes"):
            raise EntryMismatch(f"{name} holds {path.stat().st_size} bytes, {want.get('bytes')} were written")
    for name, want in recorded.items():
        if file_crc32(entry / name) != want.get("crc32"):
            raise EntryMismatch(f"{name} does not match the checksum recorded when it was written")


def expect_array(array: np.ndarray, *, what: str, shape: tuple, dtype) -> None:
    """Raise :class:`EntryMismatch` unless ``array`` has ``shape`` (None: any length) and ``dtype``.

    The caller's own expectation (the image size it asked for, its backbone's feature width),
    checked besides what the entry recorded about itself.
    """
    ok = array.ndim == len(shape) and all(want is None or got == want for got, want in zip(array.shape, shape))
    if not ok or array.dtype != np.dtype(dtype):
        wanted = "(" + ", ".join("n" if n is None else str(n) for n in shape) + ")"
        raise EntryMismatch(f"{what} is {array.shape} {array.dtype}, expected {wanted} {np.dtype(dtype).name}")
