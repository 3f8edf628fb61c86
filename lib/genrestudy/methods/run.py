"""Training a registered method on a split and predicting its test part, once per inputs (cached).

The entry holds the method's test probabilities and its report, keyed by the method (key,
version, settings), the cache keys of the inputs it needs and the split. Table 7 asks for
every registered method under every protocol; a method already trained for those inputs is
read back at once, one not yet trained is trained there.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .. import cache
from .base import REGISTRY, Method, StudyData

log = logging.getLogger(__name__)

_CACHE_KIND = "methods"


@dataclass
class MethodRun:
    """A method's test predictions under one split.

    Attributes
    ----------
    key, name : str
        The method's registry key and Table 7 label.
    rows : np.ndarray
        Image rows of the test part.
    proba : np.ndarray
        ``(len(rows), n_classes)`` class probabilities.
    report : dict
        The method's :meth:`~genrestudy.methods.base.Method.report`, plus ``fit_seconds``
        (its fit as this run timed it, from the caches of earlier steps where they exist).
    """

    key: str
    name: str
    rows: np.ndarray
    proba: np.ndarray
    report: dict


def method_of(method) -> type[Method]:
    """A registered method class from its key, or the class itself."""
    if isinstance(method, str):
        if method not in REGISTRY:
            raise KeyError(f"no method {method!r} is registered; registered: {', '.join(REGISTRY) or 'none'}")
        return REGISTRY[method]
    return method


def run_key(method: Method, data: StudyData, split) -> str:
    """Key of a method's predictions: the method, its settings, its inputs' keys, the split."""
    return cache.cache_key(f"method-{method.key}-v{method.version}", method.settings(),
                           data.input_keys(method.needs), list(data.classes), np.asarray(split).tolist())


def is_cached(method, data: StudyData, split, *, cache_root=None) -> bool:
    """Whether ``method``'s predictions under ``split`` are in the cache (building the inputs it
    needs, as :func:`run_method` would, so that tasks elsewhere find them made)."""
    key = run_key(method_of(method)(data.inputs), data, split)
    return cache.is_complete(cache.entry_dir(_CACHE_KIND, key, cache_root))


def run_method(method, data: StudyData, split, *, cache_root=None) -> MethodRun:
    """Fit ``method`` (a registered key or class) on ``split``'s train/valid parts and predict its test part.

    Cached: a second call with the same inputs, settings and split reads the predictions back.
    """
    cls = method_of(method)
    instance = cls(data.inputs)
    test = data.part(split, "test")
    key = run_key(instance, data, split)

    def build(entry) -> dict:
        train, valid = data.part(split, "train"), data.part(split, "valid")
        started = time.perf_counter()
        instance.fit(train, valid)
        fit_seconds = time.perf_counter() - started
        proba = np.asarray(instance.predict_proba(test), dtype=np.float64)
        if proba.shape != (len(test), len(data.classes)):
            raise ValueError(f"method {cls.key!r} returned probabilities of shape {proba.shape}, "
                             f"expected {(len(test), len(data.classes))}")
        cache.save_array(entry / "test_proba.npy", proba)
        cache.save_array(entry / "test_rows.npy", test.rows)
        return {"method": cls.key, "name": cls.name, "report": {**instance.report(), "fit_seconds": fit_seconds}}

    def open_entry(entry) -> MethodRun:
        meta = cache.read_meta(entry)
        rows = np.load(entry / "test_rows.npy")
        if not np.array_equal(rows, test.rows):
            raise cache.CacheError(f"{entry} holds other test rows than this split's")
        return MethodRun(key=cls.key, name=cls.name, rows=rows, proba=np.load(entry / "test_proba.npy"),
                         report=meta["report"])

    return cache.open_or_build(_CACHE_KIND, key, open_entry=open_entry, build=build, root=cache_root)
