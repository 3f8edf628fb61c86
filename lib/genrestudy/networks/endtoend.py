"""Spectrogram images → end-to-end ResNet-50: the paper's comparison model.

ResNet-50 (``keras.applications``, ImageNet, local or no weights; :mod:`genrestudy.extractors.backbones`)
closed with the head of study 4 in PAPER.md: global average pooling → Dense 512 ReLU →
Dropout 0.5 → Dense softmax, with the pooled features standardised first (a batch
normalisation layer of the head's own, which the paper does not describe: see
:func:`build_model`). Training has two phases:

1. **head**: the backbone frozen, only the head learns;
2. **fine-tuning**: the top ``finetune_blocks`` residual blocks of the backbone (or
   ``"all"`` of it) learn too, at a lower learning rate.

Both phases use Adam on the sparse categorical cross-entropy with early stopping on the
validation loss (the best epoch's weights are kept). The backbone's batch normalisation
layers stay frozen, in inference mode, in both phases: their ImageNet statistics are not
overwritten by the statistics of small batches of spectrograms. Each grey image is repeated
on three channels and goes through the backbone's own ``preprocess_input`` on its 0–255
values; the network resizes it to ``input_size`` itself.

Feeding, augmentation, fitting and the model cache are :mod:`genrestudy.networks.training`'s, the
precision rule :mod:`genrestudy.device`'s, the ``.keras`` file format (label order and
preprocessing settings included) :mod:`genrestudy.models.modelfile`'s, the figures
:mod:`genrestudy.report.plots.networks`'. Keras 3 only: the same code runs under
``KERAS_BACKEND=tensorflow``, ``jax`` or ``torch``.
"""
from __future__ import annotations

import datetime
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .. import cache, device
from ..extractors import backbones
from ..models import modelfile
from . import training
from ..signals.images import ImageParams, ImageSet
from .training import Augmentation

log = logging.getLogger(__name__)

_CACHE_KIND = "endtoend"
# Bump when a change in this module changes what a cached model holds.
_FORMAT_VERSION = 2

BACKBONE = "ResNet50"
#: name of the nested backbone model inside the end-to-end model
BACKBONE_LAYER = "resnet50"
#: ``finetune_blocks`` value that unfreezes the whole backbone, stem included
ALL_BLOCKS = "all"
_BLOCK = re.compile(r"^(conv\d+_block\d+)_")


# ---------------------------------------------------------------- settings

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
        Compute precision; ``"auto"``: bfloat16 (mixed) on a GPU, float32 on a CPU
        (:func:`genrestudy.device.resolve_precision` with ``training=True``).
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
            "input_size": self.input_size >= backbones.backbone_spec(BACKBONE).min_size,
            "head_epochs": self.head_epochs >= 0, "finetune_epochs": self.finetune_epochs >= 0,
            "finetune_blocks": self.finetune_blocks == ALL_BLOCKS or (
                isinstance(self.finetune_blocks, (int, np.integer)) and self.finetune_blocks >= 0),
            "batch_size": self.batch_size >= 1, "head_learning_rate": self.head_learning_rate > 0,
            "finetune_learning_rate": self.finetune_learning_rate > 0, "patience": self.patience >= 1,
            "dense_units": self.dense_units >= 1, "dropout": 0.0 <= self.dropout < 1.0,
            "precision": self.precision in device.TRAINING_PRECISIONS, "workers": self.workers >= 1,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings {', '.join(bad)} (input_size >= 32, epochs >= 0, "
                             f"finetune_blocks an integer >= 0 or 'all', precision one of {device.TRAINING_PRECISIONS})")
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
    # the demo's backbone is random (no ImageNet weights offline): spectrogram augmentation then
    # changes its features more than the genres do, so the demo trains on the images as they are
    "demo": TrainSettings(augmentation=None),
    # 4 feeding threads: one CPU thread prepares batches more slowly than a GPU trains on them
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
        See :func:`genrestudy.extractors.backbones.build_backbone`: ImageNet (a one-line
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
    spec = backbones.backbone_spec(BACKBONE)
    if input_size < spec.min_size:
        raise ValueError(f"{spec.name} needs input_size >= {spec.min_size}, got {input_size}")
    if weights is not None and weights != "imagenet":
        backbones.weights_identity(weights)  # a missing file fails here with one clear line
    keras.utils.set_random_seed(int(seed))
    with training.building_in(precision):
        backbone = backbones.application(spec, weights=weights, input_size=input_size)
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
        # the pooled features are standardised before the head: a random-init backbone's features
        # (the offline demo) span scales that keep Adam from training the head in a few epochs,
        # and ImageNet's are harmless to standardise; momentum 0.9 lets the running statistics
        # settle within an epoch of a small training set
        x = keras.layers.BatchNormalization(momentum=0.9, name="head_norm")(x)
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
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

class EndToEndResult(training.TrainedModel):
    """A trained end-to-end model (:class:`genrestudy.networks.training.TrainedModel`).

    ``history``'s ``epoch`` counts on over both phases; its ``phase`` is ``head`` or ``finetune``.
    """


def train_cache_key(image_set: ImageSet, split, settings: TrainSettings) -> str:
    """Key of a trained model: the image cache, the split, every setting but ``workers``, the backend and versions.

    ``workers`` only changes speed: each batch's shuffle and augmentation are seeded by its
    epoch and position, not by the thread that makes it.
    """
    backend = keras.config.backend()
    determining = {k: v for k, v in asdict(settings).items() if k != "workers"}
    return cache.cache_key(f"endtoend-v{_FORMAT_VERSION}", image_set.key, np.asarray(split).tolist(),
                           determining, device.resolve_precision(settings.precision, training=True), backend,
                           cache.library_versions("keras", backend, "numpy"))


def train_end_to_end(image_set: ImageSet, split, *, settings: TrainSettings | None = None,
                     cache_root: Path | None = None, progress: bool = True) -> EndToEndResult:
    """Train (or take from the cache) the end-to-end ResNet-50 on ``image_set``'s training split.

    Parameters
    ----------
    image_set : ImageSet
        The cached mel images (:func:`genrestudy.run.study.image_set`).
    split : pd.Series or array-like
        ``"train"``/``"valid"``/``"test"`` per image (:func:`genrestudy.data.splits.make_split`);
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
    rows = training.split_rows(split)
    key = train_cache_key(image_set, split, settings)
    return training.cached_training(_CACHE_KIND, key, lambda: _train(image_set, rows, settings, progress=progress),
                                    open_entry=open_trained, root=cache_root)


def _train(image_set: ImageSet, rows: dict, settings: TrainSettings, *, progress: bool):
    """Both phases from scratch: ``(model, history, header)`` for :func:`genrestudy.networks.training.cached_training`."""
    labels, image_size = image_set.labels, int(image_set.images.shape[1])
    precision = device.resolve_precision(settings.precision, training=True)
    feed = dict(preprocess=BACKBONE, batch_size=settings.batch_size, seed=settings.seed, workers=settings.workers)
    train = training.ImageBatches(image_set.images, rows["train"], labels, shuffle=True,
                                  augmentation=settings.augmentation, **feed)
    valid = training.ImageBatches(image_set.images, rows["valid"], labels, **feed)
    model = build_model(len(image_set.classes), image_size=image_size, input_size=settings.input_size,
                        weights=settings.weights, dense_units=settings.dense_units, dropout=settings.dropout,
                        precision=precision, seed=settings.seed)
    history, seconds = _run_phases(model, train, valid, settings, verbose=2 if progress else 0)
    record = training.training_record(rows, history, seconds, precision=precision)
    header = model_metadata(
        classes=image_set.classes, image_params=image_set.meta.get("params", {}), input_size=settings.input_size,
        image_size=image_size, weights=backbones.weights_identity(settings.weights, seed=settings.seed),
        synthetic=image_set.synthetic,
        training={"settings": asdict(settings), "image_cache": image_set.key, **record})
    return model, history, header


def _run_phases(model, train, valid, settings: TrainSettings, *, verbose: int) -> tuple[pd.DataFrame, dict]:
    """The head phase, then fine-tuning: the joined history and each phase's seconds."""
    phases, seconds = [], {}
    common = dict(patience=settings.patience, verbose=verbose)
    if settings.head_epochs:
        frame, seconds["head"] = training.fit_phase(model, train, valid, phase="head", first_epoch=0,
                                                    learning_rate=settings.head_learning_rate,
                                                    epochs=settings.head_epochs, **common)
        phases.append(frame)
    if settings.finetunes:
        trainable = set_trainable_blocks(model, settings.finetune_blocks)
        log.info("fine-tuning %s backbone blocks: %d trainable parameters", settings.finetune_blocks, trainable)
        done = int(phases[-1]["epoch"].iloc[-1]) if phases else 0
        frame, seconds["finetune"] = training.fit_phase(model, train, valid, phase="finetune", first_epoch=done,
                                                        learning_rate=settings.finetune_learning_rate,
                                                        epochs=settings.finetune_epochs, **common)
        phases.append(frame)
    return training.join_phases(phases), seconds


def open_trained(entry: Path) -> EndToEndResult:
    """A complete cache entry of :func:`train_end_to_end`."""
    return EndToEndResult.open(entry)


def model_metadata(*, classes, image_params, input_size: int, image_size: int, weights: str,
                   synthetic: bool, training: dict) -> dict:
    """The header an end-to-end model file carries (the format is :mod:`genrestudy.models.modelfile`'s)."""
    spec = backbones.backbone_spec(BACKBONE)
    params = asdict(ImageParams(**dict(image_params)))  # validates, fills defaults
    if params["image_size"] != image_size:
        raise ValueError(f"image parameters say {params['image_size']} px images, the model takes {image_size} px")
    return modelfile.model_header(
        "end-to-end", classes=list(classes), image_params=params, backbone=spec.name, weights=weights,
        preprocessing=spec.preprocessing_note, input_size=int(input_size), synthetic=bool(synthetic),
        training=training, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


# ---------------------------------------------------------------- evaluation

def evaluate(result: EndToEndResult, image_set: ImageSet, split, *, part: str = "test",
             batch_size: int = 64, progress: bool = True) -> dict:
    """Score the model once on one part of the split (segments and tracks).

    Returns
    -------
    dict
        :func:`genrestudy.networks.training.evaluate_part`'s: ``rows`` (image rows), ``proba``,
        ``y_true``, ``y_pred``, ``scores`` (classification metrics plus ``track_accuracy``)
        and ``seconds_per_image`` of the prediction pass.
    """
    return training.evaluate_part(result, image_set, split, part=part, preprocess=BACKBONE,
                                  batch_size=batch_size, progress=progress)


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
