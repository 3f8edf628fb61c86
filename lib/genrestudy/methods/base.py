"""What a method of the study is, the data it sees, and the registry Table 7 loops over.

A method is one class: a ``key`` (stable, part of cache keys), a ``name`` (Table 7's row
label), the ``needs`` it has among :data:`INPUTS`, ``fit(train, valid)``,
``predict_proba(test)`` and a ``report()`` (training time, chosen hyperparameters, seed, model
file). ``@register`` puts it in Table 7: a new method of the study is one module with one
registered class, and nothing else changes.

>>> from sklearn.neighbors import NearestCentroid
>>> @register
... class Centroid(Method):
...     key, name, needs = "centroid", "Nearest centroid on features", ("features",)
...     def fit(self, train, valid):
...         self.model = NearestCentroid().fit(train.features, train.labels)
...     def predict_proba(self, test):
...         return np.eye(len(test.data.classes))[self.model.predict(test.features)]
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

#: the study inputs a method can need: the mel images, the frozen backbone's features of them, or the
#: handcrafted spectral features of the same segments (:mod:`genrestudy.spectral`), their MFCC/contrast/
#: centroid/chroma sequences (:mod:`genrestudy.sequences`); a method may also
#: need another backbone's features (:func:`backbone_features`)
INPUTS = ("images", "features", "spectral", "sequences", "musicnn")


def backbone_features(backbone: str, input_size: int) -> str:
    """The need for ``backbone``'s features at ``input_size`` (any backbone, not only the study's)."""
    return f"features:{backbone}@{int(input_size)}"


def musicnn_embeddings(model: str) -> str:
    """The need for musicnn tagger ``model``'s embeddings (:func:`genrestudy.musicnn.embeddings`)."""
    return f"musicnn:{model}"

#: registered methods by key, in registration order (Table 7's row order)
REGISTRY: dict[str, type["Method"]] = {}


@dataclass
class StudyData:
    """The study's data for one set of inputs: the images, and the features when a method needs them.

    Attributes
    ----------
    inputs : genrestudy.study.StudyInputs
        What determined the data.
    image_set : genrestudy.images.ImageSet
        The mel images; their ``segments`` give labels and tracks for every input.
    feature_set : genrestudy.features.FeatureSet, optional
        The backbone's features of ``image_set``'s images (row for row); extracted on first
        use when not given.
    spectral_set : genrestudy.signals.SegmentFeatures, optional
        The spectral features of the same segments (row for row, checked); computed from the
        signal cache on first use when not given.
    """

    inputs: object
    image_set: object
    feature_set: object = None
    _features: np.ndarray | None = field(default=None, repr=False)
    spectral_set: object = None
    _spectral: np.ndarray | None = field(default=None, repr=False)
    sequence_set: object = None  # per-segment feature sequences (genrestudy.sequences), on first use
    other_feature_sets: dict = field(default_factory=dict, repr=False)
    musicnn_sets: dict = field(default_factory=dict, repr=False)  # musicnn's embeddings per tagger, on first use

    def __getstate__(self) -> dict:
        # sent to a Dask worker: the sets travel by their cache paths, not the arrays read from them
        return {**self.__dict__, "_features": None, "_spectral": None}

    @property
    def classes(self) -> list[str]:
        return self.image_set.classes

    @property
    def labels(self) -> np.ndarray:
        return self.image_set.labels

    @property
    def track_ids(self) -> np.ndarray:
        return self.image_set.segments["track_id"].to_numpy()

    @property
    def synthetic(self) -> bool:
        return self.image_set.synthetic

    def features(self, backbone: str | None = None, input_size: int | None = None) -> np.ndarray:
        """The features of every image (extracted, or read from their cache, on first use).

        ``backbone`` and ``input_size`` (default: the study's) name another backbone's features.
        """
        if (backbone or self.inputs.backbone, input_size or self.inputs.input_size) != (
                self.inputs.backbone, self.inputs.input_size):
            return np.asarray(self.backbone_feature_set(backbone or self.inputs.backbone, input_size).features)
        if self.feature_set is None:
            from ..study import feature_set

            self.feature_set = feature_set(self.inputs, self.image_set, progress=False)
        if self.feature_set.meta.get("image_cache") != self.image_set.key:
            raise ValueError(f"the features come from image cache {self.feature_set.meta.get('image_cache')}, "
                             f"not from {self.image_set.key}")
        if self._features is None:
            self._features = np.asarray(self.feature_set.features)
        return self._features

    def backbone_feature_set(self, backbone: str, input_size: int | None):
        """Another backbone's features of the images (:func:`genrestudy.study.feature_set`), kept once opened."""
        if (backbone, input_size) not in self.other_feature_sets:
            from ..study import feature_set

            found = feature_set(self.inputs.with_(backbone=backbone, input_size=input_size), self.image_set,
                                progress=False)
            if found.meta.get("image_cache") != self.image_set.key:
                raise ValueError(f"{backbone} features come from image cache {found.meta.get('image_cache')}, "
                                 f"not from {self.image_set.key}")
            self.other_feature_sets[(backbone, input_size)] = found
        return self.other_feature_sets[(backbone, input_size)]

    def input_keys(self, needs) -> dict:
        """Cache keys of the inputs a method needs (part of its trained model's key)."""
        keys = {}
        for need in needs:
            if need.startswith("features:"):
                backbone, _, size = need.removeprefix("features:").partition("@")
                keys[need] = self.backbone_feature_set(backbone, int(size)).root.name
        if "images" in needs:
            keys["images"] = self.image_set.key
        if "features" in needs:
            self.features()
            keys["features"] = self.feature_set.root.name
        if "spectral" in needs:
            self.spectral()
            keys["spectral"] = self.spectral_set.key
        if "sequences" in needs:
            keys["sequences"] = self.sequences().key
        for need in needs:
            if need.startswith("musicnn:"):
                keys[need] = self.musicnn(need.removeprefix("musicnn:")).key
        return keys

    def spectral(self) -> np.ndarray:
        """The spectral features of every image's segment (computed, or read from their cache, on first use)."""
        from ..spectral import check_aligned

        if self.spectral_set is None:
            from ..spectral import spectral_features, study_params
            from ..study import signal_set

            self.spectral_set = spectral_features(signal_set(self.inputs), study_params(self.inputs))
        if self._spectral is None:
            check_aligned(self.spectral_set.segments, self.image_set.segments)
            self._spectral = np.asarray(self.spectral_set.values)
        return self._spectral

    def sequences(self):
        """The feature sequences of every image's segment (:func:`genrestudy.sequences.study_sequences`;
        computed from the signal cache, or read from their cache, on first use)."""
        if self.sequence_set is None:
            from ..sequences import study_sequences

            self.sequence_set = study_sequences(self.inputs, self.image_set)
        return self.sequence_set

    def musicnn(self, model: str = "MSD_musicnn"):
        """musicnn tagger ``model``'s outputs for every image's segment (:func:`genrestudy.musicnn.embeddings`:
        from the signal cache, or read from their cache, on first use; aligned row for row, checked)."""
        if model not in self.musicnn_sets:
            from ..musicnn import embeddings
            from ..spectral import check_aligned
            from ..study import signal_set

            found = embeddings(signal_set(self.inputs), model)
            check_aligned(found.segments, self.image_set.segments)
            self.musicnn_sets[model] = found
        return self.musicnn_sets[model]

    def part(self, split, name: str) -> "Part":
        """The rows of ``split`` (``train``/``valid``/``test`` per image) named ``name``."""
        rows = np.flatnonzero(np.asarray(split) == name)
        if not len(rows):
            raise ValueError(f"the split has no {name!r} rows")
        return Part(name=name, rows=rows, data=self)


@dataclass(frozen=True)
class Part:
    """One part of a split (``train``, ``valid`` or ``test``), as a method sees it.

    ``rows`` index the image set (and the features); ``labels`` are class codes into
    ``data.classes``.
    """

    name: str
    rows: np.ndarray
    data: StudyData

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        return self.data.labels[self.rows]

    @property
    def track_ids(self) -> np.ndarray:
        return self.data.track_ids[self.rows]

    @property
    def features(self) -> np.ndarray:
        return self.data.features()[self.rows]

    @property
    def image_set(self):
        """The whole image set (a memory map); a method reads ``image_set.images[rows]`` batch by batch."""
        return self.data.image_set


class Method(abc.ABC):
    """A method of the study: a model that learns genres from the study's inputs.

    Subclasses set the class attributes and implement :meth:`fit` and :meth:`predict_proba`;
    :meth:`settings` lists what determines the trained model besides its data (part of the
    cache key of its predictions), :meth:`report` what Table 7's details show.

    Attributes
    ----------
    key : str
        Stable identifier (cache keys, file names).
    name : str
        Table 7's row label.
    needs : tuple of str
        Among :data:`INPUTS`.
    paper : dict or None
        The paper's Table 7 numbers for this method (percent; ``accuracy``,
        ``precision_weighted``, ``recall_weighted``, ``f1_weighted``), when the paper has it.
    version : int
        Bump when a change in the method's code changes its predictions (invalidates its cache).
    pretrained : str
        Where its network's weights come from before it learns genres: ``"study"`` (the study's
        backbone weights, ``inputs.weights``: random init in the demo), ``"published"`` (a
        music-trained network's published weights) or ``"none"`` (no pretrained network). Methods
        that start from different weights are not ranked as if only the method differed.
    """

    key: ClassVar[str]
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ("features",)
    paper: ClassVar[dict | None] = None
    version: ClassVar[int] = 1
    pretrained: ClassVar[str] = "none"

    def __init__(self, inputs):
        self.inputs = inputs
        self.record: dict = {}

    @classmethod
    def applies(cls, inputs) -> bool:
        """Whether the method takes part in Table 7 under ``inputs`` (default: always)."""
        return True

    def settings(self) -> dict:
        """What determines the trained model besides the data (default: nothing)."""
        return {}

    @abc.abstractmethod
    def fit(self, train: Part, valid: Part) -> None:
        """Learn from ``train``; ``valid`` may drive early stopping or selection, never ``test``."""

    @abc.abstractmethod
    def predict_proba(self, test: Part) -> np.ndarray:
        """``(len(test), n_classes)`` class probabilities, columns in ``data.classes`` order."""

    def report(self) -> dict:
        """What the fit recorded: ``training_seconds``, ``hyperparameters``, ``seed``, ``model_file``, ..."""
        return dict(self.record)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add ``cls`` to :data:`REGISTRY` (and so to Table 7)."""
    problems = [name for name in ("key", "name") if not isinstance(getattr(cls, name, None), str)]
    unknown = sorted(set(getattr(cls, "needs", ())) - set(INPUTS))
    if problems or unknown:
        raise ValueError(f"method {cls.__name__} needs a str {' and '.join(problems) or 'key'}"
                         + (f"; unknown needs {unknown} (expected some of {INPUTS})" if unknown else ""))
    if cls.key in REGISTRY and REGISTRY[cls.key] is not cls:
        raise ValueError(f"a method with key {cls.key!r} is already registered ({REGISTRY[cls.key].__name__})")
    REGISTRY[cls.key] = cls
    return cls


def unregister(key: str) -> None:
    """Remove a method from the registry (tests register throwaway methods)."""
    REGISTRY.pop(key, None)


def starting_weights(cls: type[Method], inputs) -> str:
    """In words, the weights ``cls``'s network starts from under ``inputs`` (:attr:`Method.pretrained`)."""
    if cls.pretrained == "published":
        return "published music-trained weights"
    if cls.pretrained == "study":
        weights = getattr(inputs, "weights", None)
        if weights is None:
            return "random init (no pretrained weights)"
        # a weights file by its name only: published text carries no machine paths
        return "ImageNet weights" if weights == "imagenet" else f"weights from {Path(str(weights)).name}"
    return "no pretrained network"


def registered(inputs=None) -> list[type[Method]]:
    """The registered methods, in registration order (with ``inputs``: those that apply to them)."""
    return [m for m in REGISTRY.values() if inputs is None or m.applies(inputs)]
