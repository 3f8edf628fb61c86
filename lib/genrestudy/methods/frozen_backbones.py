"""Neighbouring study 3's methods: per frozen backbone, a dense softmax head and a LightGBM on its features.

For every backbone of :data:`genrestudy.extractors.backbones.BACKBONES` two methods are registered:

* "frozen <backbone> + dense head" (the source's way): the head grid of
  :func:`genrestudy.networks.heads.search_heads` over the inputs' ``compared_input_sizes`` ×
  ``head_batch_sizes`` × ``head_learning_rates`` on the backbone's cached features, the best
  configuration (validation macro F1) retrained for five epochs;
* "<backbone> features + LightGBM" (the paper's way): the study's Random Search (its budget,
  rounds and first seed, :func:`genrestudy.methods.hybrid.study_search`) on the features of each
  input size, the size whose search scored best on validation kept, its winner refitted.

They take part in Table 7 only for the backbones in the inputs' ``compared_backbones``
(:meth:`Method.applies`), so a demo run never extracts EfficientNetB7 features at 600 px. The
features are those notebook 07 extracts and caches (:meth:`StudyData.features`).
"""
from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from ..models import classifiers, tuning
from ..networks import heads
from ..extractors.backbones import BACKBONES, imagenet_weights_path
from .base import Method, Part, backbone_features, register
from .hybrid import study_search

log = logging.getLogger(__name__)
_told: set = set()

#: the Random Search the LightGBM way runs on each input size's features (the study's own budget)
LIGHTGBM_SEARCH = "random"


class _FrozenBackbone(Method):
    """A method on one backbone's cached features, at each of the inputs' compared input sizes."""

    backbone: ClassVar[str]
    needs = ()
    pretrained = "study"

    def __init__(self, inputs):
        super().__init__(inputs)
        # the features it reads, one cache entry per input size (part of its runs' cache keys)
        self.needs = tuple(backbone_features(self.backbone, size) for size in inputs.compared_input_sizes)

    @classmethod
    def applies(cls, inputs) -> bool:
        """A compared backbone, unless ImageNet weights are asked for and its file is missing here (then
        one logged line names the file, as notebook 07 skips it); the study's own backbone always applies."""
        if cls.backbone not in inputs.compared_backbones:
            return False
        if inputs.weights != "imagenet" or cls.backbone == inputs.backbone:
            return True
        missing = [path for path in (imagenet_weights_path(cls.backbone, s) for s in inputs.compared_input_sizes)
                   if not path.is_file()]
        if missing and cls.backbone not in _told:  # one line per backbone and process
            _told.add(cls.backbone)
            log.warning("%s's methods skipped: %s is not in %s", cls.backbone, missing[0].name, missing[0].parent)
        return not missing

    def features_by_size(self, train: Part, valid: Part) -> dict:
        """``{input size: (train features, valid features)}``."""
        out = {}
        for size in self.inputs.compared_input_sizes:
            x = train.data.features(self.backbone, size)
            out[int(size)] = (x[train.rows], x[valid.rows])
        return out

    def test_features(self, test: Part) -> np.ndarray:
        return test.data.features(self.backbone, self.input_size)[test.rows]


class _DenseHead(_FrozenBackbone):
    """The source's way: the head grid, its winner retrained."""

    def settings(self) -> dict:
        inputs = self.inputs
        return {"backbone": self.backbone, "input_sizes": list(inputs.compared_input_sizes),
                "batch_sizes": list(inputs.head_batch_sizes), "learning_rates": list(inputs.head_learning_rates),
                "trial_epochs": heads.TRIAL_EPOCHS, "final_epochs": heads.FINAL_EPOCHS,
                "seed": int(inputs.seeds[0])}

    def fit(self, train: Part, valid: Part) -> None:
        search = heads.search_heads(self.features_by_size(train, valid), train.labels, valid.labels,
                                    batch_sizes=self.inputs.head_batch_sizes,
                                    learning_rates=self.inputs.head_learning_rates, seed=int(self.inputs.seeds[0]),
                                    n_classes=len(train.data.classes))
        self.head, self.input_size = search.final, search.best["input_size"]
        by_size = search.trials.groupby("input_size")["valid_f1_macro"].max()
        self.record = {"training_seconds": search.training_seconds, "search_seconds": search.tuning_seconds,
                       "search_fits": int(len(search.trials)), "hyperparameters": search.best,
                       "seed": int(self.inputs.seeds[0]), "input_size": int(self.input_size),
                       "valid_f1_macro": 100 * search.final.valid_f1_macro,
                       "valid_f1_macro_by_input_size": {str(int(k)): float(v) for k, v in by_size.items()}}

    def predict_proba(self, test: Part) -> np.ndarray:
        return self.head.predict_proba(self.test_features(test))


class _FeaturesLightGBM(_FrozenBackbone):
    """The paper's way: the study's search on each input size's features, the best size's winner refitted."""

    def settings(self) -> dict:
        inputs = self.inputs
        return {"backbone": self.backbone, "input_sizes": list(inputs.compared_input_sizes),
                **inputs.compared_search_inputs().search_settings(), "search": LIGHTGBM_SEARCH, "search_seed": int(inputs.seeds[0]),
                "max_bin": int(inputs.max_bin)}

    def searches(self, train: Part, valid: Part) -> dict:
        """``{input size: (training data, search)}``: the study's search on each size's features (cached)."""
        searched = {}
        for size, (train_x, valid_x) in self.features_by_size(train, valid).items():
            data = classifiers.TrainingData(train_x, train.labels, valid_x, valid.labels,
                                            num_class=len(train.data.classes), max_bin=int(self.inputs.max_bin))
            searched[size] = (data, study_search(data, LIGHTGBM_SEARCH, self.inputs.compared_search_inputs()))
        return searched

    def prepare(self, train: Part, valid: Part) -> None:
        self.searches(train, valid)

    def fit(self, train: Part, valid: Part) -> None:
        searched = self.searches(train, valid)
        self.input_size = max(searched, key=lambda size: searched[size][1].best_valid_accuracy)
        data, result = searched[self.input_size]
        fit = tuning.refit_winner(data, result)
        self.booster = fit.booster
        self.record = {"training_seconds": fit.fit_seconds,
                       "search_seconds": sum(r.wall_seconds for _, r in searched.values()),
                       "search_fits": sum(r.n_fits for _, r in searched.values()), "hyperparameters": result.best_params,
                       "seed": int(result.settings["seed"]), "input_size": int(self.input_size),
                       "rounds": fit.best_iteration, "valid_accuracy": fit.valid_accuracy}

    def predict_proba(self, test: Part) -> np.ndarray:
        return classifiers.predict_proba(self.booster, self.test_features(test))


def method_keys(backbone: str) -> tuple[str, str]:
    """Registry keys of ``backbone``'s two methods: (dense head, LightGBM)."""
    stem = backbone.lower()
    return f"frozen_{stem}_dense_head", f"{stem}_features_lightgbm"


def _register_backbone(backbone: str) -> None:
    head_key, lightgbm_key = method_keys(backbone)
    for base, key, name in ((_DenseHead, head_key, f"frozen {backbone} + dense head"),
                            (_FeaturesLightGBM, lightgbm_key, f"{backbone} features + LightGBM")):
        cls = type(f"{backbone}{base.__name__.lstrip('_')}", (base,),
                   {"key": key, "name": name, "backbone": backbone, "__module__": __name__,
                    "__doc__": f"{name} (neighbouring study 3)."})
        globals()[cls.__name__] = register(cls)


for _backbone in BACKBONES:
    _register_backbone(_backbone)
