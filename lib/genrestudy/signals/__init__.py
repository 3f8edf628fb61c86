"""From audio to per-segment signals: segments, the signal cache, mel images, spectral and sequence features."""


def __getattr__(name: str):
    # 0.1's genrestudy.signals was the signal cache module, now genrestudy.signals.signal_set: its public
    # names stay reachable here for one release, with a DeprecationWarning (genrestudy.moved)
    from importlib import import_module

    signal_set = import_module(f"{__name__}.signal_set")
    if name.startswith("_") or not hasattr(signal_set, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ..moved import warn_moved

    warn_moved(f"{__name__}.{name}", f"{__name__}.signal_set.{name}")
    return getattr(signal_set, name)
