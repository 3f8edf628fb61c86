"""Spectrogram images → end-to-end ResNet-50: the paper's comparison model.

ResNet-50 (``keras.applications``, ImageNet, local or no weights, built through
:mod:`genrestudy.features`) closed with the head of study 4 in PAPER.md: global average
pooling → Dense 512 ReLU → Dropout 0.5 → Dense softmax. Training has two phases:

1. **head**: the backbone frozen, only the head learns;
2. **fine-tuning**: the top ``finetune_blocks`` residual blocks of the backbone (or
   ``"all"`` of it) learn too, at a lower learning rate.

Both phases use Adam on the sparse categorical cross-entropy with early stopping on the
validation loss (the best epoch's weights are kept). The backbone's batch normalisation
layers stay frozen, in inference mode, in both phases: their ImageNet statistics are not
overwritten by the statistics of small batches of spectrograms.

Batches come from the memory-mapped image cache by row index (:class:`ImageBatches`, a
``keras.utils.PyDataset``), so the image set is never loaded whole; augmentation for
spectrograms (circular time shift, time and frequency masks; no rotations or flips, which
would turn time or pitch around) is done in numpy on each training batch. Each grey image
is repeated on three channels and goes through the backbone's own ``preprocess_input`` on
its 0–255 values; the network resizes it to ``input_size`` itself.

A trained model is cached under a key of the image set, the split and every setting, and
saved as a ``.keras`` file carrying its label order and preprocessing settings
(:func:`save_model`, :func:`load_model`; the format is described in :mod:`genrestudy.predict`).

Keras 3 only: the same code runs under ``KERAS_BACKEND=tensorflow``, ``jax`` or ``torch``.
"""
from __future__ import annotations

import datetime
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import cache, features
from .images import ImageParams, ImageSet

log = logging.getLogger(__name__)

_CACHE_KIND = "endtoend"
# Bump when a change in this module changes what a cached model holds.
_FORMAT_VERSION = 1

BACKBONE = "ResNet50"
#: name of the nested backbone model inside the end-to-end model
BACKBONE_LAYER = "resnet50"
#: ``finetune_blocks`` value that unfreezes the whole backbone, stem included
ALL_BLOCKS = "all"
PRECISIONS = ("auto", "float32", "bfloat16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
_BLOCK = re.compile(r"^(conv\d+_block\d+)_")


# ---------------------------------------------------------------- settings

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


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines an end-to-end training run (all part of the cache key).

    Attributes
    ----------
    input_size : int
        Side the network runs at; images are resized to it inside the model (>= 32).
    weights : {"imagenet", None} or str
        Initial backbone weights: ImageNet, None (random, fixed by ``seed``), or the path
        of a Keras weights file of ResNet-50 without its top.
    head_epochs, finetune_epochs : int
        Maximum epochs of each phase (early stopping may end a phase sooner).
    finetune_blocks : int or "all"
        Residual blocks of the backbone, counted from the top, that learn in phase 2
        (ResNet-50 has 16); ``"all"`` unfreezes the whole backbone. 0 skips phase 2.
    batch_size : int
        Images per training step.
    head_learning_rate, finetune_learning_rate : float
        Adam learning rates of the two phases.
    patience : int
        Epochs without a lower validation loss before a phase stops.
    dense_units, dropout : int, float
        The head: Dense ``dense_units`` ReLU → Dropout ``dropout``.
    augmentation : Augmentation or None
        Applied to training batches only; None trains on the images as they are.
    precision : {"auto", "float32", "bfloat16"}
        Compute precision; ``"auto"``: bfloat16 (mixed) on a GPU, float32 on a CPU.
    seed : int
        Seed of the initialisation, the shuffling and the augmentation.
    workers : int
        Threads preparing batches ahead of the network.
    """

    input_size: int = 64
    weights: str | None = None
    head_epochs: int = 2
    finetune_epochs: int = 1
    finetune_blocks: int | str = 1
    batch_size: int = 32
    head_learning_rate: float = 1e-3
    finetune_learning_rate: float = 1e-4
    patience: int = 3
    dense_units: int = 512
    dropout: float = 0.5
    augmentation: Augmentation | None = field(default_factory=Augmentation)
    precision: str = "auto"
    seed: int = 0
    workers: int = 1

    def __post_init__(self):
        checks = {
            "input_size": self.input_size >= features.backbone_spec(BACKBONE).min_size,
            "head_epochs": self.head_epochs >= 0, "finetune_epochs": self.finetune_epochs >= 0,
            "finetune_blocks": self.finetune_blocks == ALL_BLOCKS or (
                isinstance(self.finetune_blocks, (int, np.integer)) and self.finetune_blocks >= 0),
            "batch_size": self.batch_size >= 1, "head_learning_rate": self.head_learning_rate > 0,
            "finetune_learning_rate": self.finetune_learning_rate > 0, "patience": self.patience >= 1,
            "dense_units": self.dense_units >= 1, "dropout": 0.0 <= self.dropout < 1.0,
            "precision": self.precision in PRECISIONS, "workers": self.workers >= 1,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings {', '.join(bad)} (input_size >= 32, epochs >= 0, "
                             f"finetune_blocks an integer >= 0 or 'all', precision one of {PRECISIONS})")
        if self.head_epochs + self.finetune_epochs == 0:
            raise ValueError("head_epochs and finetune_epochs are both 0: nothing to train")
        if isinstance(self.augmentation, dict):  # from a saved settings dict
            object.__setattr__(self, "augmentation", Augmentation(**self.augmentation))

    @property
    def finetunes(self) -> bool:
        """Whether phase 2 runs."""
        return self.finetune_epochs > 0 and self.finetune_blocks != 0


#: named settings: ``demo`` is the CPU default (minutes on 2 cores, meaningless numbers);
#: ``paper`` is the study's run (224 px, ImageNet, 25 epochs in all).
PROFILES: dict[str, TrainSettings] = {
    "demo": TrainSettings(),
    # 4 feeding threads: one prepares ~1,700 images/s of 224 px on a CPU core, less than a GPU trains on
    "paper": TrainSettings(input_size=224, weights="imagenet", head_epochs=5, finetune_epochs=20,
                           finetune_blocks=ALL_BLOCKS, head_learning_rate=1e-3, finetune_learning_rate=1e-5,
                           patience=5, workers=4),
}


def training_settings(profile: str = "demo", **overrides) -> TrainSettings:
    """The settings of ``profile`` (one of :data:`PROFILES`) with ``overrides`` applied.

    An override of None keeps the profile's value (so a notebook parameter can default to
    "the profile's"); ``augment=False`` turns augmentation off, ``augment=True`` keeps the
    profile's (or the default) augmentation.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown training profile {profile!r}; expected one of {', '.join(PROFILES)}")
    base = PROFILES[profile]
    given = {k: v for k, v in overrides.items() if v is not None}
    if "augment" in given:
        augment = given.pop("augment")
        given["augmentation"] = (base.augmentation or Augmentation()) if augment else None
    unknown = sorted(set(given) - set(TrainSettings.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; expected some of "
                         f"{sorted(TrainSettings.__dataclass_fields__)} or 'augment'")
    return replace(base, **given)


def resolve_precision(precision: str = "auto") -> str:
    """``"auto"`` → ``"bfloat16"`` on a GPU, ``"float32"`` on a CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bfloat16" if features.accelerator() == "gpu" else "float32"


# ---------------------------------------------------------------- feeding

class ImageBatches(keras.utils.PyDataset):
    """Batches of preprocessed images and integer labels read from a memory-mapped image cache.

    Only the rows of one batch are read at a time. With ``shuffle`` the order changes every
    epoch, fixed by ``seed`` and the epoch number; augmentation draws from a generator seeded
    by (seed, epoch, batch), so results do not depend on which worker thread makes a batch.

    Parameters
    ----------
    images : np.ndarray
        ``(n, size, size)`` uint8 grey images (:attr:`genrestudy.images.ImageSet.images`).
    rows : array-like of int
        The rows of ``images`` to feed (e.g. the training split).
    labels : array-like of int
        Class code of each row of ``images`` (all of them, indexed by ``rows``).
    backbone : str
        Whose ``preprocess_input`` to apply.
    batch_size : int
        Images per batch (the last one may be smaller).
    shuffle : bool
        Reshuffle the rows every epoch.
    augmentation : Augmentation, optional
        Applied to every batch (training data only).
    seed : int
        Seed of shuffling and augmentation.
    workers : int
        Threads preparing batches (``keras.utils.PyDataset``).
    """

    def __init__(self, images: np.ndarray, rows, labels, *, backbone: str = BACKBONE, batch_size: int = 32,
                 shuffle: bool = False, augmentation: Augmentation | None = None, seed: int = 0, workers: int = 1):
        super().__init__(workers=workers, use_multiprocessing=False)
        rows = np.asarray(rows, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
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
        self.images, self.rows, self.labels = images, rows, labels
        self.backbone, self.batch_size = backbone, int(batch_size)
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
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        return features.preprocess_images(rgb, backbone=self.backbone), self.labels[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._make_order()


# ---------------------------------------------------------------- the model

def build_model(num_classes: int, *, image_size: int, input_size: int = 224, weights: str | None = None,
                dense_units: int = 512, dropout: float = 0.5, precision: str = "float32", seed: int = 0):
    """ResNet-50 with the study's head, backbone frozen (phase 1).

    Parameters
    ----------
    num_classes : int
        Genres (width of the softmax).
    image_size : int
        Side of the images fed in (the image cache's); resized to ``input_size`` in the model.
    input_size : int
        Side the backbone runs at (224 as in the paper; >= 32).
    weights : {"imagenet", None} or path
        See :func:`genrestudy.features.build_backbone`: ImageNet (a one-line
        FileNotFoundError when offline and not in the Keras cache), a local file, or None.
    dense_units, dropout : int, float
        Dense ``dense_units`` ReLU → Dropout ``dropout`` before the softmax.
    precision : {"auto", "float32", "bfloat16"}
        Compute precision (mixed: weights and the softmax stay float32).
    seed : int
        Seed of the random initialisation (backbone when ``weights`` is None, and the head).

    Returns
    -------
    keras.Model
        Input ``(image_size, image_size, 3)`` float32 preprocessed images, output
        ``(num_classes,)`` float32 probabilities; the backbone is the nested model
        :data:`BACKBONE_LAYER`, frozen (so its batch normalisation runs in inference mode).
    """
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    spec = features.backbone_spec(BACKBONE)
    if input_size < spec.min_size:
        raise ValueError(f"{spec.name} needs input_size >= {spec.min_size}, got {input_size}")
    if weights is not None and weights != "imagenet":
        features.weights_identity(weights)  # a missing file fails here with one clear line
    policy = _POLICIES[resolve_precision(precision)]
    keras.utils.set_random_seed(int(seed))
    previous = keras.config.dtype_policy()
    # keras.applications builds its layers in the global policy; set it only while building
    keras.config.set_dtype_policy(policy)
    try:
        backbone = features.application(spec, weights=weights, input_size=input_size)
        if backbone.name != BACKBONE_LAYER:
            raise RuntimeError(f"keras.applications.ResNet50 is named {backbone.name!r}, expected {BACKBONE_LAYER!r}")
        backbone.trainable = False
        inputs = keras.Input((image_size, image_size, 3), dtype="float32", name="preprocessed_images")
        x = inputs
        if image_size != input_size:
            # after preprocess_input is as good as before: it is a per-channel affine map and
            # resize weights sum to one; antialiasing keeps a downscaled spectrogram's detail honest
            x = keras.layers.Resizing(input_size, input_size, interpolation="bilinear",
                                      antialias=image_size > input_size, name="resize")(x)
        x = backbone(x)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
    finally:
        keras.config.set_dtype_policy(previous)
    return keras.Model(inputs, outputs, name="resnet50_end_to_end")


def backbone_blocks(model) -> list[str]:
    """Residual block names of the backbone, bottom to top (``conv2_block1`` … ``conv5_block3``)."""
    names = []
    for layer in model.get_layer(BACKBONE_LAYER).layers:
        match = _BLOCK.match(layer.name)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def set_trainable_blocks(model, blocks: int | str) -> int:
    """Unfreeze the top ``blocks`` residual blocks of the backbone (``"all"``: all of it); the head stays trainable.

    Batch normalisation layers stay frozen everywhere (inference mode: moving statistics,
    scale and offset as they were), the usual way to fine-tune on small batches.

    Returns
    -------
    int
        Number of trainable parameters of the whole model afterwards.
    """
    backbone = model.get_layer(BACKBONE_LAYER)
    names = backbone_blocks(model)
    if blocks != ALL_BLOCKS and not (isinstance(blocks, (int, np.integer)) and 0 <= blocks <= len(names)):
        raise ValueError(f"blocks must be an integer in 0..{len(names)} or {ALL_BLOCKS!r}, got {blocks!r}")
    top = set(names[len(names) - int(blocks):]) if blocks not in (ALL_BLOCKS, 0) else set()
    backbone.trainable = blocks != 0
    # each layer explicitly: a nested model's own flag does not reliably reach its layers.
    # Batch normalisation stays frozen: in Keras 3 a non-trainable BatchNormalization runs in
    # inference mode, whereas training=False given when the functional model was built is
    # overridden by fit()'s training=True.
    for layer in backbone.layers:
        match = _BLOCK.match(layer.name)
        unfrozen = blocks == ALL_BLOCKS or bool(match and match.group(1) in top)
        layer.trainable = unfrozen and not isinstance(layer, keras.layers.BatchNormalization)
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# ---------------------------------------------------------------- training

@dataclass
class EndToEndResult:
    """A trained end-to-end model with its training record.

    Attributes
    ----------
    model : keras.Model
        The trained network (best validation epoch of the last phase).
    history : pd.DataFrame
        One row per epoch: ``epoch`` (1-based over both phases), ``phase`` (``head`` or
        ``finetune``), ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``seconds``.
    meta : dict
        The model file's metadata (classes, image parameters, settings, timing, ...).
    root : Path
        The cache entry (``model.keras``, ``history.csv``, ``meta.json``).
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
        return self.root / "model.keras"

    def save(self, path) -> Path:
        """Copy the model file (weights, label order, preprocessing settings) to ``path`` (``.keras``)."""
        path = Path(path).expanduser()
        if path.suffix != ".keras":
            raise ValueError(f"an end-to-end model is saved as a .keras file, got {path.name!r}")
        with cache.atomic_path(path) as tmp:
            shutil.copyfile(self.model_file, tmp)
        return path


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _fit_phase(model, train, valid, *, phase: str, learning_rate: float, first_epoch: int, epochs: int,
               patience: int, verbose: int) -> tuple[pd.DataFrame, float]:
    """One phase: compile with Adam, fit with early stopping; its history rows and wall time."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = _EpochTimer()
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


def _split_rows(split) -> dict[str, np.ndarray]:
    values = np.asarray(split)
    rows = {name: np.flatnonzero(values == name) for name in ("train", "valid", "test")}
    if not len(rows["train"]) or not len(rows["valid"]):
        raise ValueError(f"the split needs 'train' and 'valid' rows; got values {sorted(set(values.tolist()))}")
    return rows


def train_cache_key(image_set: ImageSet, split, settings: TrainSettings) -> str:
    """Key of a trained model: the image cache, the split, every setting but ``workers``, the backend and versions.

    ``workers`` only changes speed: each batch's shuffle and augmentation are seeded by its
    epoch and position, not by the thread that makes it.
    """
    backend = keras.config.backend()
    determining = {k: v for k, v in asdict(settings).items() if k != "workers"}
    return cache.cache_key(f"endtoend-v{_FORMAT_VERSION}", image_set.key, np.asarray(split).tolist(),
                           determining, resolve_precision(settings.precision), backend,
                           cache.library_versions("keras", backend, "numpy"))


def train_end_to_end(image_set: ImageSet, split, *, settings: TrainSettings | None = None,
                     cache_root: Path | None = None, progress: bool = True) -> EndToEndResult:
    """Train (or take from the cache) the end-to-end ResNet-50 on ``image_set``'s training split.

    Parameters
    ----------
    image_set : ImageSet
        The cached mel images (:func:`genrestudy.study.image_set`).
    split : pd.Series or array-like
        ``"train"``/``"valid"``/``"test"`` per image (:func:`genrestudy.splits.make_split`);
        other values are left out. Validation drives early stopping; test is not touched.
    settings : TrainSettings, optional
        Default: the ``demo`` profile.
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).
    progress : bool
        One line per epoch from Keras.

    Returns
    -------
    EndToEndResult
        The model, its per-epoch history and metadata; a second call with the same image
        set, split and settings loads it from the cache.
    """
    settings = settings or PROFILES["demo"]
    if len(np.asarray(split)) != len(image_set):
        raise ValueError(f"split has {len(np.asarray(split))} entries for {len(image_set)} images")
    rows = _split_rows(split)
    key = train_cache_key(image_set, split, settings)
    entry = cache.entry_dir(_CACHE_KIND, key, cache_root)
    if cache.is_complete(entry):
        try:
            return open_trained(entry)
        except (cache.CacheError, OSError, ValueError) as exc:
            log.warning("end-to-end cache %s is damaged (%s); retraining", entry, exc)
            (entry / cache.META_FILE).unlink(missing_ok=True)
    cache.make_writable_dir(entry)

    classes, labels = image_set.classes, image_set.labels
    image_size = int(image_set.images.shape[1])
    precision = resolve_precision(settings.precision)
    feed = dict(backbone=BACKBONE, batch_size=settings.batch_size, seed=settings.seed, workers=settings.workers)
    train = ImageBatches(image_set.images, rows["train"], labels, shuffle=True,
                         augmentation=settings.augmentation, **feed)
    valid = ImageBatches(image_set.images, rows["valid"], labels, **feed)
    model = build_model(len(classes), image_size=image_size, input_size=settings.input_size,
                        weights=settings.weights, dense_units=settings.dense_units, dropout=settings.dropout,
                        precision=precision, seed=settings.seed)
    verbose = 2 if progress else 0
    phases, seconds = [], {}
    if settings.head_epochs:
        frame, seconds["head"] = _fit_phase(model, train, valid, phase="head",
                                            learning_rate=settings.head_learning_rate, first_epoch=0,
                                            epochs=settings.head_epochs, patience=settings.patience,
                                            verbose=verbose)
        phases.append(frame)
    if settings.finetunes:
        trainable = set_trainable_blocks(model, settings.finetune_blocks)
        log.info("fine-tuning %s backbone blocks: %d trainable parameters", settings.finetune_blocks, trainable)
        done = int(phases[-1]["epoch"].iloc[-1]) if phases else 0
        frame, seconds["finetune"] = _fit_phase(model, train, valid, phase="finetune",
                                                learning_rate=settings.finetune_learning_rate, first_epoch=done,
                                                epochs=settings.finetune_epochs, patience=settings.patience,
                                                verbose=verbose)
        phases.append(frame)
    history = pd.concat(phases, ignore_index=True)
    if not np.isfinite(history[["loss", "val_loss"]].to_numpy()).all():
        raise ValueError("training diverged (non-finite loss); lower the learning rates")

    meta = model_metadata(
        classes=classes, image_params=image_set.meta.get("params", {}), input_size=settings.input_size,
        image_size=image_size, weights=features.weights_identity(settings.weights, seed=settings.seed),
        synthetic=image_set.synthetic,
        training={"settings": asdict(settings), "precision": precision, "image_cache": image_set.key,
                  "split": {name: int(len(r)) for name, r in rows.items()},
                  "epochs": int(len(history)), "seconds": {k: round(v, 3) for k, v in seconds.items()},
                  "seconds_total": round(sum(seconds.values()), 3),
                  "train_images_per_second": round(float(len(rows["train"]) * len(history)
                                                         / max(sum(seconds.values()), 1e-9)), 2),
                  "device": features.accelerator(), "keras_backend": keras.config.backend(),
                  "versions": cache.library_versions("keras", keras.config.backend(), "numpy")})
    save_model(model, entry / "model.keras", metadata=meta)
    cache.write_csv(entry / "history.csv", history)
    cache.finish(entry, {"kind": _CACHE_KIND, "key": key, **meta})
    return EndToEndResult(model=model, history=history, meta=meta, root=entry)


def open_trained(entry: Path) -> EndToEndResult:
    """A complete cache entry of :func:`train_end_to_end`."""
    entry = Path(entry)
    if not cache.is_complete(entry):
        raise cache.CacheError(f"{entry} is not a complete end-to-end model cache (no {cache.META_FILE})")
    model, meta = load_model(entry / "model.keras")
    history = pd.read_csv(entry / "history.csv")
    return EndToEndResult(model=model, history=history, meta=meta, root=entry)


# ---------------------------------------------------------------- model files

def model_metadata(*, classes, image_params, input_size: int, image_size: int, weights: str,
                   synthetic: bool, training: dict) -> dict:
    """The metadata an end-to-end model file carries (see :mod:`genrestudy.predict` for the format)."""
    from . import predict

    spec = features.backbone_spec(BACKBONE)
    params = asdict(ImageParams(**dict(image_params)))  # validates, fills defaults
    if params["image_size"] != image_size:
        raise ValueError(f"image parameters say {params['image_size']} px images, the model takes {image_size} px")
    return predict.model_header(
        "end-to-end", classes=list(classes), image_params=params, backbone=spec.name, weights=weights,
        preprocessing=f"keras.applications.{spec.module}.preprocess_input ({spec.preprocessing})",
        input_size=int(input_size), synthetic=bool(synthetic), training=training,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def save_model(model, path, *, metadata: dict) -> Path:
    """Write ``model`` as a ``.keras`` file carrying ``metadata`` (from :func:`model_metadata`).

    The optimizer state is left out (it would triple the file and prediction never needs it).
    Returns the path written: a demo-data model does not replace a real-data one (see
    :func:`genrestudy.predict.model_destination`).
    """
    from . import predict

    path = Path(path).expanduser()
    if path.suffix != ".keras":
        raise ValueError(f"an end-to-end model is saved as a .keras file, got {path.name!r}")
    predict.check_header(metadata, path, kind="end-to-end")
    path = predict.model_destination(path, synthetic=metadata["synthetic"])
    if int(model.output.shape[-1]) != len(metadata["classes"]):
        raise ValueError(f"the model has {int(model.output.shape[-1])} outputs for {len(metadata['classes'])} classes")
    # rebuilt from its config, not clone_model (which compiles the copy like the original)
    inference = type(model).from_config(model.get_config())
    inference.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache.atomic_path(path) as tmp:
        keras_file = tmp.with_name(tmp.stem + ".keras")  # Keras insists on the suffix
        try:
            inference.save(keras_file)
            predict.attach_header(keras_file, metadata)
            keras_file.replace(tmp)
        finally:
            keras_file.unlink(missing_ok=True)
    return path


def load_model(path) -> tuple[object, dict]:
    """``(keras.Model, metadata)`` of an end-to-end model file.

    Raises
    ------
    genrestudy.predict.ModelFileError
        ``path`` is not an end-to-end genrestudy model (one line: "not a genrestudy model: ...").
    """
    from . import predict

    path = Path(path).expanduser()
    meta = predict.read_header(path)
    if meta["kind"] != "end-to-end":
        raise predict.ModelFileError(f"{path} is a {meta['kind']} model, not an end-to-end one")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras reports a damaged archive in many exception types
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise predict.ModelFileError(f"not a genrestudy model: {path} (Keras cannot load it: {reason})") from None
    if int(model.output.shape[-1]) != len(meta["classes"]):
        raise predict.ModelFileError(f"not a genrestudy model: {path} ({int(model.output.shape[-1])} outputs "
                                     f"for {len(meta['classes'])} classes)")
    return model, meta


# ---------------------------------------------------------------- evaluation and figures

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


def predict_rows(model, image_set: ImageSet, rows, *, batch_size: int = 64,
                 progress: bool = True) -> tuple[np.ndarray, float]:
    """Class probabilities of images ``rows`` of ``image_set`` and the seconds it took.

    Returns
    -------
    (np.ndarray, float)
        ``(len(rows), n_classes)`` probabilities in row order, and the wall time of the pass.
    """
    from tqdm.auto import tqdm

    feed = ImageBatches(image_set.images, rows, image_set.labels, batch_size=batch_size)
    started = time.perf_counter()
    out = []
    for i in tqdm(range(len(feed)), desc="predicting", unit="batch", disable=not progress):
        x, _ = feed[i]
        out.append(predict_padded(model, x, batch_size))
    return np.concatenate(out), time.perf_counter() - started


def evaluate(result: EndToEndResult, image_set: ImageSet, split, *, part: str = "test",
             batch_size: int = 64, progress: bool = True) -> dict:
    """Score the model once on one part of the split (segments and tracks).

    Returns
    -------
    dict
        ``rows`` (image rows), ``proba``, ``y_true``, ``y_pred``, ``scores``
        (:func:`genrestudy.evaluation.classification_metrics` plus ``track_accuracy``) and
        ``seconds_per_image`` of the prediction pass.
    """
    from . import evaluation

    if list(result.classes) != list(image_set.classes):
        raise ValueError(f"the model's classes {result.classes} differ from the image set's {image_set.classes}")
    rows = np.flatnonzero(np.asarray(split) == part)
    if not len(rows):
        raise ValueError(f"no {part!r} rows in the split")
    proba, seconds = predict_rows(result.model, image_set, rows, batch_size=batch_size, progress=progress)
    y_true, y_pred = image_set.labels[rows], proba.argmax(axis=1)
    scores = evaluation.classification_metrics(y_true, y_pred, labels=np.arange(len(result.classes)))
    scores["track_accuracy"] = evaluation.track_level_accuracy(
        proba, y_true, image_set.segments["track_id"].to_numpy()[rows])
    return {"rows": rows, "proba": proba, "y_true": y_true, "y_pred": y_pred, "scores": scores,
            "seconds_per_image": seconds / len(rows)}


def plot_training_curves(history: pd.DataFrame, *, title: str = "End-to-end ResNet-50") -> plt.Figure:
    """Fig 5: accuracy and loss per epoch, training vs validation, the phase change marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(history["epoch"], history[metric], "o-", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], "s-", label="validation")
        finetune = history.loc[history["phase"] == "finetune", "epoch"]
        if len(finetune) and len(finetune) < len(history):
            ax.axvline(finetune.iloc[0] - 0.5, color="grey", ls="--", lw=1)
            ax.text(finetune.iloc[0] - 0.45, ax.get_ylim()[1], " fine-tuning", va="top", fontsize=8, color="grey")
        for epoch in history.loc[history["best"].astype(bool), "epoch"]:
            ax.axvline(epoch, color="tab:green", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xticks(history["epoch"])
        ax.legend()
    fig.suptitle(f"{title}: training curves (dotted: best validation epoch of a phase)", fontsize=10)
    fig.tight_layout()
    return fig


def pick_samples(y_true, y_pred, *, correct: bool, n: int = 12, seed: int = 0) -> np.ndarray:
    """Positions of up to ``n`` correctly (or wrongly) classified items, spread over genres.

    Round-robin over true genres so that a grid is not filled by the easiest genre.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    hits = np.flatnonzero((y_true == y_pred) == correct)
    by_genre = [rng.permutation(hits[y_true[hits] == g]).tolist() for g in np.unique(y_true[hits])]
    picked = []
    while len(picked) < n and any(by_genre):
        for queue in by_genre:
            if queue and len(picked) < n:
                picked.append(queue.pop())
    return np.asarray(picked, dtype=np.int64)


def plot_sample_grid(image_set: ImageSet, rows, y_true, y_pred, *, classes, title: str,
                     columns: int = 4) -> plt.Figure:
    """Figs 7/8: a grid of spectrogram images labelled with their true and predicted genres."""
    rows = np.asarray(rows)
    n = max(len(rows), 1)
    cols = min(columns, n)
    lines = -(-n // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(2.6 * cols, 2.8 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not len(rows):
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    for ax, row, t, p in zip(axes.flat, rows, y_true, y_pred):
        ax.imshow(image_set.images[int(row)], cmap="magma", aspect="auto", vmin=0, vmax=255)
        track = image_set.segments["track_id"].iloc[int(row)]
        ax.set_title(f"True: {classes[int(t)]}\nPred: {classes[int(p)]}", fontsize=9,
                     color="black" if t == p else "crimson")
        ax.text(0.02, 0.02, track, transform=ax.transAxes, fontsize=6, color="white")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
