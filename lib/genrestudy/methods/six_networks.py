"""Table 7's six small networks of neighbouring study 2 (:mod:`genrestudy.networks.smallnets`), each at its best configuration.

A method's ``fit`` trains its network over the grid of the run profile (``inputs.profile``:
the source's full grid at 180 × 180 in ``paper``, a reduced one in ``demo``) and keeps the
configuration with the best validation accuracy; every configuration is cached, so notebook
06 and Table 7 share them. Net6 first trains the feature CGAN on the same training rows
(:func:`genrestudy.networks.cgan.feature_augmentation`). The source's numbers were measured on its
own 70/20/10 random split and not in the paper's layout: they are not given as ``paper``
rows here, but in notebook 06's own labelled rows.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..networks import smallnets
from ..signals.sequences import SequenceParams
from .base import Method, Part, register


class _SmallNetwork(Method):
    """One of the six networks, its configuration chosen on the validation part."""

    net: ClassVar[str]
    sequence_params: ClassVar[SequenceParams] = SequenceParams()

    @property
    def grid(self) -> smallnets.Grid:
        return smallnets.grid_of(self.inputs.profile)

    @property
    def seed(self) -> int:
        return int(self.inputs.seeds[0])

    def settings(self) -> dict:
        return {"net": self.net, "grid": self.grid.as_dict(), "configs": self.grid.configs(self.net),
                "sequence_params": self.sequence_params.as_dict(), "seed": self.seed}

    def augmentation(self, train: Part):
        return None

    def train_grid(self, train: Part, valid: Part, only=None) -> list:
        """The grid's configurations (``only``: those indices), each trained or read from its cache."""
        from ..networks import smallnets_training as st

        return st.run_grid(self.net, train.data, train.rows, valid.rows, self.grid, seed=self.seed,
                           sequence_params=self.sequence_params, augmentation=self.augmentation(train), only=only)

    def tasks(self, train: Part, valid: Part) -> list[list[tuple]]:
        """On a cluster: the augmentation (when there is one) in a stage of its own, then one task per configuration."""
        configs = [[(_train_configs, (self, train, valid, [i])) for i in range(len(self.grid.configs(self.net)))]]
        augmented = type(self).augmentation is not _SmallNetwork.augmentation
        return [[(_augment, (self, train))], *configs] if augmented else configs

    def fit(self, train: Part, valid: Part) -> None:
        from ..networks import smallnets_training as st

        results = self.train_grid(train, valid)
        self.results, self.best = results, st.choose(results)
        rec = self.best.record
        self.record = {"training_seconds": float(sum(r.record["seconds"] for r in results)),
                       "hyperparameters": dict(self.best.config), "seed": self.seed, "epochs": rec["epochs_run"],
                       "valid_accuracy": rec["valid_accuracy"], "configurations": len(results),
                       "params": rec["params"], "peak_rss_mb": rec["peak_rss_mb"],
                       "train_seconds_per_sample": rec["seconds_per_sample"], "reduced_grid": self.grid.reduced,
                       "model_file": str(self.best.trained.model_file)}

    def predict_proba(self, test: Part) -> np.ndarray:
        from ..networks import smallnets_training as st

        proba, per_sample = st.predict_part(self.best, test.data, test.rows, self.grid)
        self.record["predict_seconds_per_sample"] = per_sample
        return proba


def _augment(method: _SmallNetwork, train: Part) -> None:
    method.augmentation(train)   # into its cache


def _train_configs(method: _SmallNetwork, train: Part, valid: Part, only: list) -> None:
    method.train_grid(train, valid, only)   # into the cache; the models stay on the worker


@register
class Net1MLP(_SmallNetwork):
    key, name, needs, net = "net1_mlp", "Net1 MLP (feature summary)", ("sequences",), "net1"


@register
class Net2CNN(_SmallNetwork):
    key, name, needs, net = "net2_cnn", "Net2 CNN", ("images",), "net2"


@register
class Net3CNNBatchNorm(_SmallNetwork):
    key, name, needs, net = "net3_cnn_bn", "Net3 CNN + batch norm (Adam)", ("images",), "net3"


@register
class Net4CNNBatchNormRMSprop(_SmallNetwork):
    key, name, needs, net = "net4_cnn_bn_rmsprop", "Net4 CNN + batch norm (RMSprop)", ("images",), "net4"


@register
class Net5LSTM(_SmallNetwork):
    key, name, needs, net = "net5_lstm", "Net5 LSTM", ("sequences",), "net5"


@register
class Net6LSTMCGAN(_SmallNetwork):
    key, name, needs, net = "net6_lstm_cgan", "Net6 LSTM + feature CGAN", ("sequences",), "net6"

    def augmentation(self, train: Part):
        from ..networks import cgan
        from ..networks.smallnets_training import subset_rows

        rows = subset_rows(train.rows, self.grid.max_train_rows, seed=self.seed)
        sequences = np.asarray(train.data.input("sequences").values[rows], dtype=np.float32)
        return cgan.feature_augmentation(sequences, train.data.labels[rows], n_classes=len(train.data.classes),
                                         epochs=self.grid.cgan_epochs, seed=self.seed,
                                         data_key={"sequences": train.data.input("sequences").key, "rows": rows.tolist()})

    def fit(self, train: Part, valid: Part) -> None:
        super().fit(train, valid)
        found = self.augmentation(train)  # from its cache
        self.record.update(cgan_params=found.params, cgan_seconds=found.seconds, cgan_peak_rss_mb=found.peak_rss_mb,
                           generated_rows=len(found.labels))
        self.record["training_seconds"] += found.seconds


class Net6WaveformCGAN(Net6LSTMCGAN):
    """Net5 trained on real and waveform-CGAN generated sequences: the source's main setup, the ``paper``
    profile's (about 200 M parameters). Notebook 06 compares it; it is not registered (not in Table 7)."""

    key, name = "net6_lstm_waveform_cgan", "Net6 LSTM + waveform CGAN"

    def augmentation(self, train: Part):
        from ..networks import cgan
        from ..networks.smallnets_training import subset_rows
        from ..run.study import signal_set

        rows = subset_rows(train.rows, self.grid.max_train_rows, seed=self.seed)
        return cgan.waveform_augmentation(signal_set(self.inputs), rows, train.data.labels[rows],
                                          n_classes=len(train.data.classes), epochs=self.grid.cgan_epochs,
                                          seed=self.seed, sequence_params=self.sequence_params)
