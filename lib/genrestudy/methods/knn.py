"""Table 7's spectral KNN: k chosen on validation by enumeration, the GA's choice recorded beside it.

The KNN and its choices are :mod:`genrestudy.models.knn` and :mod:`genrestudy.models.genetic`; importing
this module also registers the ``"knn"`` model file kind (:mod:`genrestudy.models.knn_model`).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import ClassVar

import numpy as np

from ..signals import spectral
from ..models import knn_model
from ..models.genetic import GASettings, ga_knn
from ..models.knn import K_VALUES, KChoice, KnnProblem, class_probabilities, plain_knn
from .base import Method, Part, register


class _SpectralKNN(Method):
    """KNN on the spectral features of the study's segments, k chosen on the validation part."""

    needs = ("spectral",)
    scale: ClassVar[bool] = True

    def settings(self) -> dict:
        return {"spectral": asdict(spectral.study_params(self.inputs)), "scale": self.scale,
                "k_values": [min(K_VALUES), max(K_VALUES)]}

    def choose(self, problem: KnnProblem) -> KChoice:
        raise NotImplementedError

    def fit(self, train: Part, valid: Part) -> None:
        values = train.data.values("spectral")
        self.n_classes = len(train.data.classes)
        problem = KnnProblem(values[train.rows], train.labels, values[valid.rows], valid.labels,
                             n_classes=self.n_classes, scale=self.scale)
        choice = self.choose(problem)
        self.pipeline = problem.fit(choice.k)
        self.record = {"training_seconds": choice.seconds, "hyperparameters": {"k": choice.k, "scale": self.scale},
                       "seed": choice.seed, "k": choice.k, "valid_accuracy": choice.valid_accuracy,
                       "fitness_evaluations": choice.evaluations, "distinct_k_fitted": choice.distinct_k}

    def predict_proba(self, test: Part) -> np.ndarray:
        return class_probabilities(self.pipeline, test.data.values("spectral")[test.rows], self.n_classes)


@register
class SpectralKNN(_SpectralKNN):
    """One Table 7 row: k enumerated on validation, the source's GA run beside it as a check.

    At the source's middle setting (population 10 × 20 generations) the GA's fitness is
    memoised and it fits nearly every one of the 15 values of k, so a "GA" row would be this
    row again. The GA's k, whether it is the enumerated k, and its cost (fitness evaluations,
    distinct fits, seconds) are recorded in the row's details instead; where the GA differs
    from enumeration (small populations) is notebook 05's :func:`genrestudy.models.genetic.agreement`.
    """

    key, name = "spectral_knn", "Spectral KNN"
    #: the GA run recorded beside the enumeration: the middle of the source's 9 settings, the study's first seed
    ga: ClassVar[GASettings] = GASettings(population=10, generations=20)

    def settings(self) -> dict:
        return {**super().settings(), "ga": self.ga.as_dict(), "ga_seed": int(self.inputs.seeds[0])}

    def choose(self, problem: KnnProblem) -> KChoice:
        plain = plain_knn(problem)
        ga = ga_knn(problem, self.ga, seed=int(self.inputs.seeds[0]))
        self.ga_record = {"ga_k": ga.k, "ga_found_enumerated_k": ga.k == plain.k,
                          "ga_fitness_evaluations": ga.evaluations, "ga_distinct_k_fitted": ga.distinct_k,
                          "ga_seconds": ga.seconds, "ga_settings": f"{ga.label}, seed {ga.seed}"}
        return plain

    def fit(self, train: Part, valid: Part) -> None:
        super().fit(train, valid)
        self.record.update(self.ga_record)
