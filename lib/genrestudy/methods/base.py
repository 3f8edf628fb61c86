"""What a method of the study is, the data it sees, and the registry Table 7 loops over.

A method is one class: a ``key`` (stable, part of cache keys), a ``name`` (Table 7's row
label), the ``needs`` it has (:mod:`genrestudy.methods.inputs`), ``fit(train, valid)``,
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

from .inputs import PROVIDERS, backbone_features, musicnn_embeddings, split_need  # noqa: F401

#: the kinds of input a method can need (:mod:`genrestudy.methods.inputs`, one provider each)
INPUTS = tuple(PROVIDERS)

#: registered methods by key, in registration order (Table 7's row order)
REGISTRY: dict[str, type["Method"]] = {}


@dataclass
class StudyData:
    """The study's data for one set of inputs: the images, and every other input a method needs.

    Attributes
    ----------
    inputs : genrestudy.run.study.StudyInputs
        What determined the data.
    image_set : genrestudy.signals.images.ImageSet
        The mel images; their ``segments`` give labels and tracks for every input.
    opened : dict
        The inputs opened so far, by need (``"features"``, ``"spectral"``, ``"musicnn:MSD_musicnn"``, ...;
        :mod:`genrestudy.methods.inputs`): each opened on first use by its kind's provider, or given here.
    """

    inputs: object
    image_set: object
    opened: dict = field(default_factory=dict)
    _values: dict = field(default_factory=dict, repr=False)
    _checked: set = field(default_factory=set, repr=False)

    def __getstate__(self) -> dict:
        # sent to a Dask worker: the inputs travel by their cache paths, not the arrays read from them
        return {**self.__dict__, "_values": {}}

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

    def input(self, need: str):
        """The input ``need`` names, opened by its provider on first use (and kept)."""
        kind, argument = split_need(need)
        if need not in self.opened:
            self.opened[need] = PROVIDERS[kind].open(self, argument)
        if need not in self._checked:  # opened here or given: either way row for row with the images
            PROVIDERS[kind].check(self.opened[need], self)
            self._checked.add(need)
        return self.opened[need]

    def values(self, need: str) -> np.ndarray:
        """The array of the input ``need`` names (read once, kept)."""
        if need not in self._values:
            self._values[need] = PROVIDERS[split_need(need)[0]].values(self.input(need))
        return self._values[need]

    def features(self, backbone: str | None = None, input_size: int | None = None) -> np.ndarray:
        """The features of every image; ``backbone`` and ``input_size`` (default: the study's) name another's."""
        backbone, input_size = backbone or self.inputs.backbone, input_size or self.inputs.input_size
        if (backbone, input_size) == (self.inputs.backbone, self.inputs.input_size):
            return self.values("features")
        return self.values(f"features:{backbone}@{input_size or ''}")

    def input_keys(self, needs) -> dict:
        """Cache keys of the inputs a method needs (part of its trained model's key)."""
        return {need: PROVIDERS[split_need(need)[0]].key(self.input(need)) for need in needs}

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
        ``kind`` or ``kind:argument``, a kind among :data:`INPUTS` (:mod:`genrestudy.methods.inputs`).
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

    def prepare(self, train: Part, valid: Part) -> None:
        """Cached work that :meth:`fit` reads back and that is worth more than one worker (a search whose fits a
        Dask cluster spreads over every worker). Run before the method's run becomes a task on a cluster
        (:func:`genrestudy.report.table7.run_protocols`); two methods sharing it build it once. Default: none."""

    def tasks(self, train: Part, valid: Part) -> list[list[tuple]]:
        """Cached work that :meth:`fit` reads back, as stages of independent ``(function, args)`` tasks that a
        Dask cluster runs before the method's run (each stage's tasks of every method at once, stage after
        stage, alongside the methods' :meth:`prepare`, so never reading what a prepare builds): a network's
        grid, a configuration per task. Default: none."""
        return []

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
    unknown = sorted(need for need in getattr(cls, "needs", ()) if need.partition(":")[0] not in PROVIDERS)
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
