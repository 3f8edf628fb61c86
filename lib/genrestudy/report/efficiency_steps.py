"""The steps Table 8 measures, each runnable alone in a fresh process, and the predictors it times.

:func:`genrestudy.efficiency.measure_step` runs ``"genrestudy.report.efficiency_steps:<function>"``
with JSON keyword arguments in a new Python process and samples its memory. Each function
here therefore takes only JSON-able arguments, rebuilds its inputs (from the caches of the
earlier steps, instant when they exist, or from arrays the parent wrote) and then runs
**exactly one step**: fitting the end-to-end model, fitting LightGBM, or extracting features.
The step's own product is never taken from a cache: its output goes to a throwaway folder
(or is not cached at all), so the measured time and memory are those of really computing it.

A step's process imports what that step needs and nothing else: this module imports only
numpy at its top, and each step names its frameworks (:func:`step`), which the child imports
before it records the memory "after the imports". The LightGBM fit therefore runs in a
process without Keras or TensorFlow (the bulk of a Keras step's memory before any work), reading the
features, labels and split the parent wrote for it (:func:`lightgbm_step_data`), as a
deployed LightGBM model would run.

:func:`end_to_end_predictor` and :func:`hybrid_predictor` are the two pipelines' segment
predictions at a chosen batch size (images in, class probabilities out), for
:func:`genrestudy.efficiency.latency`.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .. import device

log = logging.getLogger(__name__)

#: frameworks whose presence in a step's process Table 8 reports
FRAMEWORKS = ("keras", "tensorflow", "torch", "jax", "lightgbm")


def step(*imports: str) -> Callable:
    """Mark a measured step and the modules its process imports before it is measured.

    :func:`genrestudy.efficiency.measure_step` imports ``imports`` in the step's fresh process
    and then records its memory (``rss_before_mb``), so the frameworks' own footprint is
    reported apart from what the step allocates, and no step pays for another's frameworks.
    """
    def mark(func: Callable) -> Callable:
        func.step_imports = tuple(imports)
        return func

    return mark


def frameworks_loaded() -> list[str]:
    """The frameworks of :data:`FRAMEWORKS` this process has imported."""
    return [name for name in FRAMEWORKS if name in sys.modules]


_KERAS_STEP = ("keras", "genrestudy.run.study", "genrestudy.extractors.backbones", "genrestudy.extractors.features", "genrestudy.networks.endtoend",
               "genrestudy.methods")


def _inputs_and_images(inputs: dict):
    """The study inputs given as keywords (JSON through the step's subprocess), and their images."""
    from ..run import study

    given = study.StudyInputs(**inputs)
    return given, study.image_set(given)


def _images_and_split(inputs: dict):
    """The study inputs, their images and their split."""
    from ..run import study

    given, image_set = _inputs_and_images(inputs)
    return given, image_set, study.split(given, image_set.segments)


def limit_training_rows(split, max_train_images: int | None, *, seed: int = 0) -> np.ndarray:
    """``split`` with all but ``max_train_images`` training rows (a seeded random choice) marked ``"unused"``.

    None keeps the split as it is. A reduced measurement says so in Table 8; it is never
    scaled up to the full size.
    """
    values = np.asarray(split, dtype=object).copy()
    if max_train_images is None:
        return values
    train = np.flatnonzero(values == "train")
    if not 1 <= int(max_train_images):
        raise ValueError(f"max_train_images must be a positive number of images or None, got {max_train_images}")
    if max_train_images < len(train):
        keep = np.random.default_rng(seed).choice(train, size=int(max_train_images), replace=False)
        values[np.setdiff1d(train, keep)] = "unused"
    return values


@step(*_KERAS_STEP)
def end_to_end_fit_step(*, settings: dict | None = None, max_train_images: int | None = None, **inputs) -> dict:
    """Train the end-to-end ResNet-50 once, from scratch (its cache is a throwaway folder).

    Parameters
    ----------
    settings : dict, optional
        Overrides of the study's end-to-end settings (e.g. ``head_epochs``;
        :func:`genrestudy.methods.end_to_end.train_settings`).
    max_train_images : int, optional
        Train on this many training images only (a reduced measurement); None: all.
    **inputs
        Fields of :class:`genrestudy.run.study.StudyInputs` (the images, split, profile and weights).

    Returns
    -------
    dict
        ``seconds`` (training alone), ``epochs``, ``train_images``, ``device``, ``gpu_peak_mb``.
    """
    from ..networks import endtoend
    from ..methods import end_to_end

    given, image_set, split = _images_and_split(inputs)
    split = limit_training_rows(split, max_train_images, seed=given.split_seed)
    train_settings = end_to_end.train_settings(given, **(settings or {}))
    with tempfile.TemporaryDirectory(prefix="genrestudy-bench-endtoend-") as tmp:
        result = endtoend.train_end_to_end(image_set, split, settings=train_settings, cache_root=Path(tmp),
                                           progress=False)
        training = result.meta["training"]
    return {"seconds": float(training["seconds_total"]), "epochs": int(training["epochs"]),
            "train_images": int(training["split"]["train"]), "device": training["device"],
            "gpu_peak_mb": device.gpu_peak_mb()}


@contextmanager
def lightgbm_step_data(inputs, image_set, split) -> Iterator[dict]:
    """The LightGBM step's data, written for its process: the keywords :func:`lightgbm_fit_step` needs.

    The study's features of ``image_set`` (notebook 02's cache), their labels and ``split`` are
    saved as ``.npy`` files in a temporary folder, removed when the ``with`` block ends, so the
    step's process reads arrays and never imports the code that made them.
    """
    from ..run import study

    feature_set = study.feature_set(inputs, image_set, progress=False)
    with tempfile.TemporaryDirectory(prefix="genrestudy-lightgbm-step-") as tmp:
        np.save(Path(tmp) / "features.npy", np.asarray(feature_set.features))
        np.save(Path(tmp) / "labels.npy", np.asarray(feature_set.labels))
        np.save(Path(tmp) / "split.npy", np.asarray(split, dtype=str))
        yield {"data_dir": tmp, "num_class": len(feature_set.classes), "max_bin": int(inputs.max_bin),
               "early_stopping_rounds": inputs.early_stopping_rounds}


@step("lightgbm", "genrestudy.models.classifiers")
def lightgbm_fit_step(*, data_dir: str, num_class: int, max_bin: int, early_stopping_rounds: int | None,
                      params: dict | None = None, num_boost_round: int = 100, seed: int = 0) -> dict:
    """Fit LightGBM once on the features :func:`lightgbm_step_data` wrote (binning included, nothing cached).

    Parameters
    ----------
    data_dir, num_class, max_bin, early_stopping_rounds
        From :func:`lightgbm_step_data`: the arrays' folder and the study's binning and patience.
    params : dict
        LightGBM parameters (e.g. :data:`genrestudy.report.table8.PAPER_TABLE4_PARAMS`).
    num_boost_round, seed
        As in :func:`genrestudy.models.classifiers.fit_lightgbm`.

    Returns
    -------
    dict
        ``seconds`` (binning + boosting), ``best_iteration``, ``train_rows``, ``valid_accuracy``,
        ``frameworks`` (those this process had imported: LightGBM alone, no Keras).
    """
    from ..models import classifiers

    folder = Path(data_dir)
    X, labels = np.load(folder / "features.npy"), np.load(folder / "labels.npy")
    split = np.load(folder / "split.npy")
    started = time.perf_counter()
    train = classifiers.training_data(X, labels, split, num_class=num_class, max_bin=max_bin)
    fit = classifiers.fit_lightgbm(train, params or {}, num_boost_round=num_boost_round,
                                   early_stopping_rounds=early_stopping_rounds, seed=seed,
                                   num_threads=os.cpu_count() or 1)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "best_iteration": fit.best_iteration, "train_rows": int(len(train.y_train)),
            "valid_accuracy": fit.valid_accuracy, "frameworks": frameworks_loaded()}


@step(*_KERAS_STEP)
def extraction_step(*, batch_size: int = 32, max_images: int | None = None, **inputs) -> dict:
    """Extract backbone features once: the network built, then the images streamed through it.

    The same computation as :func:`genrestudy.extractors.features.extract_features` (build the frozen
    backbone, stream the memory-mapped images through it), minus the cache: nothing is read
    from or written to the feature cache.

    Parameters
    ----------
    batch_size : int
        Images per forward pass.
    max_images : int, optional
        The first ``max_images`` images only (a reduced measurement); None: all of them.
    **inputs
        Fields of :class:`genrestudy.run.study.StudyInputs` (images; backbone, weights, precision, seed).

    Returns
    -------
    dict
        ``seconds`` (build + extraction), ``build_seconds``, ``extract_seconds``, ``images``,
        ``images_per_second``, ``precision``, ``gpu_peak_mb``.
    """
    from ..extractors import backbones, features

    given, image_set = _inputs_and_images(inputs)
    backbone = given.backbone
    n = len(image_set) if max_images is None else min(int(max_images), len(image_set))
    if n < 1:
        raise ValueError(f"max_images must be a positive number of images or None, got {max_images}")
    resolved = device.resolve_precision(given.precision, training=False)
    started = time.perf_counter()
    model = backbones.build_backbone(backbone, weights=given.weights, image_size=int(image_set.images.shape[1]),
                                     input_size=given.input_size, precision=resolved, seed=given.seed)
    built = time.perf_counter()
    out = features.stream_features(model, image_set.images[:n], backbone=backbone, batch_size=batch_size,
                                   progress=False)
    done = time.perf_counter()
    features.check_features(out)
    return {"seconds": done - started, "build_seconds": built - started, "extract_seconds": done - built,
            "images": n, "images_per_second": n / (done - built), "precision": resolved,
            "gpu_peak_mb": device.gpu_peak_mb()}


def end_to_end_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """Segment probabilities of an :class:`~genrestudy.run.predict.EndToEndModel` at the batch's own size.

    ``predict(images)`` takes ``(n, size, size)`` uint8 grey images and runs them as one batch
    of ``n`` (the loaded model's ``segment_probabilities`` pads to a clip's segments instead).
    """
    from ..extractors import backbones

    backbone = model.header["backbone"]

    def predict(images: np.ndarray) -> np.ndarray:
        rgb = np.repeat(np.asarray(images)[..., None], 3, axis=-1)
        return np.asarray(model.network.predict_on_batch(backbones.preprocess_images(rgb, backbone=backbone)))

    return predict


def hybrid_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """Segment probabilities of a :class:`~genrestudy.run.predict.HybridModel` (features, then LightGBM)
    at the batch's own size."""
    from ..extractors import features
    from ..models import classifiers

    backbone = model.header["backbone"]

    def predict(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        vectors = features.stream_features(model.network, images, backbone=backbone, batch_size=len(images), progress=False)
        return classifiers.predict_proba(model.booster, vectors)

    return predict


def prediction_models(inputs, image_set, split, *, params: dict, num_boost_round: int, seed: int = 0) -> dict:
    """The two pipelines as :mod:`genrestudy.run.predict` models, which ``genrestudy predict`` runs.

    The end-to-end model is the study's (:func:`genrestudy.methods.end_to_end.train_on_split`, from its
    cache when notebook 04 or Table 7 trained it with the same inputs); the hybrid is LightGBM
    with ``params`` fitted on the study's cached features, saved with its backbone settings to
    ``data/models/resnet50_lightgbm_efficiency.zip`` and loaded back.

    Returns
    -------
    dict
        ``{"end_to_end": EndToEndModel, "hybrid": HybridModel}``.
    """
    from .. import paths
    from ..models import classifiers
    from ..run import predict, study
    from ..methods import end_to_end

    trained = end_to_end.train_on_split(image_set, split, end_to_end.train_settings(inputs))
    feature_set = study.feature_set(inputs, image_set)
    data = classifiers.training_data(feature_set.features, feature_set.labels, split,
                                     num_class=len(feature_set.classes), max_bin=inputs.max_bin)
    fit = classifiers.fit_lightgbm(data, params, num_boost_round=num_boost_round,
                                   early_stopping_rounds=inputs.early_stopping_rounds, seed=seed,
                                   num_threads=os.cpu_count() or 1, keep_model=True)
    # saved and loaded back as `genrestudy predict --model` would use it
    hybrid_file = paths.data_dir() / "models" / "resnet50_lightgbm_efficiency.zip"
    predict.save_hybrid_model(hybrid_file, fit.booster, **predict.hybrid_settings(feature_set, image_set))
    hybrid = predict.load_model(hybrid_file, weights=inputs.weights)
    return {"end_to_end": predict.load_model(trained.model_file), "hybrid": hybrid}
