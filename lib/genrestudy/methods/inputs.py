"""The inputs a method can need: one provider per kind, so that a new kind of input is one provider here.

A method names its needs (:attr:`genrestudy.methods.base.Method.needs`) as ``kind`` or ``kind:argument``:

* ``images``: the study's mel images (:func:`genrestudy.run.study.image_set`);
* ``features``: the study's backbone's features of them; ``features:<backbone>@<size>`` another
  backbone's (:func:`backbone_features`; :func:`genrestudy.run.study.feature_set`);
* ``spectral``: the handcrafted spectral features of the same segments (:mod:`genrestudy.signals.spectral`);
* ``sequences``: their MFCC/contrast/centroid/chroma sequences (:mod:`genrestudy.signals.sequences`);
* ``musicnn:<model>``: a musicnn tagger's outputs (:func:`musicnn_embeddings`;
  :func:`genrestudy.extractors.musicnn.embeddings`).

A provider opens its kind for a :class:`~genrestudy.methods.base.StudyData` (computed, or read from
its cache), checks that an opened or given input is row for row with the images, and says its cache
key (part of a trained model's key) and its values (the array a method reads rows of).

>>> from genrestudy.methods.inputs import provider
>>> @provider("segment_index", key=lambda opened: "index", values=lambda opened: opened)
... def _index(data, argument):
...     return np.arange(len(data.labels))[:, None]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Provider:
    """How one kind of input is opened for the study's data, keyed, and read."""

    kind: str
    open: Callable  # (data: StudyData, argument: str) -> the opened input, row for row with data.image_set
    key: Callable  # (opened) -> its cache key
    values: Callable  # (opened) -> the array a method reads rows of
    check: Callable  # (opened, data) -> None, or a ValueError when it is not row for row with data's images


#: the providers by kind, in registration order
PROVIDERS: dict[str, Provider] = {}


def _unchecked(opened, data) -> None:
    return None


def provider(kind: str, *, key: Callable = lambda opened: opened.key,
             values: Callable = lambda opened: opened.values, check: Callable = _unchecked):
    """Decorator: register ``open(data, argument)`` as the provider of ``kind``."""
    def register(open_input: Callable) -> Callable:
        PROVIDERS[kind] = Provider(kind, open_input, key, values, check)
        return open_input
    return register


def split_need(need: str) -> tuple[str, str]:
    """``"features:ResNet50@224"`` -> ``("features", "ResNet50@224")``; ``"spectral"`` -> ``("spectral", "")``."""
    kind, _, argument = need.partition(":")
    if kind not in PROVIDERS:
        raise ValueError(f"unknown input {need!r}: expected one of {sorted(PROVIDERS)} (optionally kind:argument)")
    return kind, argument


def backbone_features(backbone: str, input_size: int) -> str:
    """The need for ``backbone``'s features at ``input_size`` (any backbone, not only the study's)."""
    return f"features:{backbone}@{int(input_size)}"


def musicnn_embeddings(model: str) -> str:
    """The need for musicnn tagger ``model``'s embeddings (:func:`genrestudy.extractors.musicnn.embeddings`)."""
    return f"musicnn:{model}"


def _aligned(what: str):
    def check(opened, data) -> None:
        from ..signals.spectral import check_aligned

        check_aligned(opened.segments, data.image_set.segments, what=what)
    return check


def _from_the_images(opened, data) -> None:
    if opened.meta.get("image_cache") != data.image_set.key:
        raise ValueError(f"the features come from image cache {opened.meta.get('image_cache')}, "
                         f"not from {data.image_set.key}")


@provider("images", key=lambda opened: opened.key, values=lambda opened: opened.images)
def _images(data, argument: str):
    return data.image_set


@provider("features", key=lambda opened: opened.root.name, values=lambda opened: np.asarray(opened.features),
          check=_from_the_images)
def _features(data, argument: str):
    from ..run.study import feature_set

    backbone, _, size = argument.partition("@")
    inputs = data.inputs.with_(backbone=backbone, input_size=int(size) if size else None) if argument else data.inputs
    return feature_set(inputs, data.image_set, progress=False)


@provider("spectral", values=lambda opened: np.asarray(opened.values), check=_aligned("the spectral features"))
def _spectral(data, argument: str):
    from ..run.study import signal_set
    from ..signals.spectral import spectral_features, study_params

    return spectral_features(signal_set(data.inputs), study_params(data.inputs))


@provider("sequences")
def _sequences(data, argument: str):
    from ..signals.sequences import study_sequences

    return study_sequences(data.inputs, data.image_set)


@provider("musicnn", values=lambda opened: opened.embedding(), check=_aligned("the musicnn embeddings"))
def _musicnn(data, argument: str):
    from ..extractors.musicnn import embeddings
    from ..run.study import signal_set

    return embeddings(signal_set(data.inputs), argument or "MSD_musicnn")
