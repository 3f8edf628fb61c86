"""The paper's hybrid: frozen-backbone features → LightGBM, tuned by Grid or Random Search.

Four rows of Table 7 come from two searches (one Grid, one Random, each at the study's
budget and first seed, cached by :func:`genrestudy.models.tuning.cached_search`):

* "ResNet-50 + LightGBM (Grid/Random Search)": the winner as the search selected it
  (:func:`genrestudy.models.tuning.refit_winner`);
* "LightGBM (Grid/Random Search)": the winner retrained from scratch with ``retrain_seed`` at
  ``retrain_rounds`` (:func:`genrestudy.models.tuning.retrain_winner`), the Tables 5/6 run.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..models import classifiers, tuning
from .base import Method, Part, register

#: Table 7 of the paper (test split of its segment-level random split), in percent
PAPER_TABLE7 = {
    "hybrid_grid": {"accuracy": 81.20, "precision_weighted": 81.25, "recall_weighted": 81.20, "f1_weighted": 81.13},
    "hybrid_random": {"accuracy": 79.00, "precision_weighted": 79.56, "recall_weighted": 79.00, "f1_weighted": 79.13},
    "retrained_grid": {"accuracy": 79.70, "precision_weighted": 79.94, "recall_weighted": 79.98, "f1_weighted": 79.95},
    "retrained_random": {"accuracy": 80.30, "precision_weighted": 80.09, "recall_weighted": 80.03,
                         "f1_weighted": 80.05},
}


def training_data(train: Part, valid: Part, *, max_bin: int) -> classifiers.TrainingData:
    """The LightGBM training data of a split's train and valid parts (binned once per process)."""
    return classifiers.TrainingData(train.features, train.labels, valid.features, valid.labels,
                                    num_class=len(train.data.classes), max_bin=max_bin)


def study_search(data: classifiers.TrainingData, method: str, inputs, *, seed: int | None = None,
                 n_jobs: int = -1, progress: bool = False):
    """The study's cached ``"grid"`` or ``"random"`` search on ``data`` (its budget, rounds, mode;
    ``seed`` defaults to the first of ``inputs.seeds``), the one notebook 03 runs too."""
    halving = {"resource": "rounds"} if inputs.search_mode == "halving" else {}
    return tuning.cached_search(data, method, budget=int(inputs.budget),
                                seed=int(inputs.seeds[0] if seed is None else seed), mode=inputs.search_mode,
                                num_boost_round=int(inputs.num_boost_round),
                                early_stopping_rounds=inputs.early_stopping_rounds, n_jobs=n_jobs,
                                random_learning_rate=inputs.random_learning_rate, progress=progress, **halving)


def retrain(data: classifiers.TrainingData, result, inputs) -> classifiers.FitResult:
    """The winner of ``result`` retrained with the inputs' ``retrain_seed`` and ``retrain_rounds``."""
    return tuning.retrain_winner(data, result, num_boost_round=int(inputs.retrain_rounds),
                                 seed=int(inputs.retrain_seed), early_stopping_rounds=inputs.early_stopping_rounds)


class _SearchedLightGBM(Method):
    """LightGBM on the backbone's features with a searched configuration."""

    needs = ("features",)
    pretrained = "study"
    search: ClassVar[str]
    retrained: ClassVar[bool]

    def settings(self) -> dict:
        inputs = self.inputs
        out = {**inputs.search_settings(), "search": self.search, "search_seed": int(inputs.seeds[0]),
               "max_bin": int(inputs.max_bin)}
        if self.retrained:
            out.update(retrain_rounds=int(inputs.retrain_rounds), retrain_seed=int(inputs.retrain_seed))
        return out

    def prepare(self, train: Part, valid: Part) -> None:
        study_search(training_data(train, valid, max_bin=int(self.inputs.max_bin)), self.search, self.inputs)

    def fit(self, train: Part, valid: Part) -> None:
        data = training_data(train, valid, max_bin=int(self.inputs.max_bin))
        result = study_search(data, self.search, self.inputs)
        fit = retrain(data, result, self.inputs) if self.retrained else tuning.refit_winner(data, result)
        self.booster = fit.booster
        self.record = {"training_seconds": fit.fit_seconds, "search_seconds": result.wall_seconds,
                       "search_fits": result.n_fits, "hyperparameters": result.best_params,
                       "seed": int(self.inputs.retrain_seed if self.retrained else result.settings["seed"]),
                       "rounds": fit.best_iteration, "valid_accuracy": fit.valid_accuracy}

    def predict_proba(self, test: Part) -> np.ndarray:
        return classifiers.predict_proba(self.booster, test.features)


@register
class HybridGrid(_SearchedLightGBM):
    key, name, search, retrained = "hybrid_grid", "ResNet-50 + LightGBM (Grid Search)", "grid", False
    paper = PAPER_TABLE7["hybrid_grid"]


@register
class HybridRandom(_SearchedLightGBM):
    key, name, search, retrained = "hybrid_random", "ResNet-50 + LightGBM (Random Search)", "random", False
    paper = PAPER_TABLE7["hybrid_random"]


@register
class RetrainedGrid(_SearchedLightGBM):
    key, name, search, retrained = "retrained_grid", "LightGBM (Grid Search)", "grid", True
    paper = PAPER_TABLE7["retrained_grid"]


@register
class RetrainedRandom(_SearchedLightGBM):
    key, name, search, retrained = "retrained_random", "LightGBM (Random Search)", "random", True
    paper = PAPER_TABLE7["retrained_random"]
