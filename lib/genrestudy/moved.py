"""The package's old flat module names, importable for one release (0.1.x) with a DeprecationWarning.

Until 0.1 every module sat directly under ``genrestudy`` (``genrestudy.audio``, ``genrestudy.table7``);
now they sit in folders by the data's path (``genrestudy.data.audio``, ``genrestudy.report.table7``).
``import genrestudy.audio`` still works: it warns and gives the very module object of the new name, so
code and monkeypatches through either name act on one module. ``genrestudy.signals`` (the old signal
cache module) is now a folder; its old names are forwarded by ``genrestudy/signals/__init__.py``.
Remove this module, and the forwarding, in the next release.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old name under ``genrestudy.`` -> new name under ``genrestudy.`` (a moved package's submodules follow it)
MOVED = {
    "audio": "data.audio", "dataset": "data.dataset", "demo": "data.demo", "splits": "data.splits",
    "kaggle_tables": "data.kaggle_tables", "segments": "signals.segments", "images": "signals.images",
    "spectral": "signals.spectral", "sequences": "signals.sequences",
    "backbones": "extractors.backbones", "weights": "extractors.weights",
    "features": "extractors.features", "musicnn": "extractors.musicnn",
    "musicnn_architecture": "extractors.musicnn_architecture",
    "musicnn_weights": "extractors.musicnn_weights",
    "tagger_vocabulary": "extractors.tagger_vocabulary", "classifiers": "models.classifiers",
    "search": "models.search", "tuning": "models.tuning", "winner_fits": "models.winner_fits",
    "boosterfile": "models.boosterfile", "knn": "models.knn", "knn_model": "models.knn_model",
    "genetic": "models.genetic", "modelfile": "models.modelfile", "modelschema": "models.modelschema",
    "training": "networks.training", "endtoend": "networks.endtoend", "heads": "networks.heads",
    "smallnets": "networks.smallnets", "smallnets_training": "networks.smallnets_training",
    "cgan": "networks.cgan", "evaluation": "report.evaluation", "table7": "report.table7",
    "findings": "report.findings", "table8": "report.table8",
    "efficiency_steps": "report.efficiency_steps", "reports": "report.reports",
    "backbone_comparison": "report.backbone_comparison", "smallnets_report": "report.smallnets_report",
    "plots": "report.plots", "study": "run.study", "profiles": "run.profiles", "plan": "run.plan",
    "plan_costs": "run.plan_costs", "plan_work": "run.plan_work", "plan_machine": "run.plan_machine",
    "stack": "run.stack", "cluster": "run.cluster", "cli": "run.cli", "predict": "run.predict"
}


def new_name(fullname: str) -> str | None:
    """``genrestudy.<old>[.<sub>]`` -> its new full name, or None when ``fullname`` did not move."""
    head, _, rest = fullname.removeprefix("genrestudy.").partition(".")
    if not fullname.startswith("genrestudy.") or head not in MOVED:
        return None
    return "genrestudy." + MOVED[head] + ("." + rest if rest else "")


def warn_moved(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old name goes in the next release", DeprecationWarning,
                  stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module of its new name (the same object, not a copy)."""

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def create_module(self, spec):
        warn_moved(self.old, self.new)
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # the import system stamped the old name's spec on the module; give it back its own
        module.__spec__ = self.own_spec


class _OldNames(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        if new is None:
            return None
        is_package = importlib.util.find_spec(new).submodule_search_locations is not None
        return importlib.util.spec_from_loader(fullname, _Alias(fullname, new), is_package=is_package)


def install() -> None:
    """Make the old names importable (once per process)."""
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OldNames())
