"""Where the study reads and writes: project root, data, caches, figures and results.

Every location can be moved with an environment variable, so tests and users with a
read-only checkout can redirect output without editing code.
"""
from __future__ import annotations

import os
from pathlib import Path

#: sample rate every clip is brought to before segmentation (GTZAN's own rate)
SAMPLE_RATE = 22050


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def project_root() -> Path:
    """The repository root (``GENRESTUDY_ROOT`` overrides)."""
    default = Path(__file__).resolve().parents[2]
    return _env_path("GENRESTUDY_ROOT", default)


def data_dir() -> Path:
    """User data and caches: ``<root>/data`` (``GENRESTUDY_DATA`` overrides)."""
    return _env_path("GENRESTUDY_DATA", project_root() / "data")


def cache_dir() -> Path:
    """Computed artefacts keyed by what determines them (``GENRESTUDY_CACHE`` overrides)."""
    return _env_path("GENRESTUDY_CACHE", data_dir() / "cache")


def figures_dir() -> Path:
    """Regenerated figures (``GENRESTUDY_FIGURES`` overrides)."""
    return _env_path("GENRESTUDY_FIGURES", project_root() / "figures")


def results_dir() -> Path:
    """Regenerated tables (``GENRESTUDY_RESULTS`` overrides)."""
    return _env_path("GENRESTUDY_RESULTS", project_root() / "results")


def shared_data_dir() -> Path:
    """Real GTZAN reference material kept beside the checkout (``../shared/data``)."""
    return _env_path("GENRESTUDY_SHARED_DATA", project_root().parent / "shared" / "data")


def shown(path) -> str:
    """``path`` as a published table shows it: relative to the project root, else to the data, cache
    or shared-data root (``<data>/...``), else its name alone; never the absolute path of the
    machine that ran the study."""
    path = Path(path).expanduser().resolve()
    for prefix, root in (("", project_root()), ("<data>/", data_dir()), ("<cache>/", cache_dir()),
                         ("<shared>/", shared_data_dir())):
        try:
            return prefix + path.relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path.name
