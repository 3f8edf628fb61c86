"""The plan of a profile's run: the work each notebook will do, and about how long it takes here.

``./run_all.sh --profile paper --plan`` (``python -m genrestudy.plan paper [-p NAME VALUE ...]``)
prints, per notebook, the work its parameters under the profile ask for — LightGBM fits and
boosting rounds, end-to-end epochs × images, images to build and to extract — and an estimate
of its duration on this machine from per-unit costs measured in under a minute
(:func:`measure_unit_costs`). It reads notebook parameters (:func:`genrestudy.profiles.notebook_parameters`)
and imports no notebook's code, so it runs before GTZAN or the weights are in place; without
GTZAN in ``data/gtzan`` it assumes GTZAN's 1,000 clips and says so.

The estimate is an upper bound for the LightGBM searches (every fit is counted at its full
rounds; early stopping ends many sooner) and a rough one for the rest. A search that two
notebooks ask for with the same inputs is run once (:func:`genrestudy.tuning.cached_search`);
the plan counts it once and says how many rounds that reuse saves. Notebooks it knows nothing
about get a line saying so. ``GENRESTUDY_PLAN_MEASURE=0`` skips the measurement (work only).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths, profiles

#: GTZAN's size, assumed while it is not in data/gtzan
GTZAN_CLIPS = 1000
N_GENRES = 10
#: the width of the frozen ResNet-50 features LightGBM trains on
FEATURE_WIDTH = 2048
#: share of the segments in the training part of every protocol (:func:`genrestudy.splits.make_split`)
TRAIN_SHARE, VALID_SHARE = 0.8, 0.1
#: the halving factor of the study's searches (:func:`genrestudy.search.run_search`'s default), and one
#: that needs a third of their rounds, shown beside it (``bench/tune.py`` checks its halving gap)
STUDY_FACTOR, FEWER_ROUNDS_FACTOR = 3, 5
#: what each unit of work is, for the printed cost table
UNITS = {
    "mel_image": "mel image built from audio (one 3 s segment)",
    "forward_image": "ResNet-50 forward pass, one image (extraction, frozen-head epochs, validation)",
    "train_image": "ResNet-50 forward + backward, one image (fine-tuning epochs)",
    "boosting_round": "LightGBM boosting round on the paper-sized training features, one thread",
}


@dataclass
class NotebookWork:
    """What one notebook will do: printable lines and counts of work units."""

    notebook: str
    lines: list[str] = field(default_factory=list)
    units: dict[str, float] = field(default_factory=dict)
    parallel_units: set = field(default_factory=set)   # units spread over every core
    known: bool = True

    def add(self, unit: str, count: float, *, parallel: bool = False) -> None:
        self.units[unit] = self.units.get(unit, 0.0) + count
        if parallel:
            self.parallel_units.add(unit)

    def seconds(self, costs: dict, cores: int) -> float:
        return sum(count * costs[u] / (cores if u in self.parallel_units else 1) for u, count in self.units.items())


@dataclass
class StudySize:
    clips: int
    assumed: bool

    @property
    def segments(self) -> int:
        return self.clips * 10

    def segments_of(self, n_segments: int) -> int:
        return self.clips * int(n_segments)


def study_size(profile: str, params: dict) -> StudySize:
    """The number of clips the profile's data holds (GTZAN's 1,000 assumed when it is absent)."""
    data = params.get("data", "auto")
    gtzan = paths.data_dir() / "gtzan"
    if data in ("gtzan", "auto") and gtzan.is_dir():
        from .dataset import AUDIO_EXTENSIONS

        n = sum(1 for p in gtzan.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if n:
            return StudySize(n, assumed=False)
    if data in ("demo", "auto") and profile == "demo":
        return StudySize(int(params.get("demo_clips_per_genre", 10)) * N_GENRES, assumed=False)
    return StudySize(GTZAN_CLIPS, assumed=True)


# ---------------------------------------------------------------- LightGBM rounds

def search_rounds(n_candidates: int, *, mode: str, num_boost_round: int, factor: int = STUDY_FACTOR) -> tuple[int, int]:
    """(fits, boosting rounds at most) of one search, as :func:`genrestudy.search.run_search` runs it
    (halving on rounds with warm starts: a survivor trains only the rounds it lacks)."""
    from . import search

    if mode == "exhaustive":
        return n_candidates, n_candidates * num_boost_round
    first = search.default_min_resources(n_candidates, num_boost_round, factor=factor, resource="rounds")
    schedule = search.halving_schedule(n_candidates, min_resources=first, max_resources=num_boost_round,
                                       factor=factor)
    fits = rounds = previous = 0
    for alive, resources in schedule:
        fits += alive
        rounds += alive * (resources - previous)
        previous = resources
    return fits, rounds


def n_candidates(method: str, budget: int) -> int:
    from . import search

    full = 1
    for values in search.TABLE2_GRID.values():
        full *= len(values)
    return min(int(budget), full) if method == "grid" else int(budget)


class SearchLedger:
    """The searches of the whole run, keyed as the search cache keys them (protocol, method, seed, settings)."""

    def __init__(self):
        self.seen: set = set()
        self.asked_rounds = 0
        self.run_rounds = 0
        self.fewer_rounds = 0   # the searches run at FEWER_ROUNDS_FACTOR instead

    def ask(self, protocol: str, method: str, seed: int, p: dict, features: str = "study") -> tuple[int, int, bool]:
        n = n_candidates(method, p["budget"])
        fits, rounds = search_rounds(n, mode=p["search_mode"], num_boost_round=int(p["num_boost_round"]))
        key = (protocol, method, int(seed), n, p["search_mode"], int(p["num_boost_round"]), features,
               p.get("early_stopping_rounds"), p.get("max_bin"), p.get("data"), p.get("weights"))
        fresh = key not in self.seen
        self.seen.add(key)
        self.asked_rounds += rounds
        self.run_rounds += rounds if fresh else 0
        if fresh:
            self.fewer_rounds += search_rounds(n, mode=p["search_mode"], num_boost_round=int(p["num_boost_round"]),
                                               factor=FEWER_ROUNDS_FACTOR)[1]
        return fits, rounds, fresh


# ---------------------------------------------------------------- per notebook

def _lightgbm_searches(work: NotebookWork, ledger: SearchLedger, p: dict, protocol: str, seeds) -> None:
    fits = rounds = reused = 0
    for seed in seeds:
        for method in ("grid", "random"):
            f, r, fresh = ledger.ask(protocol, method, seed, p)
            if fresh:
                fits, rounds = fits + f, rounds + r
            else:
                reused += 1
    refits = 2 * len(seeds) * int(p["num_boost_round"])
    retrains = 2 * int(p["retrain_rounds"] or p["num_boost_round"])  # None: the search's round cap
    work.add("boosting_round", rounds + refits + retrains, parallel=True)
    work.lines.append(f"protocol {protocol}: {2 * len(seeds) - reused} searches ({p['search_mode']}, "
                      f"{n_candidates('grid', p['budget'])} grid points / {p['budget']} random draws, "
                      f"{p['num_boost_round']} rounds, seeds {list(seeds)}): {fits} fits, at most {rounds:,} rounds"
                      + (f"; {reused} searches reused from the cache of an earlier notebook" if reused else "")
                      + f"; winners refitted and retrained: {refits + retrains:,} rounds")


def _backbone_searches(work: NotebookWork, ledger: SearchLedger, p: dict, protocol: str) -> None:
    """Neighbouring study 3's LightGBM way: a Random Search per compared backbone and input size."""
    fits = rounds = reused = 0
    p = {**p, "budget": p.get("compared_search_budget") or p["budget"]}  # StudyInputs.compared_search_inputs
    from .backbones import MUSIC_TAGGERS

    compared = p.get("compared_backbones", ())  # a music tagger runs at its own input only
    pairs = [(b, s) for b in compared if b not in MUSIC_TAGGERS for s in p.get("compared_input_sizes", ())]
    pairs += [(b, None) for b in compared if b in MUSIC_TAGGERS]
    for backbone, size in pairs:
        f, r, fresh = ledger.ask(protocol, "random", p["seeds"][0], p, features=f"{backbone}@{size}")
        fits, rounds, reused = fits + f * fresh, rounds + r * fresh, reused + (not fresh)
    refits = (len(pairs) and len(p.get("compared_backbones", ()))) * int(p["num_boost_round"])
    work.add("boosting_round", rounds + refits, parallel=True)
    work.lines.append(f"protocol {protocol}: {len(pairs) - reused} Random Searches of {p['budget']} draws on "
                      f"frozen-extractor features ({len(compared)} extractors; image backbones at "
                      f"{len(p.get('compared_input_sizes', ()))} input sizes): {fits} fits, at most {rounds:,} rounds"
                      + (f"; {reused} reused from the cache of an earlier notebook" if reused else ""))


def _end_to_end(work: NotebookWork, p: dict, size: StudySize, *, head=None, finetune=None,
                max_train_images=None) -> None:
    from .endtoend import training_settings

    settings = training_settings(p.get("profile", "demo"))
    head = settings.head_epochs if head is None else head
    finetune = (settings.finetune_epochs if settings.finetunes else 0) if finetune is None else finetune
    train = int(size.segments_of(p.get("n_segments", 10)) * TRAIN_SHARE)
    train = min(train, max_train_images) if max_train_images else train
    valid = int(size.segments_of(p.get("n_segments", 10)) * VALID_SHARE)
    work.add("forward_image", head * train + (head + finetune) * valid)
    work.add("train_image", finetune * train)
    work.lines.append(f"end-to-end ResNet-50 at {settings.input_size} px: {head} frozen-head epochs + {finetune} "
                      f"fine-tuning epochs × {train:,} training images (+ {valid:,} validation images per epoch), "
                      "at most (early stopping may end a phase sooner)")


@dataclass
class _Context:
    """What the planners of single notebooks share: the data's size, the searches so far, and the
    protocols whose end-to-end model an earlier notebook trained."""

    size: StudySize
    ledger: SearchLedger
    trained: set


def _plan_images(work, p, segments, ctx):
    work.add("mel_image", segments)
    work.lines.append(f"{segments:,} mel images from {ctx.size.clips:,} clips; split protocols")


def _plan_features(work, p, segments, ctx):
    work.add("forward_image", segments)
    work.lines.append(f"{segments:,} images through the frozen {p.get('backbone')} ({p.get('weights')} weights)")


def _plan_tuning(work, p, segments, ctx):
    _lightgbm_searches(work, ctx.ledger, p, p["protocol"], p["seeds"])


def _plan_end_to_end(work, p, segments, ctx):
    _end_to_end(work, p, ctx.size)
    ctx.trained.add(p["protocol"])


def _plan_knn(work, p, segments, ctx):
    evals = sum(pop * gen for pop in p["ga_populations"] for gen in p["ga_generations"]) * len(p["ga_seeds"])
    work.lines.append(f"KNN on 6 spectral features: k enumerated over {len(p['seeds'])} seeds, genetic algorithm "
                      f"at most {evals:,} KNN evaluations, {p['n_resamples']} bootstrap resamples "
                      "(seconds to minutes; not estimated)")


def _plan_six_networks(work, p, segments, ctx):
    from .smallnets import GRIDS, NETWORKS

    grid = GRIDS.get(p.get("profile", "demo"), GRIDS["demo"])
    configs = [c for net in NETWORKS for c in grid.configs(net)]
    rows = min(int(segments * TRAIN_SHARE), grid.max_train_rows or segments)
    work.lines.append(f"six small networks at {grid.image_size} px: {len(configs)} configurations, at most "
                      f"{sum(c['epochs'] for c in configs):,} epochs x {rows:,} training rows"
                      + (f"; conditional GANs {grid.cgan_epochs} epochs" if p.get("waveform_cgan") else "")
                      + " (small networks: not estimated)")


def _plan_backbones(work, p, segments, ctx):
    from .backbones import MUSIC_TAGGERS

    sizes = p["compared_input_sizes"]
    backbones = [b for b in p["compared_backbones"] if b not in MUSIC_TAGGERS]
    taggers = [b for b in p["compared_backbones"] if b in MUSIC_TAGGERS]
    # a forward pass costs about ResNet-50's at 224 px scaled by the pixels (rough across architectures)
    work.add("forward_image", segments * len(backbones) * sum((s / 224) ** 2 for s in sizes))
    heads = (len(backbones) * len(sizes) + len(taggers)) * len(p["head_batch_sizes"]) * len(p["head_learning_rates"])
    work.lines.append(f"{segments:,} images through each of {len(backbones)} frozen backbones at {sizes} px "
                      f"(estimated from ResNet-50's cost per pixel)"
                      + (f", {segments:,} segments through {', '.join(taggers)} (small; not estimated)" if taggers else "")
                      + f"; {heads} dense-head fits on the features (seconds each; not estimated)")
    _backbone_searches(work, ctx.ledger, p, p["protocol"])


def _plan_efficiency(work, p, segments, ctx):
    _end_to_end(work, p, ctx.size, head=p["fit_head_epochs"], finetune=p["fit_finetune_epochs"],
                max_train_images=p["fit_max_train_images"])
    extract = p["extract_max_images"] or segments
    work.add("forward_image", extract)
    work.add("boosting_round", p["lightgbm_rounds"])
    work.lines.append(f"measured again in fresh processes: the fit above, a LightGBM fit of "
                      f"{p['lightgbm_rounds']} rounds, extraction of {extract:,} images; latencies")


def _plan_results(work, p, segments, ctx):
    for protocol in p["protocols"]:
        _lightgbm_searches(work, ctx.ledger, p, protocol, [p["seeds"][0]])
        if p.get("compared_backbones"):
            _backbone_searches(work, ctx.ledger, p, protocol)
        if protocol in ctx.trained:
            work.lines.append(f"protocol {protocol}: end-to-end ResNet-50 read from notebook 04's cache")
        else:
            _end_to_end(work, p, ctx.size)
            work.lines[-1] = f"protocol {protocol}: " + work.lines[-1]
            ctx.trained.add(protocol)
    work.lines.append("and every other registered method under each protocol (see its own notebook)")


#: the notebooks the plan knows, by number
PLANNERS = {"01": _plan_images, "02": _plan_features, "03": _plan_tuning, "04": _plan_end_to_end, "05": _plan_knn,
            "06": _plan_six_networks, "07": _plan_backbones, "08": _plan_efficiency, "09": _plan_results}


def plan_notebook(stem: str, p: dict, ctx: _Context) -> NotebookWork:
    """The work of notebook ``stem`` with parameters ``p``."""
    work = NotebookWork(stem)
    planner = PLANNERS.get(stem[:2])
    if planner is None:
        work.known = False
        work.lines.append("the plan knows nothing about this notebook's work: not counted, not estimated")
    else:
        planner(work, p, ctx.size.segments_of(p.get("n_segments", 10)), ctx)
    return work


def _notebook_params(profile: str, path: Path, overrides: dict) -> dict:
    return {**profiles.notebook_defaults(str(path)), **profiles.notebook_parameters(profile, str(path), overrides)}


def plan(profile: str, overrides: dict | None = None) -> tuple[StudySize, list[NotebookWork], SearchLedger]:
    """Every notebook's work under ``profile`` (with ``overrides``), in run order."""
    notebooks = sorted(profiles.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    ctx, works = None, []
    for path in notebooks:
        p = _notebook_params(profile, path, overrides or {})
        ctx = ctx or _Context(study_size(profile, p), SearchLedger(), set())
        works.append(plan_notebook(path.stem, p, ctx))
    ctx = ctx or _Context(StudySize(GTZAN_CLIPS, assumed=True), SearchLedger(), set())
    return ctx.size, works, ctx.ledger


# ---------------------------------------------------------------- unit costs

def _measure_mel_image() -> float:
    import numpy as np

    from .images import ImageParams, segment_images

    params = ImageParams()
    signal = np.random.default_rng(0).standard_normal((10, params.segment_samples)).astype(np.float32)
    segment_images(signal[:1], params)
    start = time.perf_counter()
    segment_images(signal, params)
    return (time.perf_counter() - start) / 10


def _measure_boosting_round(train_rows: int, *, rounds: int = 8) -> float:
    import numpy as np

    from .classifiers import TrainingData, fit_lightgbm

    rows = min(train_rows, 8000)   # larger sets scale linearly in rows (histograms dominate)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows + 200, FEATURE_WIDTH), dtype=np.float32)
    y = rng.integers(0, N_GENRES, rows + 200)
    X[:, :64] += y[:, None] * 0.3
    data = TrainingData(X[:rows], y[:rows], X[rows:], y[rows:], num_class=N_GENRES)
    data.datasets()
    params = {"num_leaves": 24, "max_depth": 5, "min_child_samples": 30, "learning_rate": 0.02,
              "reg_alpha": 5.0, "reg_lambda": 8.0, "bagging_fraction": 0.7, "feature_fraction": 0.7}
    fit = fit_lightgbm(data, params, num_boost_round=rounds, early_stopping_rounds=None, num_threads=1)
    return fit.fit_seconds / rounds * train_rows / rows


def _measure_resnet50(batch: int = 4) -> tuple[float, float]:
    import keras
    import numpy as np

    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=N_GENRES)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    y = np.arange(batch) % N_GENRES
    model.predict_on_batch(x)
    start = time.perf_counter()
    model.predict_on_batch(x)
    forward = (time.perf_counter() - start) / batch
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    return forward, (time.perf_counter() - start) / batch


def measure_unit_costs(train_rows: int) -> dict[str, float]:
    """Seconds per unit of work (:data:`UNITS`) on this machine, measured in under a minute."""
    forward, train = _measure_resnet50()
    return {"mel_image": _measure_mel_image(), "forward_image": forward, "train_image": train,
            "boosting_round": _measure_boosting_round(train_rows)}


# ---------------------------------------------------------------- report

def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(profile: str, size: StudySize, works: list[NotebookWork], ledger: SearchLedger,
                costs: dict | None, cores: int) -> str:
    out = [f"plan of the {profile} profile: {size.clips:,} clips ({size.segments:,} segments)"
           + (" — ASSUMED: GTZAN's 1,000 clips (data/gtzan is absent or empty)" if size.assumed else "")]
    if costs:
        out.append(f"unit costs measured on this machine ({cores} cores; the searches spread fits over all of them):")
        out += [f"  {UNITS[u]}: {c * 1000:.2f} ms" for u, c in costs.items()]
    total = 0.0
    for work in works:
        estimate = ""
        if costs and work.known and work.units:
            seconds = work.seconds(costs, cores)
            total += seconds
            estimate = f" — about {_duration(seconds)}"
        out.append(f"{work.notebook}{estimate}")
        out += [f"  {line}" for line in work.lines]
    rounds = int(sum(w.units.get("boosting_round", 0) for w in works))
    other = rounds - ledger.run_rounds   # refits, retrains, Table 8's fit
    out.append(f"boosting rounds in all: at most {rounds:,} ({len(ledger.seen)} distinct searches {ledger.run_rounds:,}, "
               f"refits and retrains {other:,}); {ledger.asked_rounds + other:,} if every notebook ran its own searches")
    if ledger.fewer_rounds != ledger.run_rounds:
        out.append(f"  not this run's setting: halving with factor {FEWER_ROUNDS_FACTOR} instead of {STUDY_FACTOR} would "
                   f"train at most {ledger.fewer_rounds + other:,} ({(ledger.fewer_rounds + other) / (ledger.asked_rounds + other):.0%}"
                   f" of {ledger.asked_rounds + other:,}); bench/tune.py measures its halving gap")
    if costs:
        out.append(f"estimated duration on this machine: about {_duration(total)} (the notebooks counted above)")
    return "\n".join(out)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python -m genrestudy.plan PROFILE [-p NAME VALUE ...]", file=sys.stderr)
        return 2
    try:
        overrides = profiles.parse_overrides(args[1:])
        profiles.check_overrides(overrides)
        size, works, ledger = plan(args[0], overrides)
    except profiles.ProfileError as exc:
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 1
    costs = None
    if os.environ.get("GENRESTUDY_PLAN_MEASURE", "1") != "0":
        print("measuring unit costs (under a minute) ...", file=sys.stderr, flush=True)
        costs = measure_unit_costs(int(size.segments * TRAIN_SHARE))
    print(format_plan(args[0], size, works, ledger, costs, os.cpu_count() or 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
