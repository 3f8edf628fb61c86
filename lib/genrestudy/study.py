"""The study's steps with the defaults every notebook shares.

Each notebook calls these with its own parameters; because every step is cached, a later
notebook that needs an earlier step's output gets it at once when that step already ran
with the same parameters, and computes it otherwise (so each notebook also runs alone).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import dataset, demo, paths
from .images import ImageParams, ImageSet, build_image_set

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where the audio comes from."""

    root: Path
    synthetic: bool

    @property
    def description(self) -> str:
        return f"SYNTHETIC demo data at {self.root}" if self.synthetic else f"audio data at {self.root}"


def locate_data(data: str = "auto", *, demo_clips_per_genre: int = 10, demo_seed: int = 0) -> DataSource:
    """Resolve the ``data`` parameter of the notebooks.

    Parameters
    ----------
    data : str
        ``"auto"``: GTZAN in ``data/gtzan`` if present, else the synthetic demo set (with a
        message saying where GTZAN goes); ``"demo"``: always the synthetic set;
        ``"gtzan"``: ``data/gtzan``, an error if absent; any other string: a folder holding
        a data set in one of the layouts of :mod:`genrestudy.dataset`.
    demo_clips_per_genre, demo_seed : int
        Size and seed of the synthetic set.
    """
    gtzan = paths.data_dir() / "gtzan"
    if data == "auto":
        if gtzan.is_dir() and any(gtzan.iterdir()):
            return DataSource(gtzan, synthetic=False)
        log.warning("no GTZAN at %s (%s); using the SYNTHETIC demo data set instead",
                    gtzan, dataset.GTZAN_HINT)
        data = "demo"
    if data == "demo":
        root = demo.generate_demo_dataset(paths.data_dir() / "demo", clips_per_genre=demo_clips_per_genre,
                                          seed=demo_seed)
        return DataSource(root, synthetic=True)
    root = gtzan if data == "gtzan" else Path(data).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no data set at {root}: {dataset.GTZAN_HINT}")
    return DataSource(root, synthetic=demo.is_synthetic(root))


def scan(source: DataSource, *, n_jobs: int = 2) -> pd.DataFrame:
    """The data manifest of ``source`` (cached)."""
    return dataset.scan_dataset(source.root, n_jobs=n_jobs)


def image_set(data: str = "auto", *, demo_clips_per_genre: int = 10, demo_seed: int = 0,
              n_jobs: int = -1, **image_params) -> ImageSet:
    """The mel images of a data set (notebook 01's product), built or taken from the cache.

    ``image_params`` are the fields of :class:`genrestudy.images.ImageParams` (``n_segments``,
    ``segment_seconds``, ``n_fft``, ``hop_length``, ``n_mels``, ``image_size``, ...).
    """
    source = locate_data(data, demo_clips_per_genre=demo_clips_per_genre, demo_seed=demo_seed)
    manifest = scan(source)
    return build_image_set(manifest, ImageParams(**image_params), synthetic=source.synthetic, n_jobs=n_jobs)
