"""The flat module names of 0.1 still import, for one release, as the very modules of their new names."""
import importlib
import sys

import pytest

from genrestudy import moved


def _fresh_import(name):
    sys.modules.pop(name, None)  # only the old name's entry: the module under its new name stays
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(moved.MOVED))
def test_every_old_name_warns_and_is_the_new_module(old):
    with pytest.warns(DeprecationWarning, match=f"genrestudy.{old} moved to genrestudy.{moved.MOVED[old]}"):
        module = _fresh_import(f"genrestudy.{old}")
    new = importlib.import_module(f"genrestudy.{moved.MOVED[old]}")
    assert module is new
    assert new.__spec__.name == new.__name__  # the alias did not leave its own name on the module


def test_a_moved_packages_submodules_follow_it():
    with pytest.warns(DeprecationWarning):
        module = _fresh_import("genrestudy.plots.backbones")
    assert module is importlib.import_module("genrestudy.report.plots.backbones")


def test_a_monkeypatch_through_the_old_name_reaches_the_new_module(monkeypatch):
    with pytest.warns(DeprecationWarning):
        old = _fresh_import("genrestudy.table7")
    from genrestudy.report import table7

    monkeypatch.setattr(old, "_marker_for_test", 1, raising=False)
    assert table7._marker_for_test == 1


def test_the_old_signal_cache_names_are_forwarded_by_the_signals_folder():
    import genrestudy.signals
    from genrestudy.signals import signal_set

    with pytest.warns(DeprecationWarning, match="genrestudy.signals.signal_set.build_signal_set"):
        assert genrestudy.signals.build_signal_set is signal_set.build_signal_set
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        genrestudy.signals.no_such_name  # noqa: B018


def test_names_that_did_not_move_are_left_to_the_normal_import():
    assert moved.new_name("genrestudy.methods") is None
    assert moved.new_name("genrestudy.paths") is None
    assert moved.new_name("numpy.audio") is None
    assert moved.new_name("genrestudy.plots.efficiency") == "genrestudy.report.plots.efficiency"
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("genrestudy.no_such_module")
