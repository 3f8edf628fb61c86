"""Training the six small networks (:mod:`genrestudy.networks.smallnets`) over their grid, cached per configuration.

Each configuration (network, optimiser, learning rate, epochs) is trained once per data and
cached (:func:`genrestudy.networks.training.cached_training`), keyed by everything that determines it:
the network, the configuration, the inputs' cache keys, the training and validation rows,
the image side, the seed and the augmentation. The images are read from the memory-mapped
image cache and resized batch by batch (:class:`ResizedBatches`); feature sequences and
summary vectors are held in memory. :func:`choose` picks a network's best configuration on
the validation rows only; the test rows are scored once per final model, by the caller.

Each training records its wall time, the time per training sample and the process's peak
resident memory while it ran (:class:`PeakRSS`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from .. import cache
from . import training
from ..efficiency import PeakRSS
from ..signals.sequences import summary_vectors
from .smallnets import BN_MOMENTUM, NETWORKS, build_network, model_header, resize_images

log = logging.getLogger(__name__)

_CACHE_KIND = "small-networks"
_VERSION = 1


class ResizedBatches(training.ImageBatches):
    """:class:`genrestudy.networks.training.ImageBatches` resized to ``size`` × ``size`` at batch time (0–255, 3 channels)."""

    def __init__(self, images, rows, labels, *, size: int, **kwargs):
        super().__init__(images, rows, labels, preprocess=None, channels=3, **kwargs)
        self.size = int(size)

    def __getitem__(self, index: int):
        rows = self.batch_rows(index)
        grey = resize_images(np.asarray(self.images[rows]), self.size)
        return training.prepare_images(grey, preprocess=None, channels=3), self.labels[rows]


@dataclass
class NetData:
    """What one network trains on: training and validation inputs, and the keys that determine them."""

    net: str
    x_train: object
    y_train: np.ndarray
    x_valid: object
    y_valid: np.ndarray
    key: dict

    @property
    def is_feed(self) -> bool:
        return isinstance(self.x_train, keras.utils.PyDataset)


def subset_rows(rows, max_rows: int | None, *, seed: int) -> np.ndarray:
    """At most ``max_rows`` of ``rows`` (a seeded draw, in ascending order); all when None."""
    rows = np.asarray(rows)
    if max_rows is None or len(rows) <= max_rows:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=int(max_rows), replace=False))


def inputs_of(net: str, data, rows) -> np.ndarray:
    """The in-memory input of a sequence network (sequences, or the MLP's summary vectors) for ``rows``."""
    sequences = np.asarray(data.input("sequences").values[np.asarray(rows)], dtype=np.float32)
    return summary_vectors(sequences) if NETWORKS[net][1] == "summary" else sequences


def net_data(net: str, data, train_rows, valid_rows, grid, *, seed: int, augmentation=None) -> NetData:
    """The training data of ``net`` from the study's data (``augmentation``: extra sequences and labels, with a key)."""
    labels = data.labels
    if NETWORKS[net][1] == "images":
        images = data.image_set.images
        feed = dict(size=grid.image_size, batch_size=grid.batch_size)
        return NetData(net, ResizedBatches(images, train_rows, labels, shuffle=True, seed=seed, **feed), labels[train_rows],
                       ResizedBatches(images, valid_rows, labels, **feed), labels[valid_rows],
                       {"images": data.image_set.key, "image_size": grid.image_size})
    x_train, y_train = inputs_of(net, data, train_rows), labels[train_rows]
    key = {"sequences": data.input("sequences").key}
    if augmentation is not None:
        x_train = np.concatenate([x_train, augmentation.sequences])
        y_train = np.concatenate([y_train, augmentation.labels])
        key["augmentation"] = augmentation.key
    return NetData(net, x_train, y_train, inputs_of(net, data, valid_rows), labels[valid_rows], key)


def _optimiser(name: str, learning_rate: float):
    if name not in ("adam", "rmsprop"):
        raise ValueError(f"unknown optimiser {name!r}; expected 'adam' or 'rmsprop'")
    cls = keras.optimizers.Adam if name == "adam" else keras.optimizers.RMSprop
    return cls(learning_rate=learning_rate)


def fit_config(net: str, config: dict, nd: NetData, *, n_classes: int, image_size: int, seed: int):
    """Build and train ``net`` with ``config``; returns ``(model, history, record)``.

    Net1–4 run their fixed epochs and keep the last weights; Net5/6 stop early on the
    validation loss (patience ``config["early_stopping"]``) and keep the best epoch's. A
    non-finite loss stops the run; it is recorded as diverged and never chosen.
    """
    keras.utils.set_random_seed(seed)
    model = build_network(net, None if nd.is_feed else nd.x_train, n_classes=n_classes, image_size=image_size,
                          bn_momentum=config.get("bn_momentum", BN_MOMENTUM))
    model.compile(optimizer=_optimiser(config["optimiser"], config["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = training.EpochTimer()
    callbacks = [timer, keras.callbacks.TerminateOnNaN()]
    if config["early_stopping"]:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config["early_stopping"],
                                                       restore_best_weights=True))
    arrays = {} if nd.is_feed else {"y": nd.y_train, "batch_size": config["batch_size"], "shuffle": True}
    valid = nd.x_valid if nd.is_feed else (nd.x_valid, nd.y_valid)
    with PeakRSS() as memory:
        started = time.perf_counter()
        fitted = model.fit(nd.x_train, validation_data=valid, epochs=config["epochs"], callbacks=callbacks,
                           verbose=0, **arrays)
        seconds = time.perf_counter() - started
    history = pd.DataFrame(fitted.history).reindex(columns=["loss", "accuracy", "val_loss", "val_accuracy"])
    history.insert(0, "phase", config["optimiser"])
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["seconds"] = timer.seconds[:len(history)]
    diverged = not np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    kept = len(history) - 1
    if config["early_stopping"] and not diverged:
        kept = int(np.nanargmin(history["val_loss"].to_numpy()))
    history["best"] = history["epoch"] == kept + 1
    n_train = len(nd.y_train)
    record = {"config": config, "epochs_run": int(len(history)), "kept_epoch": kept + 1, "diverged": diverged,
              "valid_accuracy": float(history["val_accuracy"].iloc[kept]) if not diverged else float("nan"),
              "seconds": round(seconds, 3), "seconds_per_sample": seconds / max(n_train * len(history), 1),
              "n_train": int(n_train), "params": int(model.count_params()),
              "peak_rss_mb": round(memory.peak_mb, 1), "rss_before_mb": round(memory.before_mb, 1)}
    return model, history, record


@dataclass
class ConfigResult:
    """One trained configuration: its settings, model, history and what its training recorded."""

    net: str
    config: dict
    trained: training.TrainedModel

    @property
    def record(self) -> dict:
        return self.trained.meta["training"]

    @property
    def valid_accuracy(self) -> float:
        return float(self.record["valid_accuracy"])


def train_config(net: str, config: dict, nd: NetData, data, train_rows, valid_rows, grid, *, seed: int,
                 sequence_params) -> ConfigResult:
    """Train ``net`` with ``config`` on ``nd`` once per key (:func:`genrestudy.networks.training.cached_training`)."""
    key = cache.cache_key(f"smallnet-{net}-v{_VERSION}", config, nd.key, list(data.classes), seed,
                          np.asarray(train_rows).tolist(), np.asarray(valid_rows).tolist(), sequence_params.as_dict(),
                          cache.library_versions("keras", keras.config.backend()))

    def train():
        model, history, record = fit_config(net, config, nd, n_classes=len(data.classes),
                                            image_size=grid.image_size, seed=seed)
        record.update(seed=seed, keras_backend=keras.config.backend())
        header = model_header(net, classes=data.classes, image_params=data.inputs.image_params(),
                              synthetic=data.synthetic, sequence_params=sequence_params,
                              net_size=grid.image_size, training=record)
        return model, history, header

    return ConfigResult(net, config, training.cached_training(_CACHE_KIND, key, train))


def run_grid(net: str, data, train_rows, valid_rows, grid, *, seed: int, sequence_params, augmentation=None,
             progress: bool = False, only=None) -> list[ConfigResult]:
    """Every configuration of ``grid`` for ``net`` (``only``: those indices), trained or read from the cache."""
    from ..progress import progress_bar

    train_rows = subset_rows(train_rows, grid.max_train_rows, seed=seed)
    nd = net_data(net, data, train_rows, valid_rows, grid, seed=seed, augmentation=augmentation)
    configs = [c for i, c in enumerate(grid.configs(net)) if only is None or i in only]
    results = [train_config(net, c, nd, data, train_rows, valid_rows, grid, seed=seed, sequence_params=sequence_params)
               for c in progress_bar(configs, desc=net, enabled=progress, leave=False)]
    log.info("%s: %d configurations, best validation accuracy %.3f", net, len(results),
             max((r.valid_accuracy for r in results if np.isfinite(r.valid_accuracy)), default=float("nan")))
    return results


def choose(results: list[ConfigResult]) -> ConfigResult:
    """The configuration with the highest validation accuracy (the first on a tie); diverged runs never."""
    usable = [r for r in results if np.isfinite(r.valid_accuracy)]
    if not usable:
        raise ValueError(f"every configuration of {results[0].net if results else 'the network'} diverged "
                         "(non-finite loss): lower the learning rates")
    return max(usable, key=lambda r: r.valid_accuracy)


def predict_part(result: ConfigResult, data, rows, grid) -> tuple[np.ndarray, float]:
    """``(probabilities, seconds per sample)`` of ``result``'s model on ``rows`` of the study's data."""
    model, rows = result.trained.model, np.asarray(rows)
    started = time.perf_counter()
    if NETWORKS[result.net][1] == "images":
        feed = ResizedBatches(data.image_set.images, rows, data.labels, size=grid.image_size, batch_size=64)
        proba = np.concatenate([training.predict_padded(model, feed[i][0], 64) for i in range(len(feed))])
    else:
        x = inputs_of(result.net, data, rows)
        proba = np.concatenate([training.predict_padded(model, x[s:s + 64], 64) for s in range(0, len(x), 64)])
    return proba.astype(np.float64), (time.perf_counter() - started) / max(len(rows), 1)


def grid_table(results: list[ConfigResult]) -> pd.DataFrame:
    """One row per trained configuration: validation accuracy, epochs, time, memory, parameters."""
    rows = []
    for r in results:
        rec = r.record
        rows.append({"network": NETWORKS[r.net][0], "optimiser": r.config["optimiser"],
                     "learning_rate": r.config["learning_rate"], "epochs": r.config["epochs"],
                     "epochs_run": rec["epochs_run"], "valid_accuracy": 100 * rec["valid_accuracy"],
                     "train_seconds": rec["seconds"], "train_ms_per_sample": 1000 * rec["seconds_per_sample"],
                     "params": rec["params"], "peak_rss_mb": rec["peak_rss_mb"], "n_train": rec["n_train"],
                     "diverged": rec["diverged"]})
    return pd.DataFrame(rows)
