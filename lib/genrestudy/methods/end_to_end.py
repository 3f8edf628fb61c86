"""The paper's comparison model: ResNet-50 trained end to end on the mel images (:mod:`genrestudy.networks.endtoend`).

Its training settings are the study's end-to-end profile (``inputs.profile``) with the
study's backbone weights (``inputs.weights``: random init in the demo, ImageNet in the paper
profile), so notebook 04 and Table 7 train, and cache, the same model.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np

from .base import Method, Part, register


def train_settings(inputs, **overrides):
    """The end-to-end :class:`~genrestudy.networks.endtoend.TrainSettings` of the study's inputs.

    ``overrides`` (None: the profile's value) are notebook 04's explorations; Table 7 trains
    with none.
    """
    from ..networks import endtoend

    return replace(endtoend.training_settings(inputs.profile, **overrides), weights=inputs.weights)


def train_on_split(image_set, split, settings, *, progress: bool = True):
    """Train (or read from the cache) the end-to-end model on ``split``'s train and valid parts.

    The test rows are blanked before the trainer sees the split, so they are not part of the
    model's cache key either: notebook 04 and Table 7 share one trained model.
    """
    from ..networks import endtoend

    values = np.asarray(split, dtype=object)
    trainer_split = np.where(np.isin(values, ["train", "valid"]), values, "")
    return endtoend.train_end_to_end(image_set, trainer_split, settings=settings, progress=progress)


def split_of(train: Part, valid: Part) -> np.ndarray:
    """``train``/``valid`` per image (empty elsewhere): what the end-to-end trainer takes."""
    split = np.full(len(train.image_set), "", dtype=object)
    split[train.rows] = "train"
    split[valid.rows] = "valid"
    return split


@register
class EndToEnd(Method):
    key, name, needs = "end_to_end", "ResNet-50 end-to-end", ("images",)
    pretrained = "study"
    paper = {"accuracy": 82.50, "precision_weighted": 82.65, "recall_weighted": 82.50, "f1_weighted": 83.44}

    def settings(self) -> dict:
        return {k: v for k, v in asdict(train_settings(self.inputs)).items() if k != "workers"}

    def fit(self, train: Part, valid: Part) -> None:
        self.result = train_on_split(train.image_set, split_of(train, valid), train_settings(self.inputs), progress=False)
        training = self.result.meta["training"]
        self.record = {"training_seconds": training["seconds_total"], "epochs": training["epochs"],
                       "hyperparameters": training["settings"], "seed": training["settings"]["seed"],
                       "model_file": str(self.result.model_file)}

    def predict_proba(self, test: Part) -> np.ndarray:
        from ..networks.training import predict_rows

        proba, _ = predict_rows(self.result.model, test.image_set, test.rows, progress=False)
        return proba
