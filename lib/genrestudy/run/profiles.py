"""Run profiles: the parameters every notebook gets for a whole-study run.

* ``demo``: the notebooks' own defaults — the synthetic data set, random-init backbones,
  small budgets; minutes on a 2-core CPU, numbers that say nothing about GTZAN.
* ``paper``: the paper's experiments and nothing else — GTZAN in ``data/gtzan``, ImageNet
  weights, one seed, the ``paper`` protocol (its segment split), Table 2's Grid vs Random Search
  (2000 boosting rounds, early stopping 50) and their retrained winners, the end-to-end ResNet-50
  (25 epochs), Table 8 and every figure and table of the paper. It leaves out notebooks 05-07
  (the neighbouring studies: :data:`LEFT_OUT`) and, in Table 7, every method the paper does not
  have. What it changes from the source, and why (:data:`PAPER_DEPARTURES`): the searches use
  successive halving on boosting rounds instead of training every one of the 6,561 grid points
  to 2000 rounds (``./run_all.sh --profile paper --plan`` prints what the exhaustive search
  would cost), Random Search gets the grid's budget (the source does not state its own), and
  ``bagging_freq = 1`` (the source's grid tuned a no-op without it; notebook 03).
* ``audit``: everything the study adds to the paper — five seeds of the Grid-vs-Random
  comparison, the ``track`` and ``filtered`` protocols, every registered method of Table 7 and
  every compared extractor at three input sizes, the neighbouring studies (notebooks 05-07).
  Its searches with the paper's inputs are the paper profile's (the search cache shares them).

The paper and audit profiles refuse to start, in one line, when GTZAN or the weights are missing;
``python -m genrestudy.run.profiles describe PROFILE`` prints what a profile runs and leaves out (the
first lines of ``./run_all.sh`` and of its plan).

A profile sets the study inputs (:class:`genrestudy.run.study.StudyInputs`) once; each notebook
gets those of them that its ``parameters`` cell has, plus the profile's settings of that
notebook alone. ``-p NAME VALUE`` (``./run_all.sh -p n_mels 96``) overrides a parameter in
every notebook that has it, and is refused when no notebook has it.

``./run_all.sh --profile paper --scale smoke`` runs a profile's every notebook at toy budgets
(:data:`SMOKE_INPUTS`, :data:`SMOKE_NOTEBOOKS`), to test its wiring in minutes.

``python -m genrestudy.run.profiles default | describe PROFILE | check PROFILE [-p NAME VALUE ...] |
params PROFILE NOTEBOOK [-p NAME VALUE ...] | budget PROFILE NOTEBOOK | left-out PROFILE NOTEBOOK``
is what ``run_all.sh`` calls.
"""
from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

from .. import paths

#: the paper profile's study inputs (every notebook that has the parameter gets it): the paper's
#: data, weights, split and Table 2 searches, one seed
PAPER_INPUTS = {"data": "gtzan", "weights": "imagenet", "profile": "paper", "protocol": "paper",
                "search_mode": "halving", "budget": 6561, "num_boost_round": 2000, "early_stopping_rounds": 50,
                "seeds": [0]}  # retrain_rounds: num_boost_round's (StudyInputs)
#: the paper profile's settings of single notebooks
PAPER_NOTEBOOKS = {
    "03_tune_lightgbm": {"n_jobs": -1},
    # the real steps, unreduced (None: every training image / epoch of the profile / image)
    "08_efficiency": {"fit_head_epochs": None, "fit_finetune_epochs": None, "fit_max_train_images": None,
                      "lightgbm_rounds": 2000, "extract_max_images": None, "file_repeats": 30},
    # Table 7 as the paper has it: its protocol, its five methods (with intervals the paper lacks)
    "09_results": {"protocols": ["paper"], "table7_methods": "paper", "n_jobs": -1, "n_resamples": 1000},
}
#: what the paper profile changes from the source, and why (README and notebook 03 say it too)
PAPER_DEPARTURES = (
    "successive halving on boosting rounds (factor 3, from 8 rounds; survivors continue their fits) instead of "
    "training all 6,561 grid points to 2000 rounds (--plan prints the rounds of both)",
    "Random Search gets the grid's budget of 6,561 draws inside Table 2's box (the source does not state its "
    "budget, and its draws left the box)",
    "bagging_freq = 1 in every configuration (without it LightGBM ignores bagging_fraction, a no-op axis of the grid)",
)
#: the notebooks a profile leaves out, with the reason printed in their place
LEFT_OUT = {"paper": {
    "05_knn_genetic": "neighbouring study 1 (spectral KNN + GA), not the paper's: --profile audit runs it",
    "06_six_networks": "neighbouring study 2 (six small networks, CGANs), not the paper's: --profile audit runs it",
    "07_backbones": "neighbouring study 3 (frozen backbones compared), not the paper's: --profile audit runs it",
}}

#: the audit profile: everything the study adds (seeds, protocols, every method and compared extractor)
AUDIT_INPUTS = {**PAPER_INPUTS, "seeds": [0, 1, 2, 3, 4],
                # neighbouring study 3 (notebook 07; its methods in Table 7): every backbone, the source's grid
                "compared_backbones": ["ResNet50", "DenseNet201", "EfficientNetB0", "EfficientNetB6", "EfficientNetB7",
                                       "Xception", "MobileNetV2", "MSD_musicnn", "MTT_musicnn"],
                "compared_input_sizes": [300, 400, 500], "head_batch_sizes": [32, 48, 64],
                "head_learning_rates": [0.01, 0.001, 0.0001],
                # its LightGBM way: a Random Search of 100 draws per extractor and input size (with the
                # profile's halving), not the whole Table 2 budget of notebook 03 (--plan shows the cost)
                "compared_search_budget": 100}
AUDIT_NOTEBOOKS = {
    "03_tune_lightgbm": {"n_jobs": -1},
    "05_knn_genetic": {"n_resamples": 1000},
    # the source's grid at 180 px (the paper profile's grid, genrestudy.networks.smallnets.GRIDS) and its waveform CGAN
    "06_six_networks": {"waveform_cgan": True, "n_resamples": 1000},
    "07_backbones": {"n_resamples": 1000},
    "08_efficiency": PAPER_NOTEBOOKS["08_efficiency"],
    "09_results": {"protocols": ["paper", "track", "filtered"], "table7_methods": "all", "n_jobs": -1,
                   "n_resamples": 1000},
}
PROFILES = {"demo": ({}, {}), "paper": (PAPER_INPUTS, PAPER_NOTEBOOKS), "audit": (AUDIT_INPUTS, AUDIT_NOTEBOOKS)}
#: what each profile is, in one line (the first line ``./run_all.sh`` and the plan print)
PROFILE_SUMMARIES = {
    "demo": "the synthetic demo set, random-init backbones, small budgets: the wiring in minutes, numbers that "
            "say nothing about GTZAN",
    "paper": "the paper's experiments only: GTZAN, ImageNet weights, one seed, the paper protocol, Table 2's Grid vs "
             "Random Search, the end-to-end ResNet-50, Table 8, the paper's figures and tables",
    "audit": "everything the study adds: five seeds, the paper, track and filtered protocols, every registered method "
             "and compared extractor, the neighbouring studies (notebooks 05-07)",
}

#: ``--scale smoke`` (``GENRESTUDY_SCALE=smoke``): the profile's wiring at toy budgets, applied on top
#: of the profile's settings (the test of the paper profile runs every notebook so in minutes):
#: a few fits of a few rounds, one epoch of each end-to-end phase at the demo's training profile
#: (64 px), a few GA runs and resamples. Its numbers mean nothing; what it made is stamped with
#: the data it read.
#: Only what the profile itself sets is shrunk (the paper profile gets no compared backbones from
#: here), and its seeds are cut to their first :data:`SMOKE_SEEDS`.
SMOKE_INPUTS = {"budget": 6, "num_boost_round": 9, "early_stopping_rounds": 3,
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
SMOKE_SEEDS = 2
SCALES = {"full": ({}, {}), "smoke": (SMOKE_INPUTS, SMOKE_NOTEBOOKS)}
#: the environment variable ``./run_all.sh --scale NAME`` sets
SCALE_ENV = "GENRESTUDY_SCALE"

#: the demo's time budget per notebook on the project's 2-core machine, after set-up (seconds); they add up
#: to at most :data:`DEMO_TOTAL_BUDGET_SECONDS` (the whole demo's 15 minutes). 02, 04, 08 and 09 were raised to
#: the times a fresh-clone demo run took (lead's measurement, week of issue 22), within that total.
DEMO_BUDGET_SECONDS = {"01": 30, "02": 70, "03": 60, "04": 90, "05": 60, "06": 150, "07": 150, "08": 115,
                       "09": 170}
DEMO_TOTAL_BUDGET_SECONDS = 15 * 60


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


def profile_settings(profile: str, scale: str) -> tuple[dict, dict]:
    """The study inputs and per-notebook settings of ``profile`` at ``scale``: a smaller scale shrinks only
    what the profile sets (and cuts its seeds to :data:`SMOKE_SEEDS`), so it tests the profile's own wiring."""
    inputs, per_notebook = PROFILES[profile]
    scaled_inputs, scaled_notebooks = SCALES[scale]
    inputs = {**inputs, **{k: v for k, v in scaled_inputs.items() if k in inputs}}
    if scale == "smoke" and "seeds" in inputs:
        inputs["seeds"] = list(inputs["seeds"])[:SMOKE_SEEDS]
    notebooks = {stem: {**per_notebook.get(stem, {}), **scaled_notebooks.get(stem, {})}
                 for stem in {*per_notebook, *scaled_notebooks}}
    return inputs, notebooks


def left_out(profile: str, notebook: str) -> str | None:
    """Why ``profile`` does not run ``notebook`` (a path or a stem), or None when it runs it."""
    return LEFT_OUT.get(profile, {}).get(Path(notebook).stem)


def describe(profile: str) -> list[str]:
    """What ``profile`` runs and what it leaves out (and, for the paper profile, what it changes), in lines."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    lines = [f"profile {profile}: {PROFILE_SUMMARIES[profile]}"]
    skipped = LEFT_OUT.get(profile, {})
    if skipped:
        lines.append(f"  leaves out notebooks {', '.join(s[:2] for s in skipped)} (the neighbouring studies) and, in "
                     "Table 7, every method without the paper's numbers; --profile audit runs them")
    if profile == "paper":
        lines += [f"  departs from the source: {d}" for d in PAPER_DEPARTURES]
    if profile == "audit":
        lines.append("  leaves out nothing the study has; its paper-protocol searches at seed 0 are the paper profile's")
    return lines


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
    inputs, per_notebook = profile_settings(profile, scale)
    stem = _notebook_path(notebook).stem
    given = {**inputs, **per_notebook.get(stem, {}), **(overrides or {})}
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
    would get: the study inputs by :func:`genrestudy.run.study.value_problems` and :class:`StudyInputs`'
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
    from ..extractors.backbones import BACKBONES
    from .study import StudyInputs

    inputs, per_notebook = profile_settings(profile, current_scale())
    if inputs.get("weights") != "imagenet":
        return []
    defaults = StudyInputs()
    pairs = [(inputs.get("backbone", defaults.backbone), inputs.get("input_size", defaults.input_size))]
    for stem in (None, *sorted(per_notebook)):
        if stem is not None and left_out(profile, stem):
            continue
        settings = inputs if stem is None else per_notebook[stem]
        pairs += [(name, None) for name in settings.get("compared_backbones", ()) if name in BACKBONES]
    return list(dict.fromkeys(pairs))


def check_profile(profile: str) -> None:
    """Raise :class:`ProfileError` when ``profile`` lacks what it needs on this machine.

    The paper profile needs GTZAN and the ImageNet weights of every backbone it uses: a file
    that is missing is downloaded now, through Keras's own download with its hash and progress
    bar (:func:`genrestudy.extractors.weights.fetch_imagenet_weights`); offline, one line says which file,
    where it goes and the command that fetches it on a connected machine. Only the study's own
    backbone is required: a compared backbone (notebook 07) whose weights cannot be had gets that
    line as a warning, and notebook 07 and Table 7 skip it.
    """
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if profile == "demo":
        return
    from ..data.dataset import GTZAN_HINT

    gtzan = paths.data_dir() / "gtzan"
    if not (gtzan.is_dir() and any(gtzan.iterdir())):
        raise ProfileError(f"the {profile} profile needs GTZAN, and {gtzan} is missing or empty: {GTZAN_HINT}")
    from ..extractors.weights import WeightsUnavailable, fetch_imagenet_weights

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
        elif len(args) == 2 and args[0] == "describe":
            print("\n".join(describe(args[1])))
        elif len(args) == 3 and args[0] == "left-out":
            print(left_out(args[1], args[2]) or "")
        elif len(args) == 3 and args[0] == "budget":
            print(DEMO_BUDGET_SECONDS.get(Path(args[2]).name[:2], "") if args[1] == "demo" else "")
        else:
            print("usage: python -m genrestudy.run.profiles default | describe PROFILE | check PROFILE [-p NAME VALUE ...] | "
                  "params PROFILE NOTEBOOK [-p NAME VALUE ...] | budget PROFILE NOTEBOOK | left-out PROFILE NOTEBOOK",
                  file=sys.stderr)
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
