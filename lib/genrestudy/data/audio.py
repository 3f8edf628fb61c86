"""Audio files → mono float32 signals at the study's sample rate.

Decoding goes through libsndfile (``soundfile``: wav, au, flac, ogg, mp3), with librosa's
``audioread`` fallback for anything else a system decoder can read. Every failure
becomes an :class:`AudioError` whose message is one line, fit for a manifest's ``reason``.

A file is refused, not turned into wrong data, when its bytes are not the container its
extension names (:func:`container_error`), when its sample rate is implausible, or when its
samples are not finite or far out of range (:func:`load_audio` states the bounds).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from ..paths import SAMPLE_RATE

log = logging.getLogger(__name__)

#: Lowest and highest sample rates accepted. Telephone audio (8 kHz) is the lowest rate real
#: recordings use and 768 kHz the highest any converter offers; a header outside these
#: is corrupt, and resampling a few-hertz "clip" to 22050 Hz would blow it up thousands of times.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000

#: Largest |sample| accepted. Float audio is nominally within ±1 (PCM decodes to it exactly).
#: The mel images square the FFT in float32: one frame's power is at most
#: (n_fft · 1e4)² ≈ 4e14 for n_fft 2048 (4e17 summed over its bins), far below float32's
#: 3.4e38, whereas one 1e25 sample overflows to inf and blanks its whole segment.
MAX_MAGNITUDE = 1e4

#: Share of non-finite samples (NaN, ±inf) replaced by silence; beyond it the file is refused.
#: An isolated decoder glitch is tolerated; a clip that is mostly (or all) NaN is not audio.
NON_FINITE_TOLERANCE = 0.001

#: Frames decoded at a time. A file of at most this many frames (47 s at 44.1 kHz, 95 s at
#: 22050 Hz: every GTZAN clip) is decoded and resampled whole, as it always was; a longer one in
#: blocks of this size through soxr's streaming resampler (bit-identical to resampling it whole),
#: so that decoding a 2-hour file holds a few blocks, not the file (bench/long_audio.py).
BLOCK_FRAMES = 1 << 21

# extension → (the header it must start with, in words; the containers accepted under it)
_CONTAINERS = {
    ".au": ("no '.snd' header", {"au"}),
    ".wav": ("no 'RIFF', 'RF64' or 'FORM' header", {"wav", "aiff"}),
    ".flac": ("no 'fLaC' header", {"flac"}),
    ".ogg": ("no 'OggS' header", {"ogg"}),
    ".mp3": ("no ID3 tag or MPEG frame sync at the start", {"mp3"}),
}


class AudioError(ValueError):
    """A file that cannot be used as audio; ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class AudioInfo:
    """What decoding a file told us about it (before mixing and resampling).

    ``samples`` are the frames that decoded; ``declared_samples`` the frames its header
    announces (None: the container does not say, or this reader does not parse it).
    """

    sample_rate: int
    channels: int
    samples: int
    declared_samples: int | None = None

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def truncated(self) -> str | None:
        """One line when the file decodes noticeably shorter than its header says (a cut-off copy)."""
        declared = self.declared_samples
        if not declared or not self.sample_rate or declared - self.samples <= max(0.01 * declared,
                                                                                0.1 * self.sample_rate):
            return None
        return (f"decodes to {self.duration:.2f} s but its header says {declared / self.sample_rate:.2f} s "
                "(a truncated file?)")


def describe_os_error(exc: OSError, path) -> str:
    """One-line reason for an ``OSError`` met while opening or listing ``path``."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(path) else "file not found"
    return f"cannot read: {exc.strerror or type(exc).__name__}"


def _one_line(exc: BaseException, *names: str) -> str:
    text = str(exc)
    for name in names:
        text = text.replace(name, "<file>")
    text = re.sub(r"\s+", " ", text.strip()) or type(exc).__name__
    return text[:200]


def _open(path: Path):
    """``path`` opened for reading (through Python, so any name the OS accepts works)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            # a folder, pipe or device: opening a pipe would wait forever
            raise AudioError("not a regular file")
        if info.st_size == 0:
            raise AudioError("empty file (0 bytes)")
        return open(path, "rb")
    except OSError as exc:
        raise AudioError(describe_os_error(exc, path)) from None


def _after_id3(fh) -> bytes:
    """The first bytes after a leading ID3v2 tag and its zero padding (the start if none)."""
    fh.seek(0)
    head = fh.read(10)
    offset = 0
    if len(head) == 10 and head.startswith(b"ID3"):
        # the tag's size is 'syncsafe' (7 bits a byte); flag 0x10 says a 10-byte footer follows it
        size = sum((b & 0x7F) << shift for b, shift in zip(head[6:10], (21, 14, 7, 0)))
        offset = 10 + size + (10 if head[5] & 0x10 else 0)
    fh.seek(offset)
    return fh.read(4096).lstrip(b"\0")[:4]


def _is_mpeg_frame(b: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, then a valid version, layer, bitrate and rate."""
    return (len(b) == 4 and b[0] == 0xFF and b[1] & 0xE0 == 0xE0 and (b[1] >> 3) & 3 != 1
            and (b[1] >> 1) & 3 != 0 and b[2] >> 4 != 0xF and (b[2] >> 2) & 3 != 3)


def _container(fh) -> str | None:
    """Which container the magic bytes at the start of ``fh`` show (None: none known)."""
    fh.seek(0)
    head = fh.read(12)
    if head[:4] in (b".snd", b"dns."):  # big- and little-endian Sun/NeXT
        return "au"
    if (head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE") or head[:4] == b"riff":
        return "wav"                    # RIFF/RF64 WAVE, or Sony Wave64 ('riff' GUID)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"OggS":
        return "ogg"
    tail = _after_id3(fh)
    if tail == b"fLaC":
        return "flac"
    return "mp3" if _is_mpeg_frame(tail) else None


def container_error(fh, suffix: str) -> str | None:
    """Why the bytes of ``fh`` are not the container its extension ``suffix`` names (None: they are).

    libsndfile decodes a header-less ``.au`` as raw 8 kHz µ-law and libmpg123 hunts for a
    frame anywhere in a file, so any bytes would become a "track"; the magic bytes at the
    start must match. Extensions not listed in ``_CONTAINERS`` are not checked.
    """
    missing, accepted = _CONTAINERS.get(suffix.lower(), ("", None))
    found = _container(fh)
    if accepted is None or found in accepted:
        return None
    detail = "the bytes are not audio of that format"
    if found:  # another container: libsndfile names it (asked only then: on junk, libmpg123 floods stderr)
        try:
            fh.seek(0)
            detail = f"the bytes are {sf.info(fh).format} audio: give the file its own extension"
        except Exception:  # a header but no readable audio behind it
            detail = f"the bytes start like {found.upper()}, not audio of that format"
    return f"not a {suffix.lower()} file: {missing} ({detail})"


def _fallback(path: Path, first_reason: str) -> tuple[np.ndarray, int]:
    """(frames × channels, rate) from librosa/audioread, for what libsndfile cannot read."""
    try:
        # from a path, libsndfile guesses a header-less file's format from its extension
        # (.au/.snd as µ-law, .vox, .gsm): refuse that guess rather than decode any bytes
        if sf.info(str(path)).format == "RAW":
            raise AudioError(f"cannot decode: {first_reason}")
    except (AudioError, UnicodeError):
        raise AudioError(f"cannot decode: {first_reason}") from None
    except Exception:  # libsndfile cannot open it from the path either: audioread may
        pass
    try:
        import librosa  # audioread fallback: slow to import, needed only for unusual formats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
        return np.ascontiguousarray(np.atleast_2d(y).T), int(rate)
    except Exception:
        raise AudioError(f"cannot decode: {first_reason}") from None


_AU_BYTES_PER_SAMPLE = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}


def _declared_frames(fh, container: str | None) -> int | None:
    """The frames a WAV, FLAC or AU header announces (None: unknown or not parsed)."""
    fh.seek(0)
    head = fh.read(1 << 16)
    if container == "flac" and head[:4] == b"fLaC" and len(head) >= 8 + 18:
        total = int.from_bytes(head[8 + 10:8 + 18], "big") & ((1 << 36) - 1)  # STREAMINFO's 36-bit count
        return total or None
    if container == "au" and head[:4] == b".snd" and len(head) >= 24:
        size, encoding, _, channels = (int.from_bytes(head[i:i + 4], "big") for i in (8, 12, 16, 20))
        width = _AU_BYTES_PER_SAMPLE.get(encoding)
        return size // (width * channels) if width and channels and size != 0xFFFFFFFF else None
    if container == "wav" and head[:4] == b"RIFF":
        offset, block_align = 12, 0
        while offset + 8 <= len(head):
            chunk, size = head[offset:offset + 4], int.from_bytes(head[offset + 4:offset + 8], "little")
            if chunk == b"fmt " and offset + 22 <= len(head):
                block_align = int.from_bytes(head[offset + 20:offset + 22], "little")
            if chunk == b"data":
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            offset += 8 + size + (size & 1)
    return None


_NATIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_messages(messages: list, capture: bool):
    """Collect in ``messages`` the lines a native decoder prints on file descriptor 2 inside the block
    (:class:`AudioStream` logs them as one line).

    libmpg123 (libsndfile's MP3 reader) writes warnings such as "Xing stream size off" or
    "Giving up resync" of a damaged MP3 straight to the process's stderr. Only MP3 and the
    audioread fallback are captured, one decode at a time (a lock), so that the window in which
    anything else printed would be caught is the decode itself.
    """
    if not capture:
        yield
        return
    with _NATIVE_LOCK, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(4096).decode("utf-8", "replace")
            messages.extend(line.strip() for line in text.splitlines() if line.strip())


class _SampleCheck:
    """The checks of :func:`load_audio` on decoded samples, block by block (one block: all of them)."""

    def __init__(self, expected: int):
        self.expected, self.seen, self.bad = expected, 0, 0

    def __call__(self, data: np.ndarray) -> np.ndarray:
        self.seen += data.size
        finite = np.isfinite(data)
        n_bad = data.size - int(np.count_nonzero(finite))
        self.bad += n_bad
        total = max(self.expected, self.seen)
        if self.bad > NON_FINITE_TOLERANCE * total:
            raise AudioError(f"{self.bad} of {total} samples are not finite (NaN or infinite; at most "
                             f"{NON_FINITE_TOLERANCE:.1%} are tolerated)")
        if n_bad:
            data = np.where(finite, data, np.float32(0))
        magnitude = np.abs(data)
        n_over = int(np.count_nonzero(magnitude > MAX_MAGNITUDE))
        if n_over:
            raise AudioError(f"{n_over} of {total} samples are out of range (largest magnitude "
                             f"{float(magnitude.max()):.3g}; float audio is nominally within ±1, "
                             f"accepted up to ±{MAX_MAGNITUDE:g})")
        return data


class AudioStream:
    """A file decoded block by block to mono float32 at ``sample_rate`` (see :func:`open_audio`).

    Iterate once; :attr:`info` is complete (``samples`` counted) when the iteration ends.
    """

    def __init__(self, path: Path, sample_rate: int | None, block_frames: int):
        self.path, self.sample_rate, self.block_frames = path, sample_rate, block_frames
        self.info: AudioInfo | None = None
        self._whole, self._expected = True, 0
        self._messages: list[str] = []

    def _native_blocks(self) -> Iterator[np.ndarray]:
        """(frames × channels) float32 blocks of the file at its own rate; sets :attr:`info` first."""
        path = self.path
        with _open(path) as fh:
            container = _container(fh)
            reason = container_error(fh, path.suffix)
            if reason:
                raise AudioError(reason)
            declared = _declared_frames(fh, container)
            fh.seek(0)
            capture = container == "mp3"
            try:
                with _native_messages(self._messages, capture):
                    sound = sf.SoundFile(fh)
                    rate, channels = int(sound.samplerate), int(sound.channels)
                    whole = self._whole = sound.frames <= self.block_frames
                    self._expected = sound.frames * channels
                    first = sound.read(-1 if whole else self.block_frames, dtype="float32", always_2d=True)
            except Exception as sf_exc:  # libsndfile reports every kind of bad file as its own error type
                first_reason = _one_line(sf_exc, repr(fh), str(path))
            else:
                self.info = AudioInfo(rate, channels, 0, declared)
                yield first
                while not whole and len(first):
                    try:
                        with _native_messages(self._messages, capture):
                            first = sound.read(self.block_frames, dtype="float32", always_2d=True)
                    except Exception as exc:
                        raise AudioError(f"cannot decode after {self.info.samples / rate:.1f} s: "
                                         f"{_one_line(exc, repr(fh), str(path))}") from None
                    yield first
                return
        # libsndfile's MPEG reader says this of any undecodable stream; the file was opened fine
        first_reason = first_reason.replace("File does not exist or is not a regular file (possibly a pipe?).",
                                            "Format not recognised.")
        with _native_messages(self._messages, True):
            data, rate = _fallback(path, first_reason)
        self.info = AudioInfo(rate, int(data.shape[1]), 0, declared)
        self._whole, self._expected = True, data.size
        yield data

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            yield from self._mono_blocks()
        finally:
            if self._messages:
                shown = re.sub(r"\s+", " ", "; ".join(dict.fromkeys(self._messages)))[:300]
                name = self.path.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                log.warning("%s: the decoder reported: %s", name if name.isprintable() else repr(name), shown)

    def _mono_blocks(self) -> Iterator[np.ndarray]:
        check = resampler = None
        for data in self._native_blocks():
            info = self.info
            if check is None:
                if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
                    raise AudioError(f"implausible sample rate {info.sample_rate} Hz (accepted: "
                                     f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz)")
                check = _SampleCheck(self._expected)
            if not len(data):
                continue
            self.info = info = AudioInfo(info.sample_rate, info.channels, info.samples + len(data),
                                         info.declared_samples)
            data = check(data)
            signal = data.mean(axis=1, dtype=np.float32) if info.channels > 1 else data[:, 0]
            if self.sample_rate is not None and info.sample_rate != self.sample_rate:
                import soxr

                if self._whole:  # the file in one block: resampled whole, as it always was
                    signal = soxr.resample(signal, info.sample_rate, self.sample_rate, quality="HQ")
                    yield np.ascontiguousarray(signal, dtype=np.float32)
                    continue
                if resampler is None:
                    resampler = soxr.ResampleStream(info.sample_rate, self.sample_rate, 1, dtype="float32",
                                                    quality="HQ")
                signal = resampler.resample_chunk(signal)
            yield np.ascontiguousarray(signal, dtype=np.float32)
        if self.info is not None and self.info.samples == 0:
            raise AudioError("no audio samples (0 frames)")
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True).astype(np.float32, copy=False)


def open_audio(path, *, sample_rate: int | None = SAMPLE_RATE, block_frames: int | None = None) -> AudioStream:
    """``path`` as an iterable of mono float32 blocks at ``sample_rate``, decoded as it is read.

    Memory stays within a few blocks of ``block_frames`` whatever the file's length. The checks
    and the signal are those of :func:`load_audio` (which joins the blocks): a file of at most
    ``block_frames`` (default :data:`BLOCK_FRAMES`) frames is one block, decoded and resampled whole.

    Raises
    ------
    AudioError
        While iterating, as :func:`load_audio` does.
    """
    return AudioStream(Path(path), sample_rate, int(block_frames or BLOCK_FRAMES))


def load_audio(path, *, sample_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode ``path`` to a mono float32 signal.

    Parameters
    ----------
    path : str or Path
        An audio file (wav, au, flac, ogg, mp3, ...); any name the OS accepts, also one
        that is not valid UTF-8.
    sample_rate : int or None
        Rate to return. The signal is resampled (soxr, high quality) only when the file is
        not already at this rate; ``None`` keeps the file's own rate.

    Returns
    -------
    signal : np.ndarray
        1-D float32, channels averaged to mono, finite values.
    info : AudioInfo
        The file's own rate, channel count, length in samples, and the length its header declares.

    Raises
    ------
    AudioError
        Unreadable, empty or non-audio file; bytes that are not the container the
        extension names; a rate outside ``MIN_SAMPLE_RATE``–``MAX_SAMPLE_RATE``; more than
        ``NON_FINITE_TOLERANCE`` of the samples not finite, or any above ``MAX_MAGNITUDE``
        (one-line message).

    Examples
    --------
    >>> signal, info = load_audio("blues.00000.wav")  # doctest: +SKIP
    >>> info.sample_rate, signal.dtype                # doctest: +SKIP
    (22050, dtype('float32'))
    """
    stream = open_audio(path, sample_rate=sample_rate)
    blocks = [block for block in stream if len(block)]
    signal = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return np.ascontiguousarray(signal, dtype=np.float32), stream.info


def probe_audio(path) -> AudioInfo:
    """Decode all of ``path`` (checking every sample as :func:`load_audio` does) without keeping it."""
    stream = open_audio(path, sample_rate=None)
    for _ in stream:
        pass
    return stream.info
