"""The work of a profile's run, notebook by notebook, in units whose cost :mod:`genrestudy.run.plan_costs` knows.

:func:`plan` reads every notebook's parameters under a profile (:func:`genrestudy.run.profiles.notebook_parameters`)
and counts what they ask for: LightGBM fits and boosting rounds (a search two notebooks share counted
once, as the search cache runs it once), end-to-end epochs × images, images to build and to extract
with every compared backbone, the six networks' grids, both CGANs, the dense heads, the KNN's
evaluations. Each count says how it spreads (:data:`genrestudy.run.plan_time.SPREADS`): over every core of every worker (the
searches' fits, images), or not at all (one model's epochs on this machine). A method run that a Dask
worker takes whole (:func:`genrestudy.report.table7.run_protocols`) is a job (:meth:`NotebookWork.add_job`):
a notebook's jobs spread over the worker processes longest first, a machine's GPU jobs taking its GPU in turn
(:func:`genrestudy.run.cluster.schedule`), never one job over several. :mod:`genrestudy.run.plan` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import paths
from . import plan_costs, profiles
from .plan_costs import Machine
from .plan_searches import SearchLedger, n_candidates
from .plan_time import NotebookWork

#: GTZAN's size, assumed while it is not in data/gtzan
GTZAN_CLIPS = 1000
N_GENRES = 10
#: share of the segments in the training part of every protocol (:func:`genrestudy.data.splits.make_split`)
TRAIN_SHARE, VALID_SHARE = 0.8, 0.1


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
        from ..data.dataset import AUDIO_EXTENSIONS

        n = sum(1 for p in gtzan.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if n:
            return StudySize(n, assumed=False)
    if data in ("demo", "auto") and profile == "demo":
        return StudySize(int(params.get("demo_clips_per_genre", 10)) * N_GENRES, assumed=False)
    return StudySize(GTZAN_CLIPS, assumed=True)


# ---------------------------------------------------------------- per notebook

def _lightgbm_searches(work: NotebookWork, ledger: SearchLedger, p: dict, protocol: str, seeds, *,
                       as_jobs: bool = False) -> None:
    """The paper's two searches per seed (their fits over every core), then each winner refitted and the first
    seed's retrained: on the notebook's machine (03), or one method run each on a worker (``as_jobs``: 09)."""
    fits = rounds = reused = 0
    winner_rounds, retrain_rounds = int(p["num_boost_round"]), int(p["retrain_rounds"] or p["num_boost_round"])
    winners = []
    for seed in seeds:
        for method in ("grid", "random"):
            f, r, fresh = ledger.ask(protocol, method, seed, p)
            if fresh:
                fits, rounds = fits + f, rounds + r
            else:
                reused += 1
            search = (protocol, method, int(seed), p["budget"], p["search_mode"], winner_rounds, p.get("max_bin"))
            winners.append(winner_rounds if ledger.winner_fit("refit", *search) else 0)
            if seed == seeds[0]:
                winners.append(retrain_rounds if ledger.winner_fit("retrain", *search, retrain_rounds,
                                                                   p.get("retrain_seed")) else 0)
    work.add("boosting_round", rounds, spread="prepared" if as_jobs else "cores")   # 09: the methods' prepare
    for count in filter(None, winners):
        if as_jobs:
            work.add_job({"boosting_round": count})
        else:
            work.add("boosting_round", count, spread="machine")
    trained = sum(winners)
    work.lines.append(f"protocol {protocol}: {2 * len(seeds) - reused} searches ({p['search_mode']}, "
                      f"{n_candidates('grid', p['budget'])} grid points / {p['budget']} random draws, "
                      f"{p['num_boost_round']} rounds, seeds {list(seeds)}): {fits} fits, at most {rounds:,} rounds"
                      + (f"; {reused} searches reused from the cache of an earlier notebook" if reused else "")
                      + (f"; winners refitted and retrained: {trained:,} rounds" if trained else
                         "; winners' refits and retrains read from the cache of an earlier notebook"))


def _backbone_searches(work: NotebookWork, ledger: SearchLedger, p: dict, protocol: str) -> None:
    """Neighbouring study 3's LightGBM way: a Random Search per compared extractor and input size (their fits
    over every core, before the method runs), then one method run per extractor refitting its best size's winner."""
    fits = rounds = reused = 0
    p = {**p, "budget": p.get("compared_search_budget") or p["budget"]}  # StudyInputs.compared_search_inputs
    images, taggers = _compared_pairs(p)
    pairs = images + [(t, None) for t in taggers]   # a music tagger runs at its own input only
    refitted = set()
    for backbone, size in pairs:
        f, r, fresh = ledger.ask(protocol, "random", p["seeds"][0], p, features=f"{backbone}@{size}")
        fits, rounds, reused = fits + f * fresh, rounds + r * fresh, reused + (not fresh)
        if fresh:
            refitted.add(backbone)
    work.add("boosting_round", rounds, spread="prepared")   # the methods' prepare (Method.prepare)
    for _ in refitted:
        work.add_job({"boosting_round": int(p["num_boost_round"])})
    work.lines.append(f"protocol {protocol}: {len(pairs) - reused} Random Searches of {p['budget']} draws on "
                      f"frozen-extractor features ({len(images) and len({b for b, _ in images})} image backbones at "
                      f"{len(p.get('compared_input_sizes', ()))} input sizes, {len(taggers)} music taggers): {fits} "
                      f"fits, at most {rounds:,} rounds"
                      + (f"; {reused} reused from the cache of an earlier notebook" if reused else ""))


def _end_to_end(work: NotebookWork, p: dict, size: StudySize, *, head=None, finetune=None,
                max_train_images=None, as_job: bool = False) -> None:
    from ..networks.endtoend import training_settings

    settings = training_settings(p.get("profile", "demo"))
    head = settings.head_epochs if head is None else head
    finetune = (settings.finetune_epochs if settings.finetunes else 0) if finetune is None else finetune
    train = int(size.segments_of(p.get("n_segments", 10)) * TRAIN_SHARE)
    train = min(train, max_train_images) if max_train_images else train
    valid = int(size.segments_of(p.get("n_segments", 10)) * VALID_SHARE)
    units = {"forward_image": head * train + (head + finetune) * valid, "train_image": finetune * train}
    if as_job:   # one method run of Table 7 on a worker
        work.add_job(units)
    else:
        for unit, count in units.items():
            work.add(unit, count)
    work.lines.append(f"end-to-end ResNet-50 at {settings.input_size} px: {head} frozen-head epochs + {finetune} "
                      f"fine-tuning epochs × {train:,} training images (+ {valid:,} validation images per epoch), "
                      "at most (early stopping may end a phase sooner)")


@dataclass
class _Context:
    """What the planners of single notebooks share: the data's size, the searches so far, the protocols
    whose end-to-end model an earlier notebook trained, and the (method, protocol) pairs already trained."""

    size: StudySize
    ledger: SearchLedger
    trained: set
    fitted: set = field(default_factory=set)


def _plan_images(work, p, segments, ctx):
    work.add("mel_image", segments, spread="cores")
    work.lines.append(f"{segments:,} mel images from {ctx.size.clips:,} clips; split protocols")


def _plan_features(work, p, segments, ctx):
    work.add("forward_image", segments)
    work.lines.append(f"{segments:,} images through the frozen {p.get('backbone')} ({p.get('weights')} weights)")


def _plan_tuning(work, p, segments, ctx):
    _lightgbm_searches(work, ctx.ledger, p, p["protocol"], p["seeds"])


def _plan_end_to_end(work, p, segments, ctx):
    _end_to_end(work, p, ctx.size)
    ctx.trained.add(p["protocol"])


def _knn(work, p, segments, ctx, protocol, seeds, *, as_job: bool = False):
    """Neighbouring study 1 under ``protocol``: spectral statistics, k enumerated, the genetic algorithm."""
    from ..signals import spectral
    from ..models import knn

    if ("knn", protocol) in ctx.fitted:
        work.lines.append(f"protocol {protocol}: spectral KNN read from the cache of an earlier notebook")
        return
    ctx.fitted.add(("knn", protocol))
    if ("spectral", None) not in ctx.fitted:
        ctx.fitted.add(("spectral", None))
        work.add("signal_features", segments, spread="cores")
    # a GA run fits each k once (its fitness is memoised per k: genetic.ga_knn), so at most one fit per k value
    ga_fits = sum(min(pop * (gen + 1), len(knn.K_VALUES)) for pop in p.get("ga_populations", (15,))
                  for gen in p.get("ga_generations", (30,)))
    evals = ga_fits * len(p.get("ga_seeds", (0,))) + len(knn.K_VALUES) * len(seeds)
    if as_job:   # one method run of Table 7 on a worker
        work.add_job({"knn_evaluation": evals})
    else:
        work.add("knn_evaluation", evals)
    work.lines.append(f"protocol {protocol}: KNN on {len(spectral.FEATURE_NAMES)} spectral statistics (mean and std "
                      f"of {len(spectral.SPECTRAL)} shape features of {segments:,} segments): k enumerated "
                      f"({len(knn.K_VALUES)} values × {len(seeds)} seeds) and the genetic algorithm (each run "
                      f"fits a k once), at most {evals:,} KNN fits in all")


def _plan_knn(work, p, segments, ctx):
    _knn(work, p, segments, ctx, p["protocol"], p["seeds"])


def _six_networks(work, p, segments, ctx, protocol, *, waveform: bool):
    """Neighbouring study 2 under ``protocol``: every configuration of the grid, the feature CGAN (and the waveform's)."""
    from ..networks import smallnets

    if ("six_networks", protocol) in ctx.fitted:
        work.lines.append(f"protocol {protocol}: six networks read from the cache of an earlier notebook")
        return
    ctx.fitted.add(("six_networks", protocol))
    grid = smallnets.GRIDS.get(p.get("profile", "demo"), smallnets.GRIDS["demo"])
    rows = min(int(segments * TRAIN_SHARE), grid.max_train_rows or segments)
    if ("sequences", None) not in ctx.fitted:
        ctx.fitted.add(("sequences", None))
        work.add("signal_features", segments, spread="cores")
    epochs = 0
    for net in smallnets.NETWORKS:   # a task per configuration; Net6's after its CGAN's (six_networks.tasks)
        augmented = net == "net6"
        if augmented:
            work.add_job({"cgan_feature_row": grid.cgan_epochs * rows}, stage=0)
        for config in grid.configs(net):   # Net6: the real rows and as many generated ones
            work.add_job({f"smallnet_row:{net}": config["epochs"] * rows * (2 if augmented else 1)}, stage=int(augmented))
            epochs += config["epochs"]
    line = (f"protocol {protocol}: six small networks at {grid.image_size} px, {epochs:,} epochs in all × {rows:,} "
            f"training rows (every configuration of the grid, at most; Net6 also on as many generated rows), "
            f"a task per configuration; feature CGAN {grid.cgan_epochs} epochs")
    if waveform:   # Net6 again, on waveform-CGAN rows
        work.add_job({"cgan_waveform_row": grid.cgan_epochs * rows}, stage=0)
        for config in grid.configs("net6"):
            work.add_job({"smallnet_row:net6": config["epochs"] * rows * 2}, stage=1)
        line += (f"; waveform CGAN {grid.cgan_epochs} epochs ({plan_costs.waveform_ratio():.0f}x the feature CGAN's "
                 "dense weights) and Net6's grid on its rows")
    work.lines.append(line)


def _plan_six_networks(work, p, segments, ctx):
    _six_networks(work, p, segments, ctx, p["protocol"], waveform=bool(p.get("waveform_cgan")))


def _compared_pairs(p) -> tuple[list, list]:
    from ..extractors.backbones import MUSIC_TAGGERS

    compared = p.get("compared_backbones", ())
    images = [(b, s) for b in compared if b not in MUSIC_TAGGERS for s in p.get("compared_input_sizes", ())]
    return images, [b for b in compared if b in MUSIC_TAGGERS]


def _dense_heads(work, p, segments, ctx, protocol):
    from ..networks import heads

    if ("heads", protocol) in ctx.fitted:
        work.lines.append(f"protocol {protocol}: dense heads read from the cache of an earlier notebook")
        return
    ctx.fitted.add(("heads", protocol))
    images, taggers = _compared_pairs(p)
    grid = len(p["head_batch_sizes"]) * len(p["head_learning_rates"])
    rows = int(segments * TRAIN_SHARE)
    sizes = {b: sum(1 for other, _ in images if other == b) for b, _ in images}
    sizes.update({t: 1 for t in taggers})   # a tagger runs at its own input only
    for n_sizes in sizes.values():   # one method run per extractor: its trials at every size, its final fit
        work.add_job({"head_row": (n_sizes * grid * heads.TRIAL_EPOCHS + heads.FINAL_EPOCHS) * rows})
    trials = sum(sizes.values()) * grid
    work.lines.append(f"protocol {protocol}: {trials} dense-head trials of {heads.TRIAL_EPOCHS} epochs and "
                      f"{len(sizes)} final fits of {heads.FINAL_EPOCHS} epochs on {rows:,} training rows, one method "
                      "run per extractor")


def _plan_backbones(work, p, segments, ctx):
    images, taggers = _compared_pairs(p)
    for backbone, size in images:
        work.add(f"backbone:{backbone}@{size}", segments)
    for tagger in taggers:
        work.add(f"musicnn:{tagger}", segments)
    work.lines.append(f"{segments:,} images through each of {len({b for b, _ in images})} frozen backbones at "
                      f"{p['compared_input_sizes']} px (Keras's published cost relative to ResNet-50's, scaled by "
                      "the pixels)" + (f", {segments:,} segments through {', '.join(taggers)} (taken as "
                                       "MobileNetV2's cost at 224 px: not measured)" if taggers else ""))
    _dense_heads(work, p, segments, ctx, p["protocol"])
    _backbone_searches(work, ctx.ledger, p, p["protocol"])


def _plan_efficiency(work, p, segments, ctx):
    _end_to_end(work, p, ctx.size, head=p["fit_head_epochs"], finetune=p["fit_finetune_epochs"],
                max_train_images=p["fit_max_train_images"])
    extract = p["extract_max_images"] or segments
    work.add("forward_image", extract)
    work.add("boosting_round", p["lightgbm_rounds"], spread="machine")   # on every core (efficiency_steps)
    work.lines.append(f"measured again in fresh processes: the fit above, a LightGBM fit of "
                      f"{p['lightgbm_rounds']} rounds, extraction of {extract:,} images; latencies")


def _plan_results(work, p, segments, ctx):
    every = p.get("table7_methods", "all") == "all"
    for protocol in p["protocols"]:
        _lightgbm_searches(work, ctx.ledger, p, protocol, [p["seeds"][0]], as_jobs=True)
        if protocol in ctx.trained:
            work.lines.append(f"protocol {protocol}: end-to-end ResNet-50 read from notebook 04's cache")
        else:
            _end_to_end(work, p, ctx.size, as_job=True)
            work.lines[-1] = f"protocol {protocol}: " + work.lines[-1]
            ctx.trained.add(protocol)
        if every:   # the neighbouring studies' methods (Table 7 of every registered method)
            _knn(work, p, segments, ctx, protocol, [p["seeds"][0]], as_job=True)
            _six_networks(work, p, segments, ctx, protocol, waveform=False)
            if p.get("compared_backbones"):
                _dense_heads(work, p, segments, ctx, protocol)
                _backbone_searches(work, ctx.ledger, p, protocol)
    work.lines.append("Table 7: " + ("every registered method" if every else "the paper's five methods only")
                      + f" under {', '.join(p['protocols'])}; bootstrap intervals ({p.get('n_resamples')} resamples: "
                      "seconds, not counted)")


#: the notebooks the plan knows, by number
PLANNERS = {"01": _plan_images, "02": _plan_features, "03": _plan_tuning, "04": _plan_end_to_end, "05": _plan_knn,
            "06": _plan_six_networks, "07": _plan_backbones, "08": _plan_efficiency, "09": _plan_results}


def plan_notebook(stem: str, p: dict, ctx: _Context, profile: str = "demo") -> NotebookWork:
    """The work of notebook ``stem`` with parameters ``p`` (none where ``profile`` leaves it out)."""
    work = NotebookWork(stem)
    planner = PLANNERS.get(stem[:2])
    skipped = profiles.left_out(profile, stem)
    if skipped:
        work.lines.append(f"left out of the {profile} profile: {skipped}")
    elif planner is None:
        work.known = False
        work.lines.append("the plan knows nothing about this notebook's work: not counted, not estimated")
    else:
        planner(work, p, ctx.size.segments_of(p.get("n_segments", 10)), ctx)
    return work


def _notebook_params(profile: str, path, overrides: dict) -> dict:
    return {**profiles.notebook_defaults(str(path)), **profiles.notebook_parameters(profile, str(path), overrides)}


def plan(profile: str, overrides: dict | None = None) -> tuple[StudySize, list[NotebookWork], SearchLedger]:
    """Every notebook's work under ``profile`` (with ``overrides``), in run order."""
    notebooks = sorted(profiles.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    ctx, works = None, []
    for path in notebooks:
        p = _notebook_params(profile, path, overrides or {})
        ctx = ctx or _Context(study_size(profile, p), SearchLedger(), set())
        works.append(plan_notebook(path.stem, p, ctx, profile))
    ctx = ctx or _Context(StudySize(GTZAN_CLIPS, assumed=True), SearchLedger(), set())
    return ctx.size, works, ctx.ledger


def measure_unit_costs(size: StudySize, profile: str) -> dict[str, float]:
    """This machine's unit costs at the profile's sizes (:func:`genrestudy.run.plan_costs.measure_unit_costs`)."""
    from ..signals import sequences
    from ..networks import smallnets
    from ..signals.images import ImageParams

    grid = smallnets.GRIDS.get("paper" if profile != "demo" else "demo")
    frames = sequences.SequenceParams().frames(ImageParams().segment_samples)
    return plan_costs.measure_unit_costs(int(size.segments * TRAIN_SHARE), image_size=grid.image_size,
                                         frames=frames, n_features=len(sequences.FEATURE_NAMES))
