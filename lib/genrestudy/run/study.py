"""The study's inputs: one frozen set of settings that every notebook builds and every cache derives from.

A parameter that determines the data, the images, the split, the backbone or the searches
is a field of :class:`StudyInputs`. Every notebook has the same names in its ``parameters``
cell with the same defaults (a test checks it) and builds its inputs with
:meth:`StudyInputs.from_parameters`, so a value given once (``./run_all.sh -p n_mels 96``, or
a profile) reaches every notebook that depends on it, and the same inputs name the same
cache entries whichever notebook asks first.

>>> inputs = StudyInputs(n_mels=96)
>>> inputs.image_params()["n_mels"]
96
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import pandas as pd

from .. import cache, paths
from ..data import dataset, demo

log = logging.getLogger(__name__)

#: fields of :class:`StudyInputs` that determine the mel images (:class:`genrestudy.signals.images.ImageParams`)
IMAGE_FIELDS = ("n_segments", "segment_seconds", "n_fft", "hop_length", "n_mels", "image_size")


@dataclass(frozen=True)
class StudyInputs:
    """Everything that determines the study's data, images, split, features and searches.

    Attributes
    ----------
    data : str
        ``"auto"`` (GTZAN in ``data/gtzan`` if present, else the synthetic demo set),
        ``"demo"``, ``"gtzan"``, or a folder holding a data set (:func:`locate_data`).
    demo_clips_per_genre, demo_seed : int
        Size and seed of the synthetic demo set.
    n_segments, segment_seconds, n_fft, hop_length, n_mels, image_size
        Segmentation and mel-image settings (:class:`genrestudy.signals.images.ImageParams`).
    protocol : {"paper", "track", "filtered"}
        The split protocol a notebook works on (the results notebook runs a list of them).
    split_seed : int
        Seed of the random protocols' splits.
    split_lists_dir : str
        Folder of the filtered split's lists (``"auto"``: ``../shared/data/gtzan_splits``, then
        ``data/gtzan_splits``, then the copy bundled with the package).
    backbone, weights, input_size, precision
        The frozen feature extractor (:func:`genrestudy.extractors.features.extract_features`): its name,
        its weights (None: random init, fixed by ``seed``; ``"imagenet"``; a file; the
        end-to-end model starts from the same weights), the side it runs at (None: its own)
        and its arithmetic (``"auto"``, ``"float32"``, ``"bfloat16"``, ...).
    search_mode, budget, num_boost_round, early_stopping_rounds
        The LightGBM searches: exhaustive or halving, fits per search, rounds per fit, patience.
    retrain_rounds, retrain_seed
        The retrained winners (Tables 5/6, the "LightGBM (…)" rows of Table 7): rounds (None:
        ``num_boost_round``; any other value is refused, so that a retrained row differs from the
        selected one by its seed only), and the seed of their fresh fit, which must differ from
        the searches' so that the retrain is another draw of bagging and feature sampling.
    seeds : tuple of int
        Seeds of the repeated Grid-vs-Random comparison; the first is the paper-style run
        that Table 7's LightGBM rows use.
    max_bin : int
        LightGBM binning (:data:`genrestudy.models.classifiers.STUDY_MAX_BIN`).
    random_learning_rate : str
        Random Search's learning-rate distribution, ``"log-uniform"`` or ``"uniform"``
        (:func:`genrestudy.models.search.random_space`): notebook 03's searches and Table 7's share it.
    profile : str
        The end-to-end training profile (:data:`genrestudy.networks.endtoend.PROFILES`).
    compared_backbones, compared_input_sizes, head_batch_sizes, head_learning_rates : tuple
        The backbone comparison (notebook 07, :mod:`genrestudy.report.backbone_comparison`): the frozen
        backbones compared (and so the per-backbone methods of Table 7), the input sizes they run
        at, and the dense heads' grid of batch sizes and learning rates.
    compared_search_budget : int or None
        Fits per LightGBM search on a compared extractor's features (notebook 07 and its Table 7
        rows); None: the study's ``budget``.
    seed : int
        Random initialisation of the backbone when ``weights`` is None.
    """

    data: str = "auto"
    demo_clips_per_genre: int = 10
    demo_seed: int = 0
    n_segments: int = 10
    segment_seconds: float = 3.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    image_size: int = 224
    protocol: str = "track"
    split_seed: int = 0
    split_lists_dir: str = "auto"
    backbone: str = "ResNet50"
    weights: str | None = None
    input_size: int | None = None
    precision: str = "auto"
    seed: int = 0
    search_mode: str = "exhaustive"
    budget: int = 6
    num_boost_round: int = 20
    early_stopping_rounds: int | None = 10
    retrain_rounds: int | None = None
    retrain_seed: int = 1
    seeds: tuple = (0, 1)
    max_bin: int = 63
    random_learning_rate: str = "log-uniform"
    profile: str = "demo"
    compared_backbones: tuple = ("MobileNetV2", "EfficientNetB0", "MSD_musicnn")
    compared_input_sizes: tuple = (128,)
    head_batch_sizes: tuple = (32, 64)
    head_learning_rates: tuple = (0.01, 0.001)
    compared_search_budget: int | None = None

    def __post_init__(self):
        from ..data.splits import PROTOCOLS

        problems = value_problems(self)
        if problems:  # a wrong type or range: the checks below would fail on it in their own words
            raise ValueError("invalid study inputs: " + "; ".join(problems))
        seeds = (self.seeds,) if isinstance(self.seeds, int) else self.seeds
        object.__setattr__(self, "seeds", tuple(int(s) for s in seeds))
        if self.retrain_rounds is None:
            object.__setattr__(self, "retrain_rounds", self.num_boost_round)
        problems = _backbone_comparison_problems(self)
        if int(self.retrain_rounds) != int(self.num_boost_round):
            problems.append(f"retrain_rounds={self.retrain_rounds} differs from num_boost_round={self.num_boost_round} "
                            "(a retrained row must differ from the selected one by its seed only)")
        if self.random_learning_rate not in ("log-uniform", "uniform"):  # genrestudy.models.search.LEARNING_RATE_DISTRIBUTIONS
            problems.append(f"random_learning_rate={self.random_learning_rate!r} (expected 'log-uniform' or 'uniform')")
        if self.protocol not in PROTOCOLS:
            problems.append(f"protocol={self.protocol!r} (expected one of {', '.join(PROTOCOLS)})")
        if not self.seeds:
            problems.append("seeds=() (at least one seed)")
        elif self.retrain_seed == self.seeds[0]:
            problems.append(f"retrain_seed={self.retrain_seed} equals the first search seed (a retrain needs another seed)")
        if self.search_mode not in ("exhaustive", "halving"):
            problems.append(f"search_mode={self.search_mode!r} (expected 'exhaustive' or 'halving')")
        for name in ("budget", "num_boost_round", "retrain_rounds", "demo_clips_per_genre"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)!r} (expected >= 1)")
        if problems:
            raise ValueError("invalid study inputs: " + "; ".join(problems))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_parameters(cls, namespace: dict, **overrides) -> "StudyInputs":
        """The inputs named in ``namespace`` (a notebook's ``globals()``), the defaults for the others.

        Only the names of :class:`StudyInputs` are read, so a notebook's own parameters (plot
        sizes, file names) stay its own.
        """
        given = {name: namespace[name] for name in cls.names() if name in namespace}
        return cls(**{**given, **overrides})

    def with_(self, **changes) -> "StudyInputs":
        """A copy with ``changes`` (e.g. another protocol); a new ``num_boost_round`` carries the
        retrained winners' rounds along (they must be equal) unless ``retrain_rounds`` is given too."""
        if "num_boost_round" in changes:
            changes.setdefault("retrain_rounds", None)
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)

    def image_params(self) -> dict:
        """The fields of :class:`genrestudy.signals.images.ImageParams` these inputs set."""
        return {name: getattr(self, name) for name in IMAGE_FIELDS}

    def compared_search_inputs(self) -> "StudyInputs":
        """These inputs with ``budget`` set to ``compared_search_budget`` (when given): the LightGBM
        searches on the compared extractors' features (notebook 07)."""
        return self if self.compared_search_budget is None else self.with_(budget=int(self.compared_search_budget))

    def search_settings(self) -> dict:
        """What determines a LightGBM search's outcome besides its data and seed."""
        return {"mode": self.search_mode, "budget": int(self.budget), "num_boost_round": int(self.num_boost_round),
                "early_stopping_rounds": self.early_stopping_rounds, "random_learning_rate": self.random_learning_rate}

    def key(self) -> str:
        """A hash of every input (names a run; caches use the narrower keys of each step)."""
        return cache.cache_key("study-inputs", self.as_dict())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value == value and abs(value) != float("inf")


def _int_in(low: int, high: int):
    return (lambda v: _is_int(v) and low <= v <= high, f"an integer from {low} to {high}")


def _ints_in(low, high, cast=_is_int, what="integers"):
    """A list of values (or one value) each passing ``cast`` within [low, high]."""
    def check(v):
        items = [v] if cast(v) else v
        return (isinstance(items, (list, tuple)) and len(items) > 0
                and all(cast(x) and low <= x <= high for x in items))
    return check, f"a non-empty list of {what} from {low} to {high} (e.g. [{low}])"


def _one_of(*allowed):
    return (lambda v: v in allowed, "one of " + ", ".join(repr(a) for a in allowed))


def _text(v) -> bool:
    return isinstance(v, str) and bool(v.strip()) and "\n" not in v


_SEED = _int_in(0, 2 ** 32 - 1)
_ROUNDS = _int_in(1, 1_000_000)


def _schema() -> dict:
    """Each input's check of its value and what it expects, in words (types, ranges, allowed values)."""
    from ..extractors.backbones import BACKBONES, MUSIC_TAGGERS
    from ..device import INFERENCE_PRECISIONS
    from ..data.splits import PROTOCOLS

    return {
        "data": (_text, "'auto', 'demo', 'gtzan' or a folder"),
        "demo_clips_per_genre": _int_in(1, 1000), "demo_seed": _SEED,
        # a clip of at most 10 minutes: the signal cache holds every clip's segments at 22050 Hz
        "n_segments": _int_in(1, 200),
        "segment_seconds": (lambda v: _is_number(v) and 0.1 <= v <= 60, "a number of seconds from 0.1 to 60"),
        "n_fft": _int_in(16, 65536), "hop_length": _int_in(1, 65536), "n_mels": _int_in(1, 1024),
        "image_size": _int_in(8, 2048),
        "protocol": _one_of(*PROTOCOLS), "split_seed": _SEED, "split_lists_dir": (lambda v: isinstance(v, str),
                                                                                 "a folder, 'auto' or ''"),
        "backbone": _one_of(*BACKBONES),
        "weights": (lambda v: v is None or _text(v), "None, 'imagenet' or a weights file"),
        "input_size": (lambda v: v is None or (_is_int(v) and 8 <= v <= 2048), "None or an integer from 8 to 2048"),
        "precision": _one_of(*INFERENCE_PRECISIONS), "seed": _SEED,
        "search_mode": _one_of("exhaustive", "halving"), "budget": _ROUNDS, "num_boost_round": _ROUNDS,
        "early_stopping_rounds": (lambda v: v is None or (_is_int(v) and 1 <= v <= 1_000_000),
                                  "None or an integer from 1 to 1000000"),
        # None: num_boost_round (a retrained row differs from the selected one by its seed only)
        "retrain_rounds": (lambda v: v is None or _ROUNDS[0](v), "None or " + _ROUNDS[1]), "retrain_seed": _SEED, "seeds": _ints_in(0, 2 ** 32 - 1),
        "max_bin": _int_in(2, 65535), "random_learning_rate": _one_of("log-uniform", "uniform"),
        # the end-to-end training profile's name (checked against genrestudy.networks.endtoend.PROFILES where
        # training starts: importing it here would import Keras before the first notebook)
        "profile": (_text, "an end-to-end training profile's name"),
        "compared_backbones": (lambda v: isinstance(v, (str, list, tuple)) and len(v) > 0 and all(
            isinstance(x, str) and (x in BACKBONES or x in MUSIC_TAGGERS) for x in ([v] if isinstance(v, str) else v)),
            "a non-empty list of names from " + ", ".join([*BACKBONES, *MUSIC_TAGGERS])),
        "compared_input_sizes": _ints_in(8, 2048), "head_batch_sizes": _ints_in(1, 65536),
        "head_learning_rates": _ints_in(1e-8, 10.0, cast=_is_number, what="numbers"),
        "compared_search_budget": (lambda v: v is None or (_is_int(v) and 1 <= v <= 1_000_000),
                                   "None or an integer from 1 to 1000000"),
    }


def value_problems(inputs) -> list[str]:
    """One phrase per input whose value has the wrong type or range (``name=value (expected ...)``).

    ``inputs`` is a :class:`StudyInputs` or a dict of some of its names (``profiles check`` passes
    a run's parameters, before any notebook starts).
    """
    values = inputs if isinstance(inputs, dict) else {f.name: getattr(inputs, f.name) for f in fields(inputs)}
    schema, problems = _schema(), []
    for name, value in values.items():
        if name not in schema:
            continue
        check, expected = schema[name]
        try:
            ok = bool(check(value))
        except TypeError:
            ok = False
        if not ok:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            problems.append(f"{name}={shown} (expected {expected})")
    if not problems and {"n_segments", "segment_seconds"} <= set(values):
        if values["n_segments"] * values["segment_seconds"] > 600:
            problems.append(f"n_segments={values['n_segments']} x segment_seconds={values['segment_seconds']} "
                            "(expected clips of at most 600 s)")
    if not problems and {"hop_length", "n_fft"} <= set(values) and values["hop_length"] > values["n_fft"]:
        problems.append(f"hop_length={values['hop_length']} (expected at most n_fft={values['n_fft']})")
    return problems


def _backbone_comparison_problems(inputs: StudyInputs) -> list[str]:
    """Normalise the backbone comparison's fields to tuples (in place) and list what is wrong with them."""
    from ..extractors.backbones import BACKBONES, MUSIC_TAGGERS

    as_tuple = {"compared_backbones": str, "compared_input_sizes": int, "head_batch_sizes": int,
                "head_learning_rates": float}
    problems = []
    for name, kind in as_tuple.items():
        value = getattr(inputs, name)
        value = (value,) if isinstance(value, (str, int, float)) else tuple(value)
        object.__setattr__(inputs, name, tuple(kind(v) for v in value))
        if not value:
            problems.append(f"{name}=() (at least one)")
    unknown = [b for b in inputs.compared_backbones if b not in BACKBONES and b not in MUSIC_TAGGERS]
    if unknown:
        problems.append(f"compared_backbones has {unknown} (expected some of {', '.join([*BACKBONES, *MUSIC_TAGGERS])})")
    for size in inputs.compared_input_sizes:
        small = [b for b in inputs.compared_backbones if b in BACKBONES and size < BACKBONES[b].min_size]
        if small:
            problems.append(f"compared_input_sizes has {size}, below what {', '.join(small)} accept")
    if inputs.compared_search_budget is not None and int(inputs.compared_search_budget) < 1:
        problems.append(f"compared_search_budget={inputs.compared_search_budget!r} (at least 1, or None)")
    if any(b < 1 for b in inputs.head_batch_sizes) or any(not lr > 0 for lr in inputs.head_learning_rates):
        problems.append("head_batch_sizes and head_learning_rates must be positive")
    return problems


# ---------------------------------------------------------------- data

@dataclass(frozen=True)
class DataSource:
    """Where the audio comes from."""

    root: Path
    synthetic: bool

    @property
    def description(self) -> str:
        return f"SYNTHETIC demo data at {self.root}" if self.synthetic else f"audio data at {self.root}"


def locate_data(data: str = "auto", *, demo_clips_per_genre: int = 10, demo_seed: int = 0) -> DataSource:
    """Resolve the ``data`` input.

    ``"auto"``: GTZAN in ``data/gtzan`` if present, else the synthetic demo set (with a
    message saying where GTZAN goes); ``"demo"``: always the synthetic set; ``"gtzan"``:
    ``data/gtzan``, an error if absent; any other string: a folder holding a data set in one
    of the layouts of :mod:`genrestudy.data.dataset`.
    """
    gtzan = paths.data_dir() / "gtzan"
    if data == "auto":
        if gtzan.is_dir() and any(gtzan.iterdir()):
            return DataSource(gtzan, synthetic=False)
        log.warning("no GTZAN at %s (%s); using the SYNTHETIC demo data set instead",
                    gtzan, dataset.GTZAN_HINT)
        data = "demo"
    if data == "demo":
        root = demo.generate_demo_dataset(paths.data_dir() / "demo", clips_per_genre=demo_clips_per_genre,
                                          seed=demo_seed)
        return DataSource(root, synthetic=True)
    root = gtzan if data == "gtzan" else Path(data).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no data set at {root}: {dataset.GTZAN_HINT}")
    return DataSource(root, synthetic=demo.is_synthetic(root))


def source(inputs: StudyInputs) -> DataSource:
    """The data source of ``inputs``."""
    return locate_data(inputs.data, demo_clips_per_genre=inputs.demo_clips_per_genre, demo_seed=inputs.demo_seed)


def scan(data_source: DataSource, *, n_jobs: int = 2) -> pd.DataFrame:
    """The data manifest of ``data_source`` (cached)."""
    return dataset.scan_dataset(data_source.root, n_jobs=n_jobs)


def image_set(inputs: StudyInputs, *, n_jobs: int = -1):
    """The mel images of the inputs' data set (notebook 01's product), built or taken from the cache."""
    from ..signals.images import ImageParams, build_image_set

    found = source(inputs)
    return build_image_set(scan(found), ImageParams(**inputs.image_params()), synthetic=found.synthetic,
                           n_jobs=n_jobs)


def signal_set(inputs: StudyInputs, *, n_jobs: int = -1):
    """The decoded segments of the inputs' data set (the one decode per clip every feature set shares),
    segmented as the inputs' images are; built or taken from the cache."""
    from ..signals.images import ImageParams
    from ..signals.signal_set import build_signal_set

    found = source(inputs)
    return build_signal_set(scan(found), ImageParams(**inputs.image_params()).segment_params,
                            synthetic=found.synthetic, n_jobs=n_jobs)


def feature_set(inputs: StudyInputs, images=None, *, progress: bool = True):
    """The frozen backbone's features of the inputs' images (notebook 02's product), built or cached."""
    from ..extractors.features import extract_features

    images = images if images is not None else image_set(inputs)
    return extract_features(images, backbone=inputs.backbone, weights=inputs.weights,
                            input_size=inputs.input_size, precision=inputs.precision, seed=inputs.seed,
                            progress=progress)


def split(inputs: StudyInputs, segments: pd.DataFrame, protocol: str | None = None) -> pd.Series:
    """``train``/``valid``/``test`` per segment under ``protocol`` (default: the inputs' own)."""
    from ..data.splits import make_split, resolve_lists_dir

    return make_split(segments, protocol or inputs.protocol, seed=inputs.split_seed,
                      lists_dir=resolve_lists_dir(inputs.split_lists_dir))
