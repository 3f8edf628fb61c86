"""genrestudy: music genre classification study (ResNet-50 features + LightGBM vs end-to-end)."""
from __future__ import annotations

import sys
from importlib import metadata

__version__ = "0.1.0"

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
