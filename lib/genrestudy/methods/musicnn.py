"""Table 7's music-trained frozen extractor: musicnn's embeddings → LightGBM, and → a dense head.

For each of musicnn's two published taggers (MSD: Million Song Dataset tags; MTT:
MagnaTagATune tags; :mod:`genrestudy.extractors.musicnn`) two methods are registered, the same two ways
neighbouring study 3 uses a frozen ImageNet backbone (:mod:`.frozen_backbones`):

* "musicnn (MSD) features + LightGBM": the study's Random Search (its budget, rounds and
  first seed, :func:`genrestudy.methods.hybrid.study_search`) on the embeddings, its winner
  refitted: the paper's hybrid with a music-trained extractor;
* "frozen musicnn (MSD) + dense head": the head grid of :func:`genrestudy.networks.heads.search_heads`
  (the inputs' ``head_batch_sizes`` × ``head_learning_rates``), the best retrained.

The embedding is the authors' penultimate layer with the mean- and max-pooled mid-level
features (:data:`genrestudy.extractors.musicnn.EMBEDDINGS`), computed from the study's one decode per
clip. The weights are real (not random-init like the demo's ImageNet backbones). Without
them (offline set-up) the methods do not apply and Table 7 goes on without their rows; one
line says what is missing.
"""
from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from ..extractors import musicnn_weights
from ..models import classifiers, tuning
from ..networks import heads
from ..extractors.musicnn import EMBEDDINGS, MelParams
from .base import Method, Part, musicnn_embeddings, register
from .hybrid import study_search

log = logging.getLogger(__name__)

#: the search the LightGBM way runs (as neighbouring study 3's "<backbone> features + LightGBM")
LIGHTGBM_SEARCH = "random"
_told: set = set()


class _Musicnn(Method):
    """A method on one musicnn tagger's embeddings of the study's segments."""

    model: ClassVar[str]
    needs = ("musicnn",)
    pretrained = "published"

    def __init__(self, inputs):
        super().__init__(inputs)
        self.needs = (musicnn_embeddings(self.model),)  # which tagger's embeddings: part of the run's key

    @classmethod
    def applies(cls, inputs) -> bool:
        if cls.model not in inputs.compared_backbones:  # as the ImageNet backbones' methods
            return False
        if musicnn_weights.available():
            return True
        if "missing" not in _told:  # one line per process, not one per method and protocol
            _told.add("missing")
            log.warning("musicnn methods skipped: %s", _missing_line())
        return False

    def common_settings(self) -> dict:
        return {"model": self.model, "weights": musicnn_weights.weights_hash(), "embedding": list(EMBEDDINGS)}

    def embedding(self, part: Part) -> np.ndarray:
        return part.data.values(musicnn_embeddings(self.model))[part.rows]


def _missing_line() -> str:
    try:
        musicnn_weights.checkpoint_dir(musicnn_weights.MODELS[0])
    except musicnn_weights.WeightsMissing as exc:
        return str(exc)
    return "weights present"


class _MusicnnLightGBM(_Musicnn):
    """The paper's hybrid with the music-trained extractor: the study's search, its winner refitted."""

    def settings(self) -> dict:
        inputs = self.inputs
        return {**self.common_settings(), **inputs.compared_search_inputs().search_settings(), "search": LIGHTGBM_SEARCH,
                "search_seed": int(inputs.seeds[0]), "max_bin": int(inputs.max_bin)}

    def searched(self, train: Part, valid: Part):
        """``(training data, search)``: the study's search on the embeddings (cached)."""
        data = classifiers.TrainingData(self.embedding(train), train.labels, self.embedding(valid), valid.labels,
                                        num_class=len(train.data.classes), max_bin=int(self.inputs.max_bin))
        return data, study_search(data, LIGHTGBM_SEARCH, self.inputs.compared_search_inputs())

    def prepare(self, train: Part, valid: Part) -> None:
        self.searched(train, valid)

    def fit(self, train: Part, valid: Part) -> None:
        data, result = self.searched(train, valid)
        fit = tuning.refit_winner(data, result)
        self.booster = fit.booster
        self.record = {"training_seconds": fit.fit_seconds, "search_seconds": result.wall_seconds,
                       "search_fits": result.n_fits, "hyperparameters": result.best_params,
                       "seed": int(result.settings["seed"]), "rounds": fit.best_iteration,
                       "valid_accuracy": fit.valid_accuracy, "extractor": f"{self.model} (published weights)"}

    def predict_proba(self, test: Part) -> np.ndarray:
        return classifiers.predict_proba(self.booster, self.embedding(test))


class _MusicnnDenseHead(_Musicnn):
    """Neighbouring study 3's way: the head grid on the embeddings, its winner retrained."""

    def settings(self) -> dict:
        inputs = self.inputs
        return {**self.common_settings(), "batch_sizes": list(inputs.head_batch_sizes),
                "learning_rates": list(inputs.head_learning_rates), "trial_epochs": heads.TRIAL_EPOCHS,
                "final_epochs": heads.FINAL_EPOCHS, "seed": int(inputs.seeds[0])}

    def fit(self, train: Part, valid: Part) -> None:
        # one "input size": musicnn reads its own fixed 3 s patches (187 frames)
        frames = MelParams().n_frames
        search = heads.search_heads({frames: (self.embedding(train), self.embedding(valid))}, train.labels,
                                    valid.labels, batch_sizes=self.inputs.head_batch_sizes,
                                    learning_rates=self.inputs.head_learning_rates, seed=int(self.inputs.seeds[0]),
                                    n_classes=len(train.data.classes))
        self.head = search.final
        best = {k: v for k, v in search.best.items() if k != "input_size"}
        self.record = {"training_seconds": search.training_seconds, "search_seconds": search.tuning_seconds,
                       "search_fits": int(len(search.trials)), "hyperparameters": best,
                       "seed": int(self.inputs.seeds[0]), "valid_f1_macro": 100 * search.final.valid_f1_macro,
                       "extractor": f"{self.model} (published weights)"}

    def predict_proba(self, test: Part) -> np.ndarray:
        return self.head.predict_proba(self.embedding(test))


@register
class MsdLightGBM(_MusicnnLightGBM):
    key, name, model = "musicnn_msd_lightgbm", "musicnn (MSD) features + LightGBM", "MSD_musicnn"


@register
class MsdDenseHead(_MusicnnDenseHead):
    key, name, model = "musicnn_msd_dense_head", "frozen musicnn (MSD) + dense head", "MSD_musicnn"


@register
class MttLightGBM(_MusicnnLightGBM):
    key, name, model = "musicnn_mtt_lightgbm", "musicnn (MTT) features + LightGBM", "MTT_musicnn"


@register
class MttDenseHead(_MusicnnDenseHead):
    key, name, model = "musicnn_mtt_dense_head", "frozen musicnn (MTT) + dense head", "MTT_musicnn"


def method_keys(model: str) -> tuple[str, str]:
    """Registry keys of tagger ``model``'s two methods: (dense head, LightGBM), as
    :func:`genrestudy.methods.frozen_backbones.method_keys` orders a backbone's."""
    stem = model.split("_")[0].lower()
    return f"musicnn_{stem}_dense_head", f"musicnn_{stem}_lightgbm"
