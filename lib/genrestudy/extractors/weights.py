"""The ImageNet weights a run needs: fetched before the run starts, or one line saying how to get them.

Keras downloads a backbone's ImageNet weights the first time its constructor is called with
``weights="imagenet"``, into ``<KERAS_HOME>/models`` with the file's hash checked. A
whole-study run should not learn in its fourth hour that a file is missing, so
``./run_all.sh --profile paper`` fetches every file its backbones need before any notebook
runs (:func:`fetch_imagenet_weights`), through Keras's own download: Keras's URL and hash,
Keras's progress bar. Offline, one line names the file, the folder it goes into and the
command that fetches it on a connected machine.

A local copy replaces the download: ``GENRESTUDY_WEIGHTS`` (``./run_all.sh --weights PATH``)
names a folder holding Keras's file names, or one file
(:func:`genrestudy.extractors.backbones.imagenet_weights_path` says which backbone a file stands for).
A file already in place is used as it is, without a download.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .backbones import WEIGHTS_ENV, backbone_spec, imagenet_weights_path


class WeightsUnavailable(FileNotFoundError):
    """ImageNet weights that are neither in place nor downloadable; ``str(err)`` is one line."""


@dataclass(frozen=True)
class ImagenetSource:
    """Where Keras downloads a backbone's ImageNet no-top weights from."""

    file: str
    url: str
    file_hash: str | None  # None: Keras checks no hash for this file (MobileNetV2's)


class _Asked(Exception):
    def __init__(self, fname, origin, file_hash):
        super().__init__(fname)
        self.source = ImagenetSource(str(fname), str(origin), file_hash)


@contextmanager
def _keras_download_recorded():
    """Keras's download replaced by a recorder that stops the constructor at its first download."""
    from keras.src.utils import file_utils

    def record(fname=None, origin=None, *args, file_hash=None, md5_hash=None, **kwargs):
        raise _Asked(fname, origin, file_hash or md5_hash)

    original = file_utils.get_file
    file_utils.get_file = record
    try:
        yield
    finally:
        file_utils.get_file = original


def imagenet_source(backbone: str = "ResNet50", input_size: int | None = None) -> ImagenetSource:
    """The file name, URL and hash Keras's own constructor of ``backbone`` downloads, asked of Keras.

    The bare network is built (a few seconds, nothing downloaded) and stopped at its download,
    so the URL and hash are those of the installed Keras, never a copy of ours.
    """
    import keras

    spec = backbone_spec(backbone)
    size = int(input_size or spec.input_size)
    constructor = getattr(keras.applications, spec.name)
    try:
        with _keras_download_recorded():
            constructor(weights="imagenet", include_top=False, pooling=None, input_shape=(size, size, 3))
    except _Asked as asked:
        return asked.source
    finally:
        keras.backend.clear_session()
    raise RuntimeError(f"keras.applications.{spec.name} downloaded nothing for weights='imagenet'")


def fetch_command(source: ImagenetSource, folder: Path) -> str:
    """The shell command that fetches ``source`` on a connected machine, and where the file goes here."""
    check = f" (md5/sha256 {source.file_hash})" if source.file_hash else ""
    return (f"curl -fLo {source.file} {source.url}{check}, then copy it into {folder} "
            f"or give it with ./run_all.sh --weights FILE ({WEIGHTS_ENV}=FILE)")


def fetch_imagenet_weights(backbone: str = "ResNet50", input_size: int | None = None) -> Path:
    """The path of ``backbone``'s ImageNet no-top weights, downloaded first when missing.

    Returns at once when the file is in place (the Keras cache, or a local copy given by
    ``GENRESTUDY_WEIGHTS``). Otherwise Keras's own ``get_file`` downloads it into
    ``<KERAS_HOME>/models`` with Keras's URL, hash check and progress bar.

    Raises
    ------
    WeightsUnavailable
        The file is missing and cannot be downloaded here (offline), or ``GENRESTUDY_WEIGHTS``
        names a folder without it; one line with the file, the folder and the command.
    """
    import os

    from keras.src.utils import file_utils

    path = imagenet_weights_path(backbone, input_size)
    if path.is_file():
        return path
    if os.environ.get(WEIGHTS_ENV):
        raise WeightsUnavailable(f"{WEIGHTS_ENV}={os.environ[WEIGHTS_ENV]} holds no {path.name} for {backbone}: "
                                 f"put it at {path}, or unset {WEIGHTS_ENV} to let Keras download it")
    source = imagenet_source(backbone, input_size)
    print(f"fetching {backbone}'s ImageNet weights: {source.url} -> {path.parent}"
          + (" (hash checked)" if source.file_hash else ""), flush=True)
    try:
        fetched = file_utils.get_file(source.file, source.url, cache_subdir="models", file_hash=source.file_hash)
    except Exception as exc:  # Keras's download raises a bare Exception ("URL fetch failure on ...")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsUnavailable(f"{source.file} ({backbone}'s ImageNet weights) is not in {path.parent} and "
                                 f"could not be downloaded ({reason}); on a connected machine: "
                                 f"{fetch_command(source, path.parent)}") from None
    return Path(fetched)
