"""Spectrogram images → frozen ImageNet backbone features (the hybrid model's first half).

A frozen backbone (:func:`genrestudy.extractors.backbones.build_backbone`: ResNet-50 by default, the
paper's, closed with global average pooling) turns each image into one vector (2048 numbers
for ResNet-50), after the backbone's own ``preprocess_input`` on its 0–255 values.

Extraction streams batches from the memory-mapped image cache (the image set is never
copied into memory) and prepares the next batch on a background thread while the current
one runs through a compiled inference function, in the precision
:func:`genrestudy.device.resolve_precision` gives for inference (bfloat16 on a GPU or a CPU
with bf16 instructions, else float32) with float32 output. Features are cached under a key
of everything that determines them, and checked for degenerate values. The projection
figure is :func:`genrestudy.report.plots.features.plot_feature_projection`.

Only Keras 3 APIs are used, so the same code runs under ``KERAS_BACKEND=tensorflow``,
``jax`` or ``torch``; Keras is imported only when a network is built or run.
"""
from __future__ import annotations

import logging
import mmap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache, device
from ..cache_check import expect_array
from ..efficiency import PeakRSS
from .backbones import BACKBONES, backbone_spec, build_backbone, preprocess_images, weights_identity
from ..signals.images import ImageSet
from ..signals.segments import LabelledSegments, open_segment_entry

log = logging.getLogger(__name__)

_CACHE_KIND = "features"
# Bump when a change in this module changes the numbers a cache entry holds.
_FORMAT_VERSION = 1


# ---------------------------------------------------------------- the feature set

@dataclass
class FeatureSet(LabelledSegments):
    """Features of a data set, one row of :attr:`segments` per feature row.

    Attributes
    ----------
    root : Path or None
        The cache entry folder (``features.npy``, ``segments.csv``, ``meta.json``);
        None for tables built in memory or read from elsewhere.
    features : np.ndarray
        ``(n_segments, n_features)`` float32, possibly a read-only memmap.
    segments : pd.DataFrame
        ``segment_id``, ``track_id``, ``label`` and, for image-derived features,
        ``segment`` and ``path``.
    meta : dict
        Backbone, weights identity, image-cache key, precision, ``synthetic``, ...
    """

    root: Path | None
    features: np.ndarray
    segments: pd.DataFrame
    meta: dict = field(default_factory=dict)


def open_feature_set(root: Path, n_features: int | None = None) -> FeatureSet:
    """Open a complete feature cache entry (features memory-mapped read-only), checked; ``n_features``:
    the width the caller expects (default: its backbone's)."""
    # read_segments inside: a genre named NA or None stays a label
    root, meta, features, segments = open_segment_entry(root, "features.npy", what="feature",
                                                        builder="extract_features")
    if n_features is None and meta.get("backbone") in BACKBONES:
        n_features = backbone_spec(meta["backbone"]).n_features
    expect_array(features, what=f"{root.name}/features.npy", shape=(None, n_features), dtype=np.float32)
    if len(segments) != features.shape[0]:
        raise cache.CacheError(f"{root}: {len(segments)} segment rows but {features.shape[0]} feature rows; "
                               "delete it to rebuild")
    return FeatureSet(root=root, features=features, segments=segments, meta=meta)


FeatureSet._reopen = staticmethod(open_feature_set)


# ---------------------------------------------------------------- streaming extraction

def _release_pages(images: np.ndarray, start: int, stop: int) -> None:
    """Unmap rows ``start:stop`` of a memory-mapped ``images`` from this process.

    Pages of a mapped file that were read count in the process's resident memory until the
    kernel needs them back, so streaming a large image set would look like holding it all.
    The pages stay in the page cache; only this process's mapping of them is dropped. Only
    read-only maps qualify: dropping pages of a copy-on-write map would discard its edits.
    """
    mm = getattr(images, "_mmap", None)
    if (mm is None or getattr(images, "mode", None) != "r" or not hasattr(mmap, "MADV_DONTNEED")
            or not images.flags.c_contiguous or stop <= start):
        return
    # byte positions of the rows inside the mapping (``images`` may be a view into it)
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    first = images[start:stop].ctypes.data - base
    last = first + images[start:stop].nbytes
    page = mmap.PAGESIZE
    begin, end = -(-first // page) * page, (last // page) * page
    if end > begin:
        mm.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def stream_features(model, images: np.ndarray, *, backbone: str = "ResNet50", batch_size: int = 32,
                    progress: bool = True, desc: str = "features") -> np.ndarray:
    """Run ``model`` over ``images`` batch by batch; the next batch is prepared while one computes.

    Parameters
    ----------
    model : keras.Model
        From :func:`genrestudy.extractors.backbones.build_backbone`.
    images : np.ndarray
        ``(n, size, size)`` grey or ``(n, size, size, 3)`` RGB uint8 images, typically a
        read-only memmap; only one batch (plus the one being prepared) is in memory at a time.
    backbone : str
        Whose ``preprocess_input`` to apply (the one ``model`` was built for).
    batch_size : int
        Images per call; every call gets exactly this many (the last batch is padded), so the
        compiled inference function is traced once.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Label of the progress bar.

    Returns
    -------
    np.ndarray
        ``(n, n_features)`` float32.
    """
    from ..progress import progress_bar

    n = len(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"expected (n, size, size) grey or (n, size, size, 3) RGB images, got shape {images.shape}")
    n_features = int(model.output.shape[-1])
    out = np.empty((n, n_features), dtype=np.float32)
    if n == 0:
        return out

    def prepare(start: int) -> np.ndarray:
        stop = min(start + batch_size, n)
        chunk = np.array(images[start:stop])  # a copy, so the mapped pages can be let go
        _release_pages(images, start, stop)
        if chunk.ndim == 3:
            chunk = np.repeat(chunk[..., None], 3, axis=-1)
        batch = preprocess_images(chunk, backbone=backbone)
        if stop - start < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - (stop - start), *batch.shape[1:]), batch.dtype)])
        return batch

    starts = range(0, n, batch_size)
    with ThreadPoolExecutor(max_workers=1) as pool, \
            progress_bar(total=n, desc=desc, unit="img", enabled=progress) as bar:
        pending = pool.submit(prepare, starts[0])
        for i, start in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(prepare, starts[i + 1])
            stop = min(start + batch_size, n)
            out[start:stop] = np.asarray(model.predict_on_batch(batch))[: stop - start]
            bar.update(stop - start)
    return out


def feature_cache_key(image_set: ImageSet, *, backbone: str, weights_id: str, input_size: int,
                      precision: str) -> str:
    """Key of a feature cache entry: the image cache, the network, its weights, the arithmetic, versions."""
    import keras

    backend = keras.config.backend()
    return cache.cache_key(f"features-v{_FORMAT_VERSION}", image_set.key, backbone, weights_id, input_size,
                           precision, backend, cache.library_versions("keras", backend, "numpy"))


def extract_features(image_set: ImageSet, *, backbone: str = "ResNet50", weights: str | Path | None = None,
                     input_size: int | None = None, batch_size: int = 32, precision: str = "auto",
                     seed: int = 0, cache_root: Path | None = None, progress: bool = True) -> FeatureSet:
    """Features of every image of ``image_set`` from a frozen backbone, computed once and cached.

    Parameters
    ----------
    image_set : ImageSet
        The cached mel images (from :func:`genrestudy.run.study.image_set`).
    backbone : str
        One of :data:`genrestudy.extractors.backbones.BACKBONES`; ``"ResNet50"`` (2048 features) is the paper's.
    weights : {"imagenet", None} or path
        See :func:`genrestudy.extractors.backbones.build_backbone`. None (random initialisation) is the
        offline demo setting.
    input_size : int, optional
        Side the backbone runs at (default: its own, 224 for ResNet-50).
    batch_size : int
        Images per inference call. Only speed and memory depend on it (on this study's 2-core
        CPU, 16, 32 and 64 ran at the same speed; 64 needs ~170 MB more), so it is not part
        of the key.
    precision : {"auto", "float32", "bfloat16", "float16"}
        Compute precision; ``"auto"`` follows :func:`genrestudy.device.resolve_precision` for
        inference. The resolved precision is part of the key.
    seed : int
        Seed of the random initialisation when ``weights`` is None.
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    FeatureSet
        ``features`` (n_segments × n_features float32, memory-mapped), ``segments`` as in
        the image set, ``meta`` with the backbone, weights identity, image-cache key,
        preprocessing, precision and the measured ``extraction`` throughput and peak memory.
    """
    spec = backbone_spec(backbone)
    input_size = int(input_size or spec.input_size)
    resolved = device.resolve_precision(precision, training=False)
    weights_id = weights_identity(weights, seed=seed)
    key = feature_cache_key(image_set, backbone=spec.name, weights_id=weights_id,
                            input_size=input_size, precision=resolved)
    settings = dict(backbone=spec.name, weights=weights, input_size=input_size, batch_size=batch_size,
                    precision=resolved, seed=seed, progress=progress)
    recorded = {"weights": weights_id, "precision_requested": precision}
    return cache.open_or_build(_CACHE_KIND, key, open_entry=partial(open_feature_set, n_features=spec.n_features),
                               root=cache_root,
                               build=lambda entry: {**_extract_into(entry, image_set, **settings), **recorded})


def _extract_into(entry: Path, image_set: ImageSet, *, backbone: str, weights, input_size: int, batch_size: int,
                  precision: str, seed: int, progress: bool) -> dict:
    """Extract the features into the cache entry ``entry``; its metadata (without kind and key)."""
    import keras

    spec = backbone_spec(backbone)
    image_size = int(image_set.images.shape[1])
    model = build_backbone(spec.name, weights=weights, image_size=image_size, input_size=input_size,
                           precision=precision, seed=seed)
    with PeakRSS() as memory:
        started = time.perf_counter()
        features = stream_features(model, image_set.images, backbone=spec.name, batch_size=batch_size,
                                   progress=progress, desc=f"{spec.name} features")
        seconds = time.perf_counter() - started
    check_features(features)
    rate = len(features) / seconds if seconds > 0 else float("nan")
    log.info("%s: %d images -> %d features in %.1f s (%.1f img/s, %s, peak RSS %.0f MB)",
             spec.name, len(features), features.shape[1], seconds, rate, precision, memory.peak_mb)
    cache.save_array(entry / "features.npy", features)
    cache.write_csv(entry / "segments.csv", image_set.segments.reset_index(drop=True))
    return {
        "backbone": spec.name, "n_features": int(features.shape[1]), "n_segments": int(len(features)),
        "weights_source": None if weights is None else str(weights), "seed": int(seed),
        "image_cache": image_set.key, "image_size": image_size, "input_size": input_size,
        "preprocessing": spec.preprocessing_note, "precision": precision, "synthetic": image_set.synthetic,
        "keras_backend": keras.config.backend(), "device": device.accelerator(), "bn_folded": True,
        "versions": cache.library_versions("keras", keras.config.backend(), "numpy"),
        "extraction": {"seconds": round(seconds, 3), "images_per_second": round(rate, 2),
                       "batch_size": int(batch_size), "peak_rss_mb": round(memory.peak_mb, 1)},
    }


# ---------------------------------------------------------------- checks and views

def feature_summary(features: np.ndarray) -> pd.Series:
    """Numbers that show whether features carry information (not constant, not degenerate).

    Constancy and sameness are judged relative to the largest magnitude in the table, so the
    check means the same at any scale (a randomly initialised network can output ~1e-13).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected a non-empty (rows, dims) feature table, got shape {x.shape}")
    finite = np.isfinite(x)
    clean = np.where(finite, x, 0.0)
    scale = float(np.abs(clean).max())
    spread = clean.std(axis=0)
    distinct = len(np.unique(np.round(clean / scale, 6), axis=0)) if scale > 0 else 1
    norms = np.linalg.norm(clean, axis=1)
    return pd.Series({
        "rows": x.shape[0], "dims": x.shape[1],
        "non_finite_values": int((~finite).sum()),
        "constant_dims_fraction": float(np.mean(spread <= 1e-6 * scale)),
        "zero_dims_fraction": float(np.mean(np.all(clean == 0, axis=0))),
        "distinct_rows": int(distinct),
        "max_abs_value": scale,
        "row_norm_min": float(norms.min()),
        "row_norm_max": float(norms.max()),
    }, dtype=object)


def check_features(features: np.ndarray) -> pd.Series:
    """Raise ValueError if features are non-finite, all constant or identical across rows.

    Returns :func:`feature_summary` of the features when they pass.
    """
    summary = feature_summary(features)
    problems = []
    if summary["non_finite_values"]:
        problems.append(f"{int(summary['non_finite_values'])} non-finite values")
    if summary["rows"] > 1 and summary["constant_dims_fraction"] >= 1.0:
        problems.append("every dimension is constant over the rows")
    if summary["rows"] > 1 and summary["distinct_rows"] < 2:
        problems.append("all rows are identical")
    if problems:
        raise ValueError(f"degenerate features ({'; '.join(problems)}): check the images and the preprocessing")
    return summary


def project_features(features: np.ndarray, *, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D projection of standardised features: ``"pca"`` or ``"tsne"`` (scikit-learn)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        reduced = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    raise ValueError(f"unknown projection method {method!r}; expected 'pca' or 'tsne'")
