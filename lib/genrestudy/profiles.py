"""Run profiles: the parameters every notebook gets for a whole-study run.

* ``demo``: the notebooks' own defaults — the synthetic data set, random-init backbones,
  small budgets; minutes on a 2-core CPU, numbers that say nothing about GTZAN.
* ``paper``: GTZAN in ``data/gtzan``, ImageNet weights and the paper's settings (the full
  Table 2 grid, 2000 boosting rounds, 25 epochs end to end). It refuses to start, in one
  line, when GTZAN or the weights are missing.

``python -m genrestudy.profiles default|check PROFILE|params PROFILE NOTEBOOK`` is what
``run_all.sh`` calls.
"""
from __future__ import annotations

import json
import sys

from . import paths

PAPER = {
    "01_preprocess": {"data": "gtzan"},
    "02_extract_features": {"data": "gtzan", "backbone": "ResNet50", "weights": "imagenet"},
    "03_tune_lightgbm": {"data": "gtzan", "weights": "imagenet", "protocol": "paper",
                         "search_mode": "halving", "budget": 6561, "num_boost_round": 2000,
                         "early_stopping_rounds": 50, "retrain_rounds": 2000, "seeds": [0, 1, 2, 3, 4],
                         "n_jobs": -1},
    "04_finetune_resnet50": {"data": "gtzan", "profile": "paper", "weights": "imagenet", "protocol": "paper"},
    # 05: the real steps, unreduced (None: every training image / epoch of the profile / image)
    "05_efficiency": {"data": "gtzan", "weights": "imagenet", "profile": "paper", "protocol": "paper",
                      "fit_head_epochs": None, "fit_finetune_epochs": None, "fit_max_train_images": None,
                      "lightgbm_rounds": 2000, "early_stopping_rounds": 50, "extract_max_images": None,
                      "file_repeats": 30},
    "06_results": {"data": "gtzan", "weights": "imagenet", "profile": "paper",
                   "protocols": ["paper", "track", "filtered"], "search_mode": "halving", "budget": 6561,
                   "num_boost_round": 2000, "early_stopping_rounds": 50, "retrain_rounds": 2000, "n_jobs": -1,
                   "n_resamples": 1000},
}
PROFILES = {"demo": {}, "paper": PAPER}


class ProfileError(RuntimeError):
    """A profile that cannot run here; ``str(err)`` is one line."""


def default_profile() -> str:
    """``paper`` when GTZAN is in ``data/gtzan``, else ``demo``."""
    gtzan = paths.data_dir() / "gtzan"
    return "paper" if gtzan.is_dir() and any(gtzan.iterdir()) else "demo"


def notebook_parameters(profile: str, notebook: str) -> dict:
    """Parameters of ``notebook`` (its file stem, e.g. ``03_tune_lightgbm``) under ``profile``."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return dict(PROFILES[profile].get(notebook, {}))


def check_profile(profile: str) -> None:
    """Raise :class:`ProfileError` when ``profile`` lacks what it needs on this machine."""
    notebook_parameters(profile, "")
    if profile != "paper":
        return
    from .dataset import GTZAN_HINT

    gtzan = paths.data_dir() / "gtzan"
    if not (gtzan.is_dir() and any(gtzan.iterdir())):
        raise ProfileError(f"the paper profile needs GTZAN, and {gtzan} is missing or empty: {GTZAN_HINT}")
    from .features import imagenet_weights_path

    weights = imagenet_weights_path("ResNet50")
    if not weights.is_file():
        raise ProfileError(f"the paper profile needs ResNet-50's ImageNet weights: place {weights.name} "
                           f"in {weights.parent} (Keras downloads it there when online)")


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["default"]:
            print(default_profile())
        elif len(args) == 2 and args[0] == "check":
            check_profile(args[1])
        elif len(args) == 3 and args[0] == "params":
            print(json.dumps(notebook_parameters(args[1], args[2])))
        else:
            print("usage: python -m genrestudy.profiles default | check PROFILE | params PROFILE NOTEBOOK",
                  file=sys.stderr)
            return 2
    except ProfileError as exc:
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
