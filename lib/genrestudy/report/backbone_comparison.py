"""Neighbouring study 3: which frozen extractor, at what input scale, with what head (notebook 07).

Every compared extractor is an :class:`Extractor`: a name, its size, the input sizes its
features exist at, the registry keys of its two methods (a dense softmax head trained by the
source's grid, :mod:`genrestudy.networks.heads`; LightGBM tuned by the study's search, both in
:mod:`genrestudy.methods.frozen_backbones`), and its measured extraction cost. The ImageNet
backbones of the inputs' ``compared_backbones`` are made by :func:`image_backbones`; an extractor
that is not an image backbone (a music-trained network on the audio, say) is one more
:class:`Extractor` whose methods read its ``(n_segments, d)`` features, row for row with the
image set, and whose cost it measures itself.

Extraction runs once per backbone and input size, each in a fresh process
(:func:`genrestudy.efficiency.measure_step`), which writes the features into the study's
feature cache (:func:`genrestudy.run.study.feature_set`) and so measures throughput and peak
resident memory of that backbone alone; the measurement is cached per machine. The methods are
then trained and scored through Table 7's own path (:func:`genrestudy.report.table7.protocol_rows`),
so notebook 09 reads the same runs back.

Without ImageNet weights the backbones are randomly initialised, and every table says so in a
``weights`` column (the figures in a stamp). The source's numbers (``docs/PAPER.md``, item 3)
stand in rows of their own: it classified clothing photographs, not spectrograms.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache
from . import table7
from ..run import study
from ..extractors.backbones import MUSIC_TAGGERS, backbone_spec, imagenet_weights_path, weights_identity
from ..methods.frozen_backbones import method_keys

log = logging.getLogger(__name__)

_COST_KIND = "extraction-cost"
#: images per forward pass when extracting (speed and memory only)
EXTRACTION_BATCH = 32
#: the demo's limit on one backbone's peak resident memory while it extracts (MB)
DEMO_PEAK_RSS_LIMIT_MB = 1536

SOURCE_LABEL = "neighbouring study 3 (as reported; docs/PAPER.md)"
SOURCE_NOTE = ("the source classified clothing photographs (10 classes), not spectrograms; its backbones "
               "had ImageNet weights and ran on its own hardware")
#: the source's final results (docs/PAPER.md, neighbouring study 3): macro F1 (%), size, seconds
SOURCE_RESULTS = (
    {"backbone": "EfficientNetB6", "f1_macro": 90.8, "parameters_millions": 41.0, "training_seconds": 420,
     "tuning_seconds": 3500},
    {"backbone": "EfficientNetB7", "f1_macro": 92.2, "parameters_millions": 64.1, "training_seconds": 555,
     "tuning_seconds": 4559},
    {"backbone": "DenseNet201", "f1_macro": 82.5, "parameters_millions": 18.3, "training_seconds": 212,
     "tuning_seconds": 2642},
    {"backbone": "Xception", "f1_macro": 91.1, "parameters_millions": 20.9, "training_seconds": 139,
     "tuning_seconds": 1662},
)
WAYS = {"head": "frozen + GAP + dense softmax head (source's way)", "lightgbm": "features + LightGBM (paper's way)"}


@dataclass
class Extractor:
    """One entry of the comparison.

    Attributes
    ----------
    name, kind : str
        E.g. ``"MobileNetV2"``, ``"ImageNet image backbone"``.
    parameters_millions : float
        Size of the extractor (without any head).
    weights : str
        What it ran with (``"random init (no ImageNet weights)"``, ``"ImageNet"``, ...).
    methods : tuple of str
        Registry keys of its dense-head and LightGBM methods.
    cost : dict
        ``{input size: {"images_per_second", "peak_rss_mb", "seconds", "images"}}`` as measured;
        an extractor without an input size uses the key None.
    """

    name: str
    kind: str
    parameters_millions: float
    weights: str
    methods: tuple
    cost: dict = field(default_factory=dict)

    @property
    def input_sizes(self) -> list:
        return list(self.cost)


def weights_note(weights) -> str:
    """How a table names the backbones' weights."""
    if weights is None:
        return "random init (no ImageNet weights)"
    return "ImageNet" if weights == "imagenet" else f"weights file {Path(weights).name}"


# ---------------------------------------------------------------- extraction, measured in a fresh process

def _with_backbone(inputs: study.StudyInputs, backbone: str, input_size: int) -> study.StudyInputs:
    return inputs.with_(backbone=backbone, input_size=int(input_size))


def feature_entry(inputs: study.StudyInputs, image_set, backbone: str, input_size: int) -> Path:
    """The feature cache entry of ``backbone`` at ``input_size`` (complete or not)."""
    from .. import device
    from ..extractors.features import feature_cache_key

    key = feature_cache_key(image_set, backbone=backbone_spec(backbone).name,
                            weights_id=weights_identity(inputs.weights, seed=inputs.seed), input_size=int(input_size),
                            precision=device.resolve_precision(inputs.precision, training=False))
    return cache.entry_dir("features", key)


def extraction_step(*, compared_backbone: str, compared_input_size: int, **inputs) -> dict:
    """In a fresh process: ``compared_backbone``'s features at ``compared_input_size`` into the feature
    cache, timed; when they are cached already, extracted again without storing, to time them.

    Returns ``images``, ``seconds``, ``images_per_second`` and ``parameters`` (of the bare network).
    """
    import time

    import keras

    from .. import device
    from ..extractors import backbones, features

    given = _with_backbone(study.StudyInputs(**inputs), compared_backbone, compared_input_size)
    image_set = study.image_set(given)
    if cache.is_complete(feature_entry(given, image_set, compared_backbone, compared_input_size)):
        precision = device.resolve_precision(given.precision, training=False)
        model = backbones.build_backbone(compared_backbone, weights=given.weights, precision=precision,
                                         image_size=int(image_set.images.shape[1]), input_size=given.input_size,
                                         seed=given.seed)
        started = time.perf_counter()
        features.stream_features(model, image_set.images, backbone=compared_backbone, batch_size=EXTRACTION_BATCH,
                                 progress=False)
        seconds = time.perf_counter() - started
    else:
        extraction = study.feature_set(given, image_set, progress=False).meta["extraction"]
        seconds = float(extraction["seconds"])
    keras.backend.clear_session()
    bare = backbones.application(backbone_spec(compared_backbone), weights=None, input_size=given.input_size)
    return {"images": int(len(image_set)), "seconds": seconds, "images_per_second": len(image_set) / seconds,
            "parameters": int(bare.count_params())}


def measure_extraction(inputs: study.StudyInputs, image_set, backbone: str, input_size: int) -> dict:
    """``backbone``'s extraction at ``input_size`` measured in a fresh process (cached per machine):
    ``images_per_second``, ``peak_rss_mb`` (the whole process), ``seconds``, ``images``, ``parameters``.

    Raises FileNotFoundError (one line naming the file) when its weights cannot be had.
    """
    from .. import device, efficiency

    entry = feature_entry(inputs, image_set, backbone, input_size)
    key = cache.cache_key(f"{_COST_KIND}-v1", entry.name, efficiency.hardware(), device.accelerator(),
                          EXTRACTION_BATCH)

    def build(folder: Path) -> dict:
        given = _with_backbone(inputs, backbone, input_size).as_dict()
        given.pop("backbone"), given.pop("input_size")
        # the precision this process resolved (and keyed the entry by): a fresh process resolving "auto" by its own
        # timing probe could pick the other one and store the features under another key
        given["precision"] = device.resolve_precision(inputs.precision, training=False)
        try:
            report = efficiency.measure_step("genrestudy.report.backbone_comparison:extraction_step",
                                             {"compared_backbone": backbone, "compared_input_size": int(input_size),
                                              **given})
        except RuntimeError as exc:
            if "FileNotFoundError" in str(exc):
                raise FileNotFoundError(str(exc).split("FileNotFoundError: ", 1)[-1]) from None
            raise
        result = report["result"]
        return {"backbone": backbone, "input_size": int(input_size), "features": entry.name,
                "hardware": efficiency.hardware(), "images": result["images"], "seconds": result["seconds"],
                "images_per_second": result["images_per_second"], "parameters": result["parameters"],
                "peak_rss_mb": report["peak_rss_mb"], "rss_before_mb": report["rss_before_mb"]}

    return cache.open_or_build(_COST_KIND, key, open_entry=cache.read_meta, build=build)


def weights_problem(inputs: study.StudyInputs, backbone: str, input_size: int) -> str | None:
    """Why ``backbone``'s weights cannot be had here, naming the file; None when they can (or may)."""
    if inputs.weights is None or backbone == inputs.backbone:
        return None
    if inputs.weights == "imagenet":
        path = imagenet_weights_path(backbone, input_size)
        return None if path.is_file() else f"{path.name} is not in {path.parent}"
    return f"the weights file {Path(inputs.weights).name} is the study backbone's ({inputs.backbone})"


def image_backbones(inputs: study.StudyInputs, image_set, *, progress: bool = True) -> tuple[list, list]:
    """The inputs' compared backbones as :class:`Extractor` s, each extracted at every compared input size
    (in a fresh process, measured) unless cached. A backbone whose weights cannot be had is skipped
    with one line naming the file; the study's own backbone is required (its error is raised).

    Returns ``(extractors, skipped)``, ``skipped`` holding one line per backbone left out.
    """
    from ..progress import progress_bar

    extractors, skipped = [], []
    image_ones = [b for b in inputs.compared_backbones if b not in MUSIC_TAGGERS]
    for backbone in progress_bar(image_ones, desc="backbones", enabled=progress, leave=False):
        cost, problem = {}, None
        for size in inputs.compared_input_sizes:
            problem = weights_problem(inputs, backbone, size)
            if problem is None:
                try:
                    cost[int(size)] = measure_extraction(inputs, image_set, backbone, size)
                except FileNotFoundError as exc:
                    if backbone == inputs.backbone:
                        raise
                    problem = str(exc)
            if problem:
                break
        if problem:
            skipped.append(f"{backbone} skipped: {problem}")
            log.warning(skipped[-1])
            continue
        parameters = next(iter(cost.values()))["parameters"]
        extractors.append(Extractor(backbone, "ImageNet image backbone", parameters / 1e6, weights_note(inputs.weights),
                                    method_keys(backbone), cost))
    return extractors, skipped


def music_taggers(inputs: study.StudyInputs) -> tuple[list, list]:
    """The inputs' compared musicnn taggers (:data:`~genrestudy.extractors.backbones.MUSIC_TAGGERS`) as
    :class:`Extractor` s with their real, published weights, each extracted over the study's segments
    in a fresh process (measured, cached per machine). Without the weights (not fetched) every tagger
    is skipped with one line naming the command that fetches them.

    Returns ``(extractors, skipped)`` as :func:`image_backbones`.
    """
    from ..extractors import musicnn, musicnn_weights
    from ..methods.musicnn import method_keys as tagger_method_keys

    taggers = [m for m in inputs.compared_backbones if m in MUSIC_TAGGERS]
    if taggers and not musicnn_weights.available():
        skipped = [f"{m} skipped: its published weights are not fetched (run {musicnn_weights.FETCH_COMMAND})"
                   for m in taggers]
        for line in skipped:
            log.warning(line)
        return [], skipped
    out = []
    for model in taggers:
        cost = musicnn.measure_extraction(inputs, model)
        out.append(Extractor(model, "music-trained audio tagger", cost["parameters"] / 1e6,
                             "published musicnn weights (pretrained on music)", tagger_method_keys(model), {None: cost}))
    return out, []


# ---------------------------------------------------------------- the comparison

def run_comparison(extractors: list, data, split, *, protocol: str, n_resamples: int = 200, seed: int = 0,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each extractor's two methods trained on ``split`` (or read from their cache, as Table 7 does)
    and scored with bootstrap intervals: :func:`genrestudy.report.table7.protocol_rows`' ``(rows, details)``."""
    keys = [key for extractor in extractors for key in extractor.methods]
    if not keys:
        raise ValueError("no extractor to compare (every compared backbone was skipped)")
    return table7.protocol_rows(data, split, protocol=protocol, methods=keys, n_resamples=n_resamples, seed=seed,
                                progress=progress)


def _interval(row: pd.Series, metric: str) -> str:
    return table7.with_interval(row, metric)  # the point alone where no interval is reported


def comparison_table(extractors: list, rows: pd.DataFrame, details: pd.DataFrame) -> pd.DataFrame:
    """One row per extractor and way (segment level), then the source's rows.

    Columns: backbone, way, source, weights, parameters (millions), input size (chosen), macro F1
    and accuracy with their 95 % intervals (``macro_f1_with_ci``, ``accuracy_with_ci``: text; and
    ``f1_macro``, ``accuracy`` and their ``_ci_low`` / ``_ci_high`` in percent), head-training
    and tuning seconds, extraction throughput and peak RSS at that input size.
    """
    segment = rows[rows["level"] == "segment"].set_index("key")
    detail = details.set_index("key")
    out = []
    for extractor in extractors:
        for way, key in zip(WAYS, extractor.methods):
            score, report = segment.loc[key], detail.loc[key]
            size = report.get("input_size")
            size = None if pd.isna(size) else int(size)
            cost = extractor.cost.get(size, {})
            out.append({"backbone": extractor.name, "way": WAYS[way], "source": table7.OUR_SOURCE,
                        "weights": extractor.weights, "parameters_millions": round(extractor.parameters_millions, 2),
                        "input_size": size, "macro_f1_with_ci": _interval(score, "f1_macro"),
                        "accuracy_with_ci": _interval(score, "accuracy"),
                        **{f"{m}{end}": score[f"{m}{end}"] for m in ("f1_macro", "accuracy")
                           for end in ("", "_ci_low", "_ci_high")},
                        "training_seconds": float(report["training_seconds"]),
                        "tuning_seconds": float(report["search_seconds"]),
                        "images_per_second": cost.get("images_per_second"), "peak_rss_mb": cost.get("peak_rss_mb")})
    table = pd.concat([pd.DataFrame(out), source_rows()], ignore_index=True)
    return table.astype({"input_size": "Int64"})


def source_rows() -> pd.DataFrame:
    """The source's results, labelled, in the comparison table's columns."""
    return pd.DataFrame([{"backbone": r["backbone"], "way": "frozen + GAP + dense softmax head (source)",
                          "source": SOURCE_LABEL, "weights": f"ImageNet; {SOURCE_NOTE}",
                          "parameters_millions": r["parameters_millions"], "macro_f1_with_ci": f"{r['f1_macro']:.1f}",
                          "f1_macro": r["f1_macro"], "training_seconds": float(r["training_seconds"]),
                          "tuning_seconds": float(r["tuning_seconds"])} for r in SOURCE_RESULTS])


def f1_by_input_size(extractors: list, details: pd.DataFrame) -> pd.DataFrame:
    """Per extractor and input size, the dense-head grid's best validation macro F1 there (long table;
    an extractor whose head did not record it, having no input sizes, is left out)."""
    import ast

    detail = details.set_index("key")
    out = []
    for extractor in extractors:
        by_size = detail.get("valid_f1_macro_by_input_size", pd.Series(dtype=object)).get(extractor.methods[0])
        if by_size is None or (isinstance(by_size, float) and np.isnan(by_size)):
            continue
        by_size = ast.literal_eval(by_size) if isinstance(by_size, str) else by_size
        out += [{"backbone": extractor.name, "input_size": int(size), "valid_f1_macro": float(f1)}
                for size, f1 in by_size.items()]
    return pd.DataFrame(out, columns=["backbone", "input_size", "valid_f1_macro"])


def memory_summary(extractors: list, *, limit_mb: float = DEMO_PEAK_RSS_LIMIT_MB) -> pd.DataFrame:
    """Per extractor and input size: throughput, peak RSS of its extraction process, and whether it is within ``limit_mb``."""
    return pd.DataFrame([{"backbone": e.name, "weights": e.weights, "input_size": size, "images": c.get("images"),
                          "images_per_second": c.get("images_per_second"), "peak_rss_mb": c.get("peak_rss_mb"),
                          "rss_before_mb": c.get("rss_before_mb"), "within_limit": c.get("peak_rss_mb", np.inf) <= limit_mb}
                         for e in extractors for size, c in e.cost.items()])


def weights_stamp(weights) -> str:
    """The line every figure of the comparison carries when the backbones had no pretrained weights."""
    return "" if weights is not None else "ImageNet backbones randomly initialised (no ImageNet weights)"


def summary_text(table: pd.DataFrame, memory: pd.DataFrame, *, limit_mb: float = DEMO_PEAK_RSS_LIMIT_MB) -> str:
    """The closing note, generated from this run's numbers: each backbone's two ways, and its extraction's
    peak RSS against ``limit_mb``."""
    ours = table[table["source"] == table7.OUR_SOURCE]
    lines = ["| backbone | way | input size | macro F1 [95 % CI] | accuracy [95 % CI] | weights |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.backbone} | {r.way} | {r.input_size} | {r.macro_f1_with_ci} | {r.accuracy_with_ci} | {r.weights} |"
              for r in ours.itertuples()]
    best = ours.loc[ours["f1_macro"].idxmax()]
    lines += ["", f"Highest test macro F1 here: {best['backbone']}, {best['way']} ({best['macro_f1_with_ci']}); "
              "intervals that overlap do not separate two rows.", ""]
    for r in memory.itertuples():
        verdict = "within" if r.within_limit else "ABOVE"
        where = "on its own mel input" if r.input_size is None or pd.isna(r.input_size) else f"at {r.input_size} px"
        lines.append(f"- {r.backbone} {where}: peak RSS {r.peak_rss_mb:.0f} MB of its extraction process "
                     f"({verdict} the {limit_mb:.0f} MB limit), {r.images_per_second:.1f} images/s")
    return "\n".join(lines)
