"""Run profiles: the parameters every notebook gets for a whole-study run.

* ``demo``: the notebooks' own defaults — the synthetic data set, random-init backbones,
  small budgets; minutes on a 2-core CPU, numbers that say nothing about GTZAN.
* ``paper``: GTZAN in ``data/gtzan``, ImageNet weights and the paper's settings (the full
  Table 2 grid, 2000 boosting rounds, 25 epochs end to end). It refuses to start, in one
  line, when GTZAN or the weights are missing.

A profile sets the study inputs (:class:`genrestudy.study.StudyInputs`) once; each notebook
gets those of them that its ``parameters`` cell has, plus the profile's settings of that
notebook alone. ``-p NAME VALUE`` (``./run_all.sh -p n_mels 96``) overrides a parameter in
every notebook that has it, and is refused when no notebook has it.

``./run_all.sh --profile paper --scale smoke`` runs a profile's every notebook at toy budgets
(:data:`SMOKE_INPUTS`, :data:`SMOKE_NOTEBOOKS`), to test its wiring in minutes.

``python -m genrestudy.profiles default | check PROFILE [-p NAME VALUE ...] |
params PROFILE NOTEBOOK [-p NAME VALUE ...] | budget PROFILE NOTEBOOK`` is what ``run_all.sh`` calls.
"""
from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

from . import paths

#: the paper profile's study inputs (every notebook that has the parameter gets it)
PAPER_INPUTS = {"data": "gtzan", "weights": "imagenet", "profile": "paper", "protocol": "paper",
                "search_mode": "halving", "budget": 6561, "num_boost_round": 2000, "early_stopping_rounds": 50,
                "seeds": [0, 1, 2, 3, 4],  # retrain_rounds: num_boost_round's (StudyInputs)
                # neighbouring study 3 (notebook 07; its methods in Table 7): every backbone, the source's grid
                "compared_backbones": ["ResNet50", "DenseNet201", "EfficientNetB0", "EfficientNetB6", "EfficientNetB7",
                                       "Xception", "MobileNetV2", "MSD_musicnn", "MTT_musicnn"],
                "compared_input_sizes": [300, 400, 500], "head_batch_sizes": [32, 48, 64],
                "head_learning_rates": [0.01, 0.001, 0.0001],
                # its LightGBM way: a Random Search of 100 draws per extractor and input size (with the
                # profile's halving), not the whole Table 2 budget of notebook 03 (--plan shows the cost)
                "compared_search_budget": 100}
#: the paper profile's settings of single notebooks
PAPER_NOTEBOOKS = {
    "03_tune_lightgbm": {"n_jobs": -1},
    "05_knn_genetic": {"n_resamples": 1000},
    # the source's grid at 180 px (the paper profile's grid, genrestudy.smallnets.GRIDS) and its waveform CGAN
    "06_six_networks": {"waveform_cgan": True, "n_resamples": 1000},
    "07_backbones": {"n_resamples": 1000},
    # the real steps, unreduced (None: every training image / epoch of the profile / image)
    "08_efficiency": {"fit_head_epochs": None, "fit_finetune_epochs": None, "fit_max_train_images": None,
                      "lightgbm_rounds": 2000, "extract_max_images": None, "file_repeats": 30},
    "09_results": {"protocols": ["paper", "track", "filtered"], "n_jobs": -1, "n_resamples": 1000},
}
PROFILES = {"demo": ({}, {}), "paper": (PAPER_INPUTS, PAPER_NOTEBOOKS)}

#: ``--scale smoke`` (``GENRESTUDY_SCALE=smoke``): the profile's wiring at toy budgets, applied on top
#: of the profile's settings (the test of the paper profile runs every notebook so in minutes):
#: a few fits of a few rounds, one epoch of each end-to-end phase at the demo's training profile
#: (64 px), a few GA runs and resamples. Its numbers mean nothing; what it made is stamped with
#: the data it read.
SMOKE_INPUTS = {"budget": 6, "num_boost_round": 9, "early_stopping_rounds": 3, "seeds": [0, 1],
                "profile": "demo",
                # notebook 07 and its Table 7 rows: one small backbone at one small input size, two heads
                "compared_backbones": ["MobileNetV2"], "compared_input_sizes": [96], "head_batch_sizes": [32],
                "compared_search_budget": None,
                "head_learning_rates": [0.01, 0.001]}
SMOKE_NOTEBOOKS = {
    "03_tune_lightgbm": {"n_jobs": 2},
    "04_finetune_resnet50": {"n_samples": 4},
    "05_knn_genetic": {"ga_populations": [4], "ga_generations": [3], "ga_seeds": [0], "n_resamples": 20},
    # the demo's reduced grid (profile "demo" above); no waveform CGAN (about 200 M parameters)
    "06_six_networks": {"waveform_cgan": False, "n_resamples": 20},
    "07_backbones": {"n_resamples": 20},
    "08_efficiency": {"fit_head_epochs": 1, "fit_finetune_epochs": 0, "fit_max_train_images": 40,
                      "lightgbm_rounds": 9, "extract_max_images": 16, "latency_repeats": 3, "file_repeats": 2},
    "09_results": {"n_jobs": 2, "n_resamples": 20},
}
SCALES = {"full": ({}, {}), "smoke": (SMOKE_INPUTS, SMOKE_NOTEBOOKS)}
#: the environment variable ``./run_all.sh --scale NAME`` sets
SCALE_ENV = "GENRESTUDY_SCALE"

#: the demo's time budget per notebook on the project's 2-core machine, after set-up (seconds)
DEMO_BUDGET_SECONDS = {"01": 30, "02": 60, "03": 60, "04": 80, "05": 60, "06": 150, "07": 150, "08": 100,
                       "09": 150}


class ProfileError(RuntimeError):
    """A profile that cannot run here; ``str(err)`` is one line."""


class ParameterError(ProfileError):
    """A parameter value of the wrong type or range (``run_all.sh`` exits 2, before any notebook)."""


def default_profile() -> str:
    """``paper`` when GTZAN is in ``data/gtzan``, else ``demo``."""
    gtzan = paths.data_dir() / "gtzan"
    return "paper" if gtzan.is_dir() and any(gtzan.iterdir()) else "demo"


def notebooks_dir() -> Path:
    return paths.project_root() / "notebooks"


def _notebook_path(notebook: str) -> Path:
    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = notebooks_dir() / f"{notebook}.ipynb"
    if not path.is_file():
        raise ProfileError(f"no notebook {path}")
    return path


def notebook_defaults(notebook: str) -> dict:
    """The names and default values of a notebook's ``parameters`` cell (plain literals only)."""
    path = _notebook_path(notebook)
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ProfileError(f"{path.name} has {len(tagged)} cells tagged 'parameters'; it needs exactly one")
    out = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def parse_value(text: str):
    """A ``-p`` value as papermill reads one: a Python/JSON literal (``96``, ``None``, ``[0, 1]``), else the string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    return text


def parse_overrides(args: list[str]) -> dict:
    """``["-p", "n_mels", "96", ...]`` → ``{"n_mels": 96, ...}``."""
    out, rest = {}, list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise ProfileError(f"expected '-p NAME VALUE', got {' '.join([flag, *rest[:2]])!r}")
        name, value = rest.pop(0), rest.pop(0)
        out[name] = parse_value(value)
    return out


def current_scale() -> str:
    """The budgets' scale of this run: ``$GENRESTUDY_SCALE`` (``./run_all.sh --scale``), else ``full``."""
    scale = os.environ.get(SCALE_ENV) or "full"
    if scale not in SCALES:
        raise ProfileError(f"unknown scale {scale!r} ({SCALE_ENV}); expected one of {', '.join(SCALES)}")
    return scale


def notebook_parameters(profile: str, notebook: str, overrides: dict | None = None, *,
                        scale: str | None = None) -> dict:
    """Parameters of ``notebook`` (a path or a file stem such as ``03_tune_lightgbm``) under
    ``profile`` at ``scale`` (default :func:`current_scale`; ``smoke``: :data:`SMOKE_INPUTS` and
    :data:`SMOKE_NOTEBOOKS` over the profile's), with ``overrides`` applied where the notebook has
    the parameter."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    scale = current_scale() if scale is None else scale
    if scale not in SCALES:
        raise ProfileError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    names = notebook_defaults(notebook)
    inputs, per_notebook = PROFILES[profile]
    scaled_inputs, scaled_notebooks = SCALES[scale]
    stem = _notebook_path(notebook).stem
    given = {**inputs, **per_notebook.get(stem, {}), **scaled_inputs, **scaled_notebooks.get(stem, {}),
             **(overrides or {})}
    return {k: v for k, v in given.items() if k in names}


def check_overrides(overrides: dict) -> None:
    """Refuse an override that no notebook has as a parameter (a typo would otherwise do nothing)."""
    known = set()
    for path in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        known |= set(notebook_defaults(str(path)))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ProfileError(f"no notebook has the parameter(s) {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(known))}")


def _same_kind(value, default) -> bool:
    """Whether a notebook's own parameter ``value`` has the kind of its ``default`` (None: any)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) or value is None
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def check_values(profile: str, overrides: dict) -> None:
    """Refuse, in one line naming the parameter, a value of the wrong type or range that any notebook
    would get: the study inputs by :func:`genrestudy.study.value_problems` and :class:`StudyInputs`'
    own checks, a notebook's own parameter by the kind of its default (``-p n_resamples abc``)."""
    from .study import StudyInputs

    names = set(StudyInputs.names())
    for path in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        params = notebook_parameters(profile, str(path), overrides)
        shared = {k: v for k, v in params.items() if k in names}
        try:
            StudyInputs(**shared)
        except ValueError as exc:
            raise ParameterError(f"{exc} (notebook {path.stem})") from None
        defaults = notebook_defaults(str(path))
        for name, value in params.items():
            if name not in names and not _same_kind(value, defaults.get(name)):
                raise ParameterError(f"invalid parameter {name}={value!r} for {path.stem} (expected a value like "
                                     f"its default {defaults[name]!r})")


def profile_backbones(profile: str) -> list[tuple[str, int | None]]:
    """``(backbone, input_size)`` of every backbone whose ImageNet weights ``profile`` needs at this
    run's scale: the study's backbone and any ``compared_backbones`` (none without ``"imagenet"``)."""
    from .backbones import BACKBONES
    from .study import StudyInputs

    inputs, per_notebook = PROFILES[profile]
    scaled_inputs, scaled_notebooks = SCALES[current_scale()]
    inputs = {**inputs, **scaled_inputs}
    if inputs.get("weights") != "imagenet":
        return []
    defaults = StudyInputs()
    pairs = [(inputs.get("backbone", defaults.backbone), inputs.get("input_size", defaults.input_size))]
    for stem in (None, *per_notebook, *scaled_notebooks):
        settings = inputs if stem is None else {**per_notebook.get(stem, {}), **scaled_notebooks.get(stem, {})}
        pairs += [(name, None) for name in settings.get("compared_backbones", ()) if name in BACKBONES]
    return list(dict.fromkeys(pairs))


def check_profile(profile: str) -> None:
    """Raise :class:`ProfileError` when ``profile`` lacks what it needs on this machine.

    The paper profile needs GTZAN and the ImageNet weights of every backbone it uses: a file
    that is missing is downloaded now, through Keras's own download with its hash and progress
    bar (:func:`genrestudy.weights.fetch_imagenet_weights`); offline, one line says which file,
    where it goes and the command that fetches it on a connected machine. Only the study's own
    backbone is required: a compared backbone (notebook 07) whose weights cannot be had gets that
    line as a warning, and notebook 07 and Table 7 skip it.
    """
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if profile != "paper":
        return
    from .dataset import GTZAN_HINT

    gtzan = paths.data_dir() / "gtzan"
    if not (gtzan.is_dir() and any(gtzan.iterdir())):
        raise ProfileError(f"the paper profile needs GTZAN, and {gtzan} is missing or empty: {GTZAN_HINT}")
    from .weights import WeightsUnavailable, fetch_imagenet_weights

    needed = profile_backbones(profile)
    for n, (backbone, input_size) in enumerate(needed):
        try:
            fetch_imagenet_weights(backbone, input_size)
        except WeightsUnavailable as exc:
            if n == 0:  # the study's own backbone: every notebook needs it
                raise ProfileError(f"the {profile} profile needs ImageNet weights: {exc}") from None
            # a compared backbone only: notebook 07 and Table 7 skip it, naming the file
            print(f"run_all.sh: {backbone} will be skipped in the backbone comparison: {exc}", file=sys.stderr)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["default"]:
            print(default_profile())
        elif len(args) >= 2 and args[0] == "check":
            current_scale()
            overrides = parse_overrides(args[2:])
            check_overrides(overrides)
            check_values(args[1], overrides)
            check_profile(args[1])
        elif len(args) >= 3 and args[0] == "params":
            print(json.dumps(notebook_parameters(args[1], args[2], parse_overrides(args[3:]))))
        elif len(args) == 3 and args[0] == "budget":
            print(DEMO_BUDGET_SECONDS.get(Path(args[2]).name[:2], "") if args[1] == "demo" else "")
        else:
            print("usage: python -m genrestudy.profiles default | check PROFILE [-p NAME VALUE ...] | "
                  "params PROFILE NOTEBOOK [-p NAME VALUE ...] | budget PROFILE NOTEBOOK", file=sys.stderr)
            return 2
    except ParameterError as exc:
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 2
    except ProfileError as exc:
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
