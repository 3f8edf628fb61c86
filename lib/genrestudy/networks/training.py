"""Training any small Keras model on the cached spectrogram images: feeding, fitting, caching.

The machinery the end-to-end ResNet-50 (:mod:`genrestudy.networks.endtoend`) is trained with, for any
Keras classifier of the images: :class:`ImageBatches` feeds batches from the memory-mapped
image cache by row index (the image set is never loaded whole), prepared by an ImageNet
backbone's own ``preprocess_input`` or as float32 0–255 grey values; :class:`Augmentation`
for spectrograms (circular time shift, time and frequency masks; no rotations or flips, which
would turn time or pitch around); :func:`fit_phase` (Adam, early stopping on the validation
loss, best weights kept); :func:`predict_rows` and :func:`evaluate_part`; and
:func:`cached_training`, which trains once per key into a cache entry and opens it afterwards
(:class:`TrainedModel`). Keras 3 only: it runs under the tensorflow, jax or torch backend.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np
import pandas as pd

from .. import cache, device
from ..extractors import backbones
from ..models import modelfile
from ..report import evaluation
from ..signals.images import ImageSet

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"


@dataclass(frozen=True)
class Augmentation:
    """Spectrogram augmentation of training batches (SpecAugment-style, no rotations or flips).

    Attributes
    ----------
    time_shift : float
        Largest circular shift along time, as a fraction of the image width (a segment
        that starts a little earlier or later).
    time_masks, freq_masks : int
        Number of time (column) and frequency (row) bands set to silence (0) per image.
    time_mask_width, freq_mask_width : float
        Largest width of one band, as a fraction of the image side.
    """

    time_shift: float = 0.1
    time_masks: int = 1
    time_mask_width: float = 0.1
    freq_masks: int = 1
    freq_mask_width: float = 0.1

    def __post_init__(self):
        fractions = {"time_shift": self.time_shift, "time_mask_width": self.time_mask_width,
                     "freq_mask_width": self.freq_mask_width}
        bad = [f"{k}={v!r}" for k, v in fractions.items() if not 0.0 <= v < 1.0]
        bad += [f"{k}={v!r}" for k, v in (("time_masks", self.time_masks), ("freq_masks", self.freq_masks))
                if not (isinstance(v, (int, np.integer)) and v >= 0)]
        if bad:
            raise ValueError(f"invalid augmentation {', '.join(bad)}: fractions must lie in [0, 1), "
                             "mask counts must be integers >= 0")

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copies of ``(n, rows, cols)`` uint8 grey images (rows: frequency, cols: time)."""
        out = np.array(images, copy=True)
        n, rows, cols = out.shape
        max_shift = int(self.time_shift * cols)
        for img in out:
            if max_shift:
                img[:] = np.roll(img, int(rng.integers(-max_shift, max_shift + 1)), axis=1)
            for _ in range(self.time_masks):
                width = int(rng.integers(0, int(self.time_mask_width * cols) + 1))
                start = int(rng.integers(0, cols - width + 1))
                img[:, start:start + width] = 0
            for _ in range(self.freq_masks):
                width = int(rng.integers(0, int(self.freq_mask_width * rows) + 1))
                start = int(rng.integers(0, rows - width + 1))
                img[start:start + width, :] = 0
        return out


def prepare_images(grey: np.ndarray, *, preprocess: str | None = "ResNet50", channels: int = 3) -> np.ndarray:
    """``(n, h, w)`` uint8 grey images as a network takes them: ``(n, h, w, channels)`` float32.

    ``preprocess`` names an ImageNet backbone (:data:`genrestudy.extractors.backbones.BACKBONES`) whose
    own ``preprocess_input`` is applied to the grey image repeated on 3 channels; None keeps
    the 0–255 values, repeated on ``channels`` channels, for a network that scales its input
    itself (e.g. a ``keras.layers.Rescaling`` first layer).
    """
    if preprocess is None:
        return np.repeat(np.asarray(grey, dtype=np.float32)[..., None], channels, axis=-1)
    return backbones.preprocess_images(np.repeat(grey[..., None], 3, axis=-1), backbone=preprocess)


class ImageBatches(keras.utils.PyDataset):
    """Batches of prepared images and integer labels read from a memory-mapped image cache.

    Only the rows of one batch are read at a time. With ``shuffle`` the order changes every
    epoch, fixed by ``seed`` and the epoch number; augmentation draws from a generator seeded
    by (seed, epoch, batch), so results do not depend on which worker thread makes a batch.

    Parameters
    ----------
    images, rows, labels : np.ndarray, array-like of int, array-like of int
        ``(n, size, size)`` uint8 grey images (:attr:`genrestudy.signals.images.ImageSet.images`),
        the rows of them to feed (e.g. the training split) and the class code of every image.
    preprocess : str or None
        The network's preprocessing: a backbone's name (its ``preprocess_input`` on the grey
        image repeated on 3 channels), or None for float32 0–255 grey values repeated on
        ``channels`` channels (:func:`prepare_images`).
    channels : int
        Channels of the network's input when ``preprocess`` is None.
    batch_size : int
        Images per batch (the last one may be smaller).
    shuffle, seed : bool, int
        Reshuffle the rows every epoch; seed of shuffling and augmentation.
    augmentation : Augmentation, optional
        Applied to every batch (training data only).
    workers : int
        Threads preparing batches (``keras.utils.PyDataset``).
    """

    def __init__(self, images: np.ndarray, rows, labels, *, preprocess: str | None = "ResNet50", channels: int = 3,
                 batch_size: int = 32, shuffle: bool = False, augmentation: Augmentation | None = None,
                 seed: int = 0, workers: int = 1):
        super().__init__(workers=workers, use_multiprocessing=False)
        rows = np.asarray(rows, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        _check_feed(images, rows, labels, batch_size=batch_size, channels=channels)
        if preprocess is not None:
            backbones.backbone_spec(preprocess)  # an unknown name fails here, not in a worker thread
        self.images, self.rows, self.labels = images, rows, labels
        self.preprocess, self.channels, self.batch_size = preprocess, int(channels), int(batch_size)
        self.shuffle, self.augmentation, self.seed = shuffle, augmentation, int(seed)
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def batch_rows(self, index: int) -> np.ndarray:
        """Image rows of batch ``index`` this epoch (ascending, so the memmap is read forwards)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        picked = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.rows[np.sort(picked)]

    def __getitem__(self, index: int):
        rows = self.batch_rows(index)
        grey = np.asarray(self.images[rows])
        if self.augmentation is not None:
            grey = self.augmentation.apply(grey, np.random.default_rng([self.seed, self.epoch, index]))
        return prepare_images(grey, preprocess=self.preprocess, channels=self.channels), self.labels[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._make_order()


def _check_feed(images: np.ndarray, rows: np.ndarray, labels: np.ndarray, *, batch_size: int, channels: int):
    if images.ndim != 3:
        raise ValueError(f"expected (n, size, size) grey images, got shape {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"labels ({len(labels)}) must give one class per image ({len(images)})")
    if len(rows) == 0:
        raise ValueError("no rows to feed")
    if rows.min() < 0 or rows.max() >= len(images):
        raise ValueError(f"rows must index the {len(images)} images, got {rows.min()}..{rows.max()}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")


def split_rows(split) -> dict[str, np.ndarray]:
    """Image rows of each part of a split (``train``, ``valid``, ``test``); train and valid must exist."""
    values = np.asarray(split)
    rows = {name: np.flatnonzero(values == name) for name in ("train", "valid", "test")}
    if not len(rows["train"]) or not len(rows["valid"]):
        raise ValueError(f"the split needs 'train' and 'valid' rows; got values {sorted(set(values.tolist()))}")
    return rows


# ---------------------------------------------------------------- fitting

@contextmanager
def building_in(precision: str) -> Iterator[str]:
    """Build a model to train in ``precision`` inside the block; yields the resolved precision.

    ``keras.applications`` builds its layers in Keras' global dtype policy, so the policy of
    ``precision`` (:func:`genrestudy.device.resolve_precision`, ``training=True``) is set
    for the block only and the previous one restored after it. Mixed policies keep the
    weights float32; give the output layer ``dtype="float32"`` to keep the probabilities so.
    """
    resolved = device.resolve_precision(precision, training=True)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(device.POLICIES[resolved])
    try:
        yield resolved
    finally:
        keras.config.set_dtype_policy(previous)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch (``seconds``), validation included."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def fit_phase(model, train, valid, *, phase: str, learning_rate: float, first_epoch: int, epochs: int,
              patience: int, verbose: int = 0) -> tuple[pd.DataFrame, float]:
    """One training phase: compile with Adam, fit with early stopping on the validation loss,
    restore the best epoch's weights.

    Returns
    -------
    (pd.DataFrame, float)
        One row per epoch run (``epoch`` counted on from ``first_epoch``, 1-based; ``phase``;
        Keras' ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``; ``seconds``; ``best``
        marking the restored epoch), and the phase's wall time.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    started = time.perf_counter()
    fitted = model.fit(train, validation_data=valid, initial_epoch=first_epoch, epochs=first_epoch + epochs,
                       callbacks=[stopper, timer], verbose=verbose)
    seconds = time.perf_counter() - started
    frame = pd.DataFrame(fitted.history)
    frame.insert(0, "phase", phase)
    frame.insert(0, "epoch", np.arange(first_epoch + 1, first_epoch + len(frame) + 1))
    frame["seconds"] = timer.seconds[:len(frame)]
    frame["best"] = frame["epoch"] == first_epoch + 1 + int(np.argmin(frame["val_loss"].to_numpy()))
    return frame, seconds


def training_record(rows: dict, history: pd.DataFrame, seconds: dict, *, precision: str) -> dict:
    """What a trained model's header records of its training: data, epochs, time, machine, versions.

    ``rows`` are :func:`split_rows`' parts, ``seconds`` each phase's wall time.
    """
    total = sum(seconds.values())
    backend = keras.config.backend()
    return {"precision": precision, "split": {name: int(len(r)) for name, r in rows.items()},
            "epochs": int(len(history)), "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "seconds_total": round(total, 3),
            "train_images_per_second": round(float(len(rows["train"]) * len(history) / max(total, 1e-9)), 2),
            "device": device.accelerator(), "keras_backend": backend,
            "versions": cache.library_versions("keras", backend, "numpy")}


def join_phases(phases: list[pd.DataFrame]) -> pd.DataFrame:
    """The phases' histories as one frame; a non-finite loss (diverged training) is refused."""
    history = pd.concat(phases, ignore_index=True)
    if not np.isfinite(history[["loss", "val_loss"]].to_numpy()).all():
        raise ValueError("training diverged (non-finite loss); lower the learning rates")
    return history


# ---------------------------------------------------------------- predicting

def predict_padded(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model``'s float32 output for ``x`` (at most ``batch_size`` rows), run as a full batch.

    The batch is padded with zero rows to ``batch_size`` and the padding's outputs dropped, so
    every call has one shape and the inference function is traced once, not once per size.
    """
    n = len(x)
    if n > batch_size:
        raise ValueError(f"a batch of {n} rows does not fit batch_size {batch_size}")
    if n < batch_size:
        x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), dtype=x.dtype)])
    return np.asarray(model.predict_on_batch(x), dtype=np.float32)[:n]


def predict_rows(model, image_set: ImageSet, rows, *, batch_size: int = 64, preprocess: str | None = "ResNet50",
                 channels: int = 3, progress: bool = True) -> tuple[np.ndarray, float]:
    """Class probabilities of images ``rows`` of ``image_set`` and the seconds it took.

    ``preprocess`` and ``channels`` prepare the images as for training (:class:`ImageBatches`).

    Returns
    -------
    (np.ndarray, float)
        ``(len(rows), n_classes)`` probabilities in row order, and the wall time of the pass.
    """
    from ..progress import progress_bar

    feed = ImageBatches(image_set.images, rows, image_set.labels, preprocess=preprocess, channels=channels,
                        batch_size=batch_size)
    started = time.perf_counter()
    out = []
    for i in progress_bar(range(len(feed)), desc="predicting", unit="batch", enabled=progress):
        x, _ = feed[i]
        out.append(predict_padded(model, x, batch_size))
    return np.concatenate(out), time.perf_counter() - started


def evaluate_part(result: "TrainedModel", image_set: ImageSet, split, *, part: str = "test",
                  preprocess: str | None = "ResNet50", channels: int = 3, batch_size: int = 64,
                  progress: bool = True) -> dict:
    """Score a trained model once on one part of the split, segments and tracks.

    Returns
    -------
    dict
        ``rows`` (image rows), ``proba``, ``y_true``, ``y_pred``, ``scores``
        (:func:`genrestudy.report.evaluation.classification_metrics` plus ``track_accuracy``) and
        ``seconds_per_image`` of the prediction pass.
    """
    if list(result.classes) != list(image_set.classes):
        raise ValueError(f"the model's classes {result.classes} differ from the image set's {image_set.classes}")
    rows = np.flatnonzero(np.asarray(split) == part)
    if not len(rows):
        raise ValueError(f"no {part!r} rows in the split")
    proba, seconds = predict_rows(result.model, image_set, rows, batch_size=batch_size, preprocess=preprocess,
                                  channels=channels, progress=progress)
    y_true, y_pred = image_set.labels[rows], proba.argmax(axis=1)
    scores = evaluation.classification_metrics(y_true, y_pred, labels=np.arange(len(result.classes)))
    scores["track_accuracy"] = evaluation.track_level_accuracy(
        proba, y_true, image_set.segments["track_id"].to_numpy()[rows])
    return {"rows": rows, "proba": proba, "y_true": y_true, "y_pred": y_pred, "scores": scores,
            "seconds_per_image": seconds / len(rows)}


# ---------------------------------------------------------------- the trained-model cache

@dataclass
class TrainedModel:
    """A trained Keras model with its training record, as a cache entry holds it.

    ``model``: the network (best validation epoch of the last phase), no optimizer state;
    ``history``: one row per epoch (:func:`fit_phase`'s columns); ``meta``: the model file's
    header (classes, image parameters, settings, timing, ...); ``root``: the cache entry
    (``model.keras``, ``history.csv``, ``meta.json``).
    """

    model: object
    history: pd.DataFrame
    meta: dict
    root: Path

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def model_file(self) -> Path:
        return self.root / MODEL_FILE

    def save(self, path) -> Path:
        """Copy the model file (weights, label order, preprocessing settings) to ``path`` (``.keras``)."""
        path = Path(path).expanduser()
        if path.suffix != ".keras":
            raise ValueError(f"a {self.meta.get('kind', 'Keras')} model is saved as a .keras file, got {path.name!r}")
        with cache.atomic_path(path) as tmp:
            shutil.copyfile(self.model_file, tmp)
        return path

    @classmethod
    def open(cls, entry: Path):
        """The complete cache entry ``entry`` of :func:`cached_training`."""
        entry = Path(entry)
        if not cache.is_complete(entry):
            raise cache.CacheError(f"{entry} is not a complete trained-model cache (no {cache.META_FILE})")
        model, meta = modelfile.load_keras_model(entry / MODEL_FILE, kind=None)
        history = pd.read_csv(entry / HISTORY_FILE)
        return cls(model=model, history=history, meta=meta, root=entry)


def cached_training(cache_kind: str, key: str, train: Callable[[], tuple[object, pd.DataFrame, dict]], *,
                    open_entry: Callable[[Path], TrainedModel] = TrainedModel.open,
                    root: Path | None = None) -> TrainedModel:
    """Train once per ``key`` into the cache entry ``cache_kind/key``, and open it afterwards.

    ``train() -> (model, history, header)`` gives the trained Keras model, its
    :func:`fit_phase` history and its model-file header (:func:`genrestudy.models.modelfile.model_header`);
    they are written to ``model.keras`` and ``history.csv`` of the entry
    (:func:`genrestudy.cache.open_or_build`; ``key`` must cover everything that determines the
    model; ``root`` is the cache folder). ``open_entry`` reads a complete entry (default
    :meth:`TrainedModel.open`, or a subclass's). The model is opened from the entry also
    right after training, so a first and a later call give the same (saved) model; a damaged
    entry is trained again.
    """
    def build(entry: Path) -> dict:
        model, history, header = train()
        modelfile.save_keras_model(model, entry / MODEL_FILE, metadata=header)
        cache.write_csv(entry / HISTORY_FILE, history)
        return header

    return cache.open_or_build(cache_kind, key, open_entry=open_entry, build=build, root=root)
