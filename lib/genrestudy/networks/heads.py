"""A dense softmax head trained on a frozen backbone's cached features, and the source's grid over it.

Neighbouring study 3 (``docs/PAPER.md``, item 3) put global average pooling and one Dense
softmax layer on a frozen backbone and searched input size × batch size × learning rate, two
epochs per trial, then trained the best configuration for five epochs. With the backbone frozen
and the images not augmented, the backbone's pooled output for an image never changes, so
training the head on the cached features (:mod:`genrestudy.extractors.features`) is the same computation
as training it on top of the backbone, at a fraction of the cost: features are extracted once
per backbone and input size, and every trial trains only the head (tests check the equivalence).

The head standardises each feature with the training part's mean and spread (a fixed layer,
:func:`standardize_layer`), then one Dense softmax layer. A randomly initialised backbone's features
can be ~1e-12 in size, on which no learning rate of the grid would move a plain Dense layer.

Batches are drawn by :func:`batch_order` (a fresh permutation of the training rows per epoch,
from the seed), and :func:`fit_batches` trains any Keras model on them, so a test can feed the
same batches to the head alone and to the head on top of the backbone. Keras 3 only.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..report.evaluation import classification_metrics

#: the source's epochs per grid trial, and for the best configuration's final training
TRIAL_EPOCHS, FINAL_EPOCHS = 2, 5
#: the source's grid: input size (px) × batch size × learning rate
SOURCE_GRID = {"input_sizes": (300, 400, 500), "batch_sizes": (32, 48, 64), "learning_rates": (0.01, 0.001, 0.0001)}


def standardize_layer(train_x: np.ndarray):
    """A standardisation layer fixed to ``train_x``'s per-feature mean and spread."""
    x = np.asarray(train_x, dtype=np.float64)
    spread = x.std(axis=0)
    scale = np.where(spread > 0, 1.0 / np.where(spread > 0, spread, 1.0), 1.0)
    return _standardize_class()(x.mean(axis=0), scale, name="standardize")


@functools.cache
def _standardize_class():
    import keras

    class Standardize(keras.layers.Layer):
        """``(x - mean) * scale`` per feature, not trained (Keras' Normalization floors the spread at 1e-7)."""

        def __init__(self, mean, scale, **kwargs):
            super().__init__(trainable=False, **kwargs)
            self._mean, self._scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)

        def build(self, input_shape):
            self.mean = self.add_weight(shape=self._mean.shape, initializer="zeros", trainable=False, name="mean")
            self.scale = self.add_weight(shape=self._scale.shape, initializer="ones", trainable=False, name="scale")
            self.mean.assign(self._mean)
            self.scale.assign(self._scale)

        def call(self, inputs):
            return (inputs - self.mean) * self.scale

    return Standardize


def build_head(train_x: np.ndarray, n_classes: int, *, seed: int = 0):
    """The head: ``(n_features,)`` features → :func:`standardize_layer` → Dense softmax, seeded initial weights.

    ``train_x`` fixes the standardisation. Call the returned model on a backbone's pooled
    output to put the same head on top of the backbone.
    """
    import keras

    inputs = keras.Input((int(train_x.shape[1]),), dtype="float32", name="pooled_features")
    x = standardize_layer(train_x)(inputs)
    outputs = keras.layers.Dense(int(n_classes), activation="softmax", dtype="float32", name="genre",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=int(seed)))(x)
    return keras.Model(inputs, outputs, name="dense_head")


def batch_order(n: int, *, batch_size: int, epochs: int, seed: int = 0) -> list[np.ndarray]:
    """Row indices of every training step: per epoch a permutation of ``range(n)`` from ``seed``, cut in batches."""
    if n < 1 or batch_size < 1 or epochs < 1:
        raise ValueError(f"need n, batch_size and epochs >= 1, got {n}, {batch_size}, {epochs}")
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(epochs):
        order = rng.permutation(n)
        steps += [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return steps


def fit_batches(model, batch_inputs: Callable[[np.ndarray], np.ndarray], labels: np.ndarray, *,
                learning_rate: float, batch_size: int, epochs: int, seed: int = 0) -> list[float]:
    """Train ``model`` (Adam, sparse categorical cross-entropy) on the batches of :func:`batch_order`.

    ``batch_inputs(rows)`` gives the model's inputs of training rows ``rows`` (cached features
    for a head, preprocessed images for a head on top of a backbone). Returns each step's loss.
    """
    import keras

    labels = np.asarray(labels)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    losses = []
    for rows in batch_order(len(labels), batch_size=batch_size, epochs=epochs, seed=seed):
        loss = model.train_on_batch(batch_inputs(rows), labels[rows])
        losses.append(float(loss[0] if isinstance(loss, (list, tuple)) else loss))
    if not np.isfinite(losses).all():
        raise ValueError(f"the head diverged (non-finite loss) at learning rate {learning_rate}")
    return losses


def predict_head(model, x: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Class probabilities of feature rows ``x`` (the model called eagerly: a new head per trial would
    otherwise trace a new prediction function each time)."""
    import keras

    x = np.asarray(x, dtype=np.float32)
    if not len(x):
        raise ValueError("no feature rows to predict")
    return np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + chunk], training=False)).astype(np.float64)
                           for i in range(0, len(x), chunk)])


@dataclass
class HeadFit:
    """A trained head and how it was trained; ``valid_*`` scored on the validation rows."""

    model: object
    learning_rate: float
    batch_size: int
    epochs: int
    seed: int
    seconds: float
    valid_f1_macro: float
    valid_accuracy: float
    losses: list = field(default_factory=list, repr=False)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return predict_head(self.model, x)


def train_head(train_x, train_y, valid_x, valid_y, *, learning_rate: float, batch_size: int, epochs: int,
               seed: int = 0, n_classes: int | None = None) -> HeadFit:
    """Train the dense softmax head on ``(n, d)`` features and score it on the validation rows.

    Parameters
    ----------
    train_x, valid_x : np.ndarray
        ``(n, d)`` features (any extractor's), rows aligned with ``train_y`` / ``valid_y``.
    train_y, valid_y : np.ndarray
        Integer class codes.
    learning_rate, batch_size, epochs : float, int, int
        Adam's learning rate, rows per step, passes over the training rows.
    seed : int
        Initial weights and batch order.
    n_classes : int, optional
        Default: one more than the largest code seen.

    Returns
    -------
    HeadFit
    """
    import keras

    train_x, valid_x = np.asarray(train_x, np.float32), np.asarray(valid_x, np.float32)
    train_y, valid_y = np.asarray(train_y), np.asarray(valid_y)
    if train_x.ndim != 2 or valid_x.ndim != 2 or len(train_x) != len(train_y) or len(valid_x) != len(valid_y):
        raise ValueError(f"expected (n, d) features aligned with their labels, got {train_x.shape} / {len(train_y)} "
                         f"and {valid_x.shape} / {len(valid_y)}")
    n_classes = int(n_classes or max(train_y.max(), valid_y.max()) + 1)
    keras.utils.set_random_seed(int(seed))
    started = time.perf_counter()
    model = build_head(train_x, n_classes, seed=seed)
    losses = fit_batches(model, lambda rows: train_x[rows], train_y, learning_rate=learning_rate,
                         batch_size=batch_size, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - started
    scores = classification_metrics(valid_y, predict_head(model, valid_x).argmax(axis=1),
                                    labels=list(range(n_classes)))
    return HeadFit(model, float(learning_rate), int(batch_size), int(epochs), int(seed), seconds,
                   scores["f1_macro"], scores["accuracy"], losses)


@dataclass
class HeadSearch:
    """The grid's trials (one row each), the best configuration, and the head retrained with it."""

    trials: pd.DataFrame
    best: dict
    final: HeadFit
    tuning_seconds: float

    @property
    def training_seconds(self) -> float:
        return self.final.seconds


def search_heads(features_by_size: dict, train_y, valid_y, *, batch_sizes, learning_rates, seed: int = 0,
                 n_classes: int | None = None, trial_epochs: int = TRIAL_EPOCHS, final_epochs: int = FINAL_EPOCHS,
                 progress: bool = False) -> HeadSearch:
    """The source's grid: every input size × batch size × learning rate, ``trial_epochs`` each, selected
    on validation macro F1 (the first in grid order on a tie), the best retrained for ``final_epochs``.

    ``features_by_size`` maps an input size to ``(train_x, valid_x)``: that size's cached features
    of the training and validation rows.
    """
    from ..progress import progress_bar

    grid = [(int(s), int(b), float(lr)) for s in features_by_size for b in batch_sizes for lr in learning_rates]
    if not grid:
        raise ValueError("the head grid is empty: give at least one input size, batch size and learning rate")
    rows = []
    for size, batch, lr in progress_bar(grid, desc="head grid", enabled=progress, leave=False):
        train_x, valid_x = features_by_size[size]
        fit = train_head(train_x, train_y, valid_x, valid_y, learning_rate=lr, batch_size=batch, epochs=trial_epochs,
                         seed=seed, n_classes=n_classes)
        rows.append({"input_size": size, "batch_size": batch, "learning_rate": lr, "epochs": trial_epochs,
                     "valid_f1_macro": 100 * fit.valid_f1_macro, "valid_accuracy": 100 * fit.valid_accuracy,
                     "seconds": fit.seconds})
    trials = pd.DataFrame(rows)
    best = trials.loc[int(trials["valid_f1_macro"].to_numpy().argmax())]
    train_x, valid_x = features_by_size[int(best["input_size"])]
    final = train_head(train_x, train_y, valid_x, valid_y, learning_rate=float(best["learning_rate"]),
                       batch_size=int(best["batch_size"]), epochs=final_epochs, seed=seed, n_classes=n_classes)
    chosen = {"input_size": int(best["input_size"]), "batch_size": int(best["batch_size"]),
              "learning_rate": float(best["learning_rate"]), "epochs": int(final_epochs)}
    return HeadSearch(trials, chosen, final, float(trials["seconds"].sum()))
