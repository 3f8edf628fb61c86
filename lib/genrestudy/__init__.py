"""genrestudy: music genre classification study (ResNet-50 features + LightGBM vs end-to-end)."""
from __future__ import annotations

import os
import sys
import tempfile
from importlib import metadata

__version__ = "0.1.0"


def _writable_folder(folder: str) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _set_numba_cache() -> None:
    """Point numba's cache (librosa's compiled functions) at a folder of the study's own.

    By default numba writes next to the installed librosa, and a user who cannot write there
    gets a 50-line traceback ending in "cannot cache function". This runs before anything
    imports librosa (numba reads the variable once, at import); a value the user set is kept.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from .paths import cache_dir

    try:
        candidates = [str(cache_dir() / "numba")]
    except (OSError, RuntimeError):  # an unresolvable GENRESTUDY_CACHE or home folder
        candidates = []
    user = os.getuid() if hasattr(os, "getuid") else "user"  # one folder per user: another's is not writable
    candidates.append(os.path.join(tempfile.gettempdir(), f"genrestudy-numba-{user}"))
    folder = next((c for c in candidates if _writable_folder(c)), None)
    if folder is not None:
        os.environ["NUMBA_CACHE_DIR"] = folder


_set_numba_cache()

#: minimum versions the study is written for (pyproject.toml installs them)
REQUIRED = {"numpy": "1.26", "pandas": "2.1", "scikit-learn": "1.4", "librosa": "0.10",
            "soundfile": "0.12", "matplotlib": "3.8", "joblib": "1.3"}


def _as_tuple(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def check_environment(required: dict[str, str] = REQUIRED) -> dict[str, str]:
    """Check Python and the study's key libraries; one readable error if anything is off.

    Returns the installed versions (and prints them on one line) so a notebook's output
    records what produced it.
    """
    if sys.version_info < (3, 10):
        raise RuntimeError(f"genrestudy needs Python >= 3.10, this is {sys.version.split()[0]}; run ./run_all.sh")
    found, problems = {}, []
    for name, minimum in required.items():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        if _as_tuple(found[name]) < _as_tuple(minimum):
            problems.append(f"{name} {found[name]} is older than {minimum}")
    if problems:
        raise RuntimeError("environment not ready: " + "; ".join(problems) +
                           " (./run_all.sh sets up .venv with the right versions)")
    print(f"python {sys.version.split()[0]}, genrestudy {__version__}, " +
          ", ".join(f"{k} {v}" for k, v in found.items()))
    return found


def _old_module_names() -> None:
    # the flat module names of 0.1, for one release (genrestudy.moved)
    from .moved import install

    install()


_old_module_names()
