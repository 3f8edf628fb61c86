"""Neighbouring study 1: spectral features → KNN, its k chosen by enumeration or by a genetic algorithm.

The source study (docs/PAPER.md, "Neighbouring studies", item 1) classified the FFT
spectrum's six shape features (:mod:`genrestudy.spectral`) with an unweighted Euclidean KNN
and chose k in 1..15 with a genetic algorithm; it chose on its test set. Here both choices
use the **validation** split and the test split is scored once:

* **plain**: every k of 1..15 fitted and scored on validation (15 fits); the best wins,
  the smallest k on a tie;
* **GA** (:func:`ga_knn`, DEAP's operators as :class:`GASettings` names them): 4-bit
  chromosomes, fitness = validation accuracy (memoised per k), elitism, roulette-wheel
  selection, one-point crossover, bit-flip mutation, generational replacement.

KNN runs in a scikit-learn ``Pipeline`` with standardisation (optional, on by default:
the features' scales differ by four orders of magnitude). Two Table 7 methods are
registered, "Spectral KNN (plain)" and "Spectral KNN (GA)"; a fitted KNN is saved as a
model file of kind ``"knn"`` (:func:`save_knn_model`) that ``genrestudy predict --model``
reads: the training features, labels, k and scaler statistics as ``.npy``/JSON, no pickle.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from .. import cache, modelfile, predict, spectral
from .base import Method, Part, register

#: the values of k both choices consider
K_VALUES = tuple(range(1, 16))
#: the source study's numbers, on its gamelan data (mood: 2 classes, 70:30 split, k chosen on its test set)
SOURCE_LABEL = "source study (gamelan angklung mood, as reported; docs/PAPER.md)"
SOURCE_ROWS = (
    {"method": "plain KNN (source)", "runs": 1, "k": 14, "test_accuracy": 87.84,
     "note": "k chosen on its test set"},
    {"method": "GA-tuned KNN (source)", "runs": 9, "k": 3, "test_accuracy": 89.19, "classify_s_per_sample": 0.0054,
     "note": "k chosen on its test set, k = 3 in all 9 runs; 0.0054 s per classification of its application"},
)


# ---------------------------------------------------------------- KNN

def knn_pipeline(k: int, *, scale: bool = True):
    """Unweighted Euclidean ``KNeighborsClassifier(k)`` after a ``StandardScaler`` (or none)."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler() if scale else "passthrough"),
                     ("knn", KNeighborsClassifier(n_neighbors=int(k), weights="uniform", metric="euclidean"))])


def class_probabilities(pipeline, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n, n_classes)`` vote shares of a fitted KNN, columns for every class code (absent ones 0)."""
    proba = pipeline.predict_proba(np.asarray(X))
    out = np.zeros((len(proba), n_classes))
    out[:, pipeline.classes_.astype(int)] = proba
    return out


@dataclass
class KnnProblem:
    """The training and validation features a choice of k is made on.

    Raises one line when the training set is smaller than the largest k (15).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    n_classes: int
    scale: bool = True
    _fits: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.X_train, self.X_valid = np.asarray(self.X_train, float), np.asarray(self.X_valid, float)
        self.y_train, self.y_valid = np.asarray(self.y_train, int), np.asarray(self.y_valid, int)
        if len(self.X_train) != len(self.y_train) or len(self.X_valid) != len(self.y_valid) or not len(self.X_valid):
            raise ValueError(f"expected features and labels of equal length, and a validation part; got "
                             f"{len(self.X_train)}/{len(self.y_train)} train, {len(self.X_valid)}/{len(self.y_valid)} valid")
        if len(self.X_train) < max(K_VALUES):
            raise ValueError(f"the training set has {len(self.X_train)} samples: k up to {max(K_VALUES)} needs "
                             f"at least {max(K_VALUES)}")

    @classmethod
    def from_split(cls, X, y, split, *, n_classes: int, scale: bool = True) -> "KnnProblem":
        """The problem of a split's ``train`` and ``valid`` rows."""
        split = np.asarray(split)
        X, y = np.asarray(X), np.asarray(y)
        return cls(X[split == "train"], y[split == "train"], X[split == "valid"], y[split == "valid"],
                   n_classes=n_classes, scale=scale)

    def fit(self, k: int):
        """The pipeline at ``k`` fitted on the training part, kept for scoring (k larger than the
        training part is refused in one line)."""
        if not 1 <= k <= len(self.X_train):
            raise ValueError(f"k={k} is outside 1..{len(self.X_train)} (the training set's size)")
        if k not in self._fits:
            self._fits[k] = knn_pipeline(k, scale=self.scale).fit(self.X_train, self.y_train)
        return self._fits[k]

    def valid_accuracy(self, k: int) -> float:
        """Validation accuracy at ``k`` (the fitness), from a fit of its own: every choice pays for
        its fits, so their times compare."""
        if not 1 <= k <= len(self.X_train):
            raise ValueError(f"k={k} is outside 1..{len(self.X_train)} (the training set's size)")
        pipeline = knn_pipeline(k, scale=self.scale).fit(self.X_train, self.y_train)
        return float(np.mean(pipeline.predict(self.X_valid) == self.y_valid))


@dataclass
class KChoice:
    """A choice of k and what it cost.

    Attributes
    ----------
    method : str
        ``"plain"`` or ``"GA"``.
    k : int
        The chosen k.
    valid_accuracy : float
        Its validation accuracy (0–1).
    evaluations : int
        Fitness evaluations made (the GA's individuals whose fitness was computed, initial
        population included; 15 for the plain choice).
    distinct_k : int
        Different k fitted (memoised evaluations cost no fit).
    seconds : float
        Wall time of the choice (fits included).
    settings : GASettings, optional
        The GA's settings; ``seed`` its seed.
    history : pd.DataFrame
        Plain: ``k``, ``valid_accuracy``. GA: per generation ``generation``, ``best``,
        ``mean`` (fitness of the population), ``best_k``, ``evaluations``, ``distinct_k``.
    """

    method: str
    k: int
    valid_accuracy: float
    evaluations: int
    distinct_k: int
    seconds: float
    settings: "GASettings | None" = None
    seed: int | None = None
    history: pd.DataFrame | None = None

    @property
    def label(self) -> str:
        if self.settings is None:
            return "plain KNN (k = 1..15 enumerated)"
        return f"GA KNN (population {self.settings.population} × {self.settings.generations} generations)"


def _best(accuracies: dict[int, float]) -> int:
    """The k of the highest accuracy, the smallest k on a tie."""
    return min(accuracies, key=lambda k: (-accuracies[k], k))


def plain_knn(problem: KnnProblem) -> KChoice:
    """Fit every k of 1..15, keep the best on validation (smallest k on a tie)."""
    started = time.perf_counter()
    accuracies = {k: problem.valid_accuracy(k) for k in K_VALUES}
    k = _best(accuracies)
    history = pd.DataFrame({"k": list(accuracies), "valid_accuracy": list(accuracies.values())})
    return KChoice("plain", k, accuracies[k], evaluations=len(K_VALUES), distinct_k=len(K_VALUES),
                   seconds=time.perf_counter() - started, history=history)


def accuracy_by_k(problem: KnnProblem, X_test=None, y_test=None) -> pd.DataFrame:
    """Validation (and test, when given: for the figure only, never to choose) accuracy of every k."""
    rows = []
    for k in K_VALUES:
        row = {"k": k, "valid_accuracy": problem.valid_accuracy(k)}
        if X_test is not None:
            row["test_accuracy"] = float(np.mean(problem.fit(k).predict(np.asarray(X_test, float)) == np.asarray(y_test)))
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the genetic algorithm

@dataclass(frozen=True)
class GASettings:
    """Every setting of the GA that chooses k (the source study's by default).

    Attributes
    ----------
    population : int
        Individuals per generation, 3..15. The first generation holds distinct k drawn
        without replacement, which is why the population cannot exceed the 15 values of k.
    generations : int
        Generations after the first (the run always makes all of them: the source's
        "maximum generations" with no other stopping rule).
    crossover_probability : float
        Chance that a pair of selected parents is recombined (``deap.tools.cxOnePoint``).
    mutation_probability : float
        Chance that each **bit** of each offspring flips (``deap.tools.mutFlipBit``'s
        ``indpb``): an offspring changes with probability 1 − 0.9⁴ ≈ 34 %.
    bits : int
        Chromosome length: the 4-bit binary code of k, most significant bit first. The code
        *is* k (0001 = 1 … 1111 = 15); the spare code 0000 decodes to no k: such an
        individual is infeasible, its fitness 0 (no fit made), so roulette never picks it.
    selection, crossover, mutation, elitism : str
        The ``deap.tools`` operators: roulette-wheel selection, one-point crossover,
        bit-flip mutation, and a ``HallOfFame`` whose members (the best 1 individual when the
        population is odd, 2 when even: :attr:`elites`) pass unchanged to the next generation.
    """

    population: int = 10
    generations: int = 20
    crossover_probability: float = 0.8
    mutation_probability: float = 0.1
    bits: int = 4
    selection: str = "selRoulette"
    crossover: str = "cxOnePoint"
    mutation: str = "mutFlipBit"
    elitism: str = "HallOfFame"

    def __post_init__(self):
        from deap import tools

        if not 3 <= self.population <= len(K_VALUES):
            raise ValueError(f"population {self.population} is outside 3..{len(K_VALUES)}: the first generation "
                             f"holds distinct values of k, and there are {len(K_VALUES)}")
        problems = [f"{name}={getattr(self, name)!r}" for name, ok in {
            "generations": self.generations >= 1,
            "crossover_probability": 0 <= self.crossover_probability <= 1,
            "mutation_probability": 0 <= self.mutation_probability <= 1,
            "bits": 2 ** self.bits - 1 == max(K_VALUES)}.items() if not ok]
        problems += [f"{name}={getattr(self, name)!r} (not in deap.tools)" for name in
                     ("selection", "crossover", "mutation", "elitism") if not hasattr(tools, getattr(self, name))]
        if problems:
            raise ValueError(f"invalid GA settings {', '.join(problems)}")

    @property
    def elites(self) -> int:
        """Individuals copied unchanged into the next generation: 1 (odd population) or 2 (even),
        so that the offspring pair up for crossover."""
        return 1 if self.population % 2 else 2

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def encode(k: int, bits: int = 4) -> list[int]:
    """The chromosome of ``k``: its binary code, most significant bit first."""
    return [int(b) for b in format(int(k), f"0{bits}b")]


def decode(chromosome) -> int | None:
    """The k of a chromosome; None for the spare code 0000."""
    value = int("".join(str(int(b)) for b in chromosome), 2)
    return value or None


@contextlib.contextmanager
def _seeded(seed: int):
    """DEAP's operators draw from the ``random`` module: seed it for one run, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _deap_types():
    from deap import base, creator

    if not hasattr(creator, "GenrestudyKFitness"):
        creator.create("GenrestudyKFitness", base.Fitness, weights=(1.0,))
        creator.create("GenrestudyKChromosome", list, fitness=creator.GenrestudyKFitness)
    return creator.GenrestudyKChromosome


def _toolbox(settings: GASettings):
    from deap import base, tools

    toolbox = base.Toolbox()
    toolbox.register("select", getattr(tools, settings.selection))
    toolbox.register("mate", getattr(tools, settings.crossover))
    toolbox.register("mutate", getattr(tools, settings.mutation), indpb=settings.mutation_probability)
    return toolbox


def _vary(offspring: list, toolbox, settings: GASettings) -> None:
    """Crossover of consecutive pairs, then bit-flip mutation; a changed individual loses its fitness."""
    def changed(individual, before: list) -> None:
        if list(individual) != before and individual.fitness.valid:
            del individual.fitness.values

    for a, b in zip(offspring[::2], offspring[1::2]):
        if random.random() < settings.crossover_probability:
            before = (list(a), list(b))
            toolbox.mate(a, b)
            changed(a, before[0])
            changed(b, before[1])
    for individual in offspring:
        before = list(individual)
        toolbox.mutate(individual)
        changed(individual, before)


def ga_knn(problem: KnnProblem, settings: GASettings = GASettings(), *, seed: int = 0) -> KChoice:
    """Choose k with a genetic algorithm on validation accuracy (see :class:`GASettings`).

    Each generation: the :attr:`GASettings.elites` best individuals found so far (a DEAP
    ``HallOfFame``) pass unchanged; the rest are drawn by roulette wheel from the current
    generation, paired for one-point crossover and mutated bit by bit. Fitness is memoised
    per k, so an evaluation of a k already fitted costs no fit. The chosen k is the best of
    every k evaluated (the smallest on a tie, as the plain choice).

    Examples
    --------
    >>> choice = ga_knn(problem, GASettings(population=5, generations=10), seed=0)   # doctest: +SKIP
    >>> choice.k in K_VALUES and choice.distinct_k <= min(choice.evaluations, 15)    # doctest: +SKIP
    True
    """
    from deap import tools

    chromosome, toolbox = _deap_types(), _toolbox(settings)
    accuracies: dict[int, float] = {}
    counts = {"evaluations": 0}

    def evaluate(individual) -> None:
        k = decode(individual)
        counts["evaluations"] += 1
        if k is not None and k not in accuracies:
            accuracies[k] = problem.valid_accuracy(k)
        individual.fitness.values = (0.0 if k is None else accuracies[k],)

    def record(generation: int, population: list) -> dict:
        values = [ind.fitness.values[0] for ind in population]
        return {"generation": generation, "best": max(values), "mean": float(np.mean(values)),
                "best_k": _best(accuracies), "evaluations": counts["evaluations"], "distinct_k": len(accuracies)}

    started = time.perf_counter()
    with _seeded(seed):
        population = [chromosome(encode(k, settings.bits)) for k in random.sample(K_VALUES, settings.population)]
        for individual in population:
            evaluate(individual)
        elite = getattr(tools, settings.elitism)(settings.elites)
        elite.update(population)
        history = [record(0, population)]
        for generation in range(1, settings.generations + 1):
            n_offspring = settings.population - settings.elites
            chosen = toolbox.select(population, n_offspring)
            # roulette picks nothing when every fitness is 0: then every individual is as good
            chosen += random.choices(population, k=n_offspring - len(chosen))
            offspring = [toolbox.clone(individual) for individual in chosen]
            _vary(offspring, toolbox, settings)
            for individual in offspring:
                if not individual.fitness.valid:
                    evaluate(individual)
            population = [toolbox.clone(individual) for individual in elite] + offspring
            elite.update(population)
            history.append(record(generation, population))
    k = _best(accuracies)
    return KChoice("GA", k, accuracies[k], evaluations=counts["evaluations"], distinct_k=len(accuracies),
                   seconds=time.perf_counter() - started, settings=settings, seed=int(seed),
                   history=pd.DataFrame(history))


def ga_grid(populations=(5, 10, 15), generations=(10, 20, 30), **overrides) -> list[GASettings]:
    """The source's runs: every population × maximum generations (9 by default)."""
    return [GASettings(population=p, generations=g, **overrides) for p in populations for g in generations]


def ga_runs(problem: KnnProblem, settings: list[GASettings], seeds, *, progress: bool = True) -> list[KChoice]:
    """One GA run per setting and seed."""
    from tqdm.auto import tqdm

    jobs = [(s, int(seed)) for s in settings for seed in seeds]
    runs = [ga_knn(problem, s, seed=seed) for s, seed in tqdm(jobs, desc="GA runs", disable=not progress)]
    if progress:
        print(f"{len(runs)} GA runs in {sum(r.seconds for r in runs):.1f} s; k chosen: "
              f"{sorted(pd.Series([r.k for r in runs]).value_counts().to_dict().items())} (k: runs)")
    return runs


# ---------------------------------------------------------------- scoring the choices

def classify_seconds_per_sample(pipeline, X: np.ndarray, *, n: int = 50) -> float:
    """Seconds to classify one sample at a time (the source's application classified one file at a time)."""
    X = np.asarray(X, float)[:n]
    started = time.perf_counter()
    for row in X:
        pipeline.predict(row[None, :])
    return (time.perf_counter() - started) / max(len(X), 1)


def comparison_table(choices: list[KChoice], problem: KnnProblem, X_test, y_test, test_tracks, *,
                     n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per choice: its k, cost, validation accuracy and test accuracy (percent) with a
    bootstrap interval (:func:`genrestudy.table7.score_with_ci`, resampling test tracks), the
    track-level accuracy (a track's segments' mean vote shares), and the time to classify one sample.
    """
    from ..table7 import score_with_ci

    scored: dict[int, dict] = {}
    for k in sorted({c.k for c in choices}):
        pipeline = problem.fit(k)
        proba = class_probabilities(pipeline, X_test, problem.n_classes)
        levels = {r["level"]: r for r in score_with_ci(proba, y_test, test_tracks, n_resamples=n_resamples, seed=seed)}
        scored[k] = {"test_accuracy": levels["segment"]["accuracy"],
                     "test_ci_low": levels["segment"]["accuracy_ci_low"],
                     "test_ci_high": levels["segment"]["accuracy_ci_high"],
                     "track_accuracy": levels["track"]["accuracy"],
                     "classify_s_per_sample": classify_seconds_per_sample(pipeline, X_test)}
    return pd.DataFrame([{"method": c.label, "seed": c.seed, "k": c.k, "fitness_evaluations": c.evaluations,
                          "distinct_k_fitted": c.distinct_k, "valid_accuracy": 100 * c.valid_accuracy, **scored[c.k],
                          "choice_seconds": c.seconds} for c in choices])


def summarise_runs(per_run: pd.DataFrame) -> pd.DataFrame:
    """The comparison: per method, over its seeds, the k chosen, the mean cost and accuracies
    (the interval is the widest of the runs'), then the source study's rows, labelled by ``source``."""
    ours = (per_run.groupby("method", sort=False)
            .agg(runs=("k", "size"), k_chosen=("k", lambda ks: ", ".join(str(k) for k in sorted(set(ks)))),
                 fitness_evaluations=("fitness_evaluations", "mean"), distinct_k_fitted=("distinct_k_fitted", "mean"),
                 valid_accuracy=("valid_accuracy", "mean"), test_accuracy=("test_accuracy", "mean"),
                 test_ci_low=("test_ci_low", "min"), test_ci_high=("test_ci_high", "max"),
                 track_accuracy=("track_accuracy", "mean"), classify_s_per_sample=("classify_s_per_sample", "mean"),
                 choice_seconds=("choice_seconds", "mean"))
            .reset_index().assign(source="this study (measured)"))
    source = pd.DataFrame([{**row, "k_chosen": str(row["k"]), "source": SOURCE_LABEL} for row in SOURCE_ROWS])
    return pd.concat([ours, source.drop(columns="k")], ignore_index=True)


def histories_by_setting(runs: list[KChoice]) -> dict[str, list[pd.DataFrame]]:
    """The GA runs' per-generation histories, grouped by setting (for :func:`genrestudy.plots.plot_ga_fitness`)."""
    out: dict[str, list[pd.DataFrame]] = {}
    for run in runs:
        label = f"population {run.settings.population} × {run.settings.generations} generations"
        out.setdefault(label, []).append(run.history)
    return out


def consensus_k(runs: list[KChoice]) -> int:
    """The k chosen by most runs (the smallest on a tie)."""
    counts = pd.Series([r.k for r in runs]).value_counts()
    return int(min(counts.index[counts == counts.max()]))


def scaling_effect(problem: KnnProblem, X_test, y_test) -> pd.DataFrame:
    """Plain KNN with and without standardisation: the k chosen, validation and test accuracy (percent).

    Unscaled, Euclidean distance is the rolloff's and centroid's (thousands of hertz), and
    the flatness (0–1) and skewness count for nothing.
    """
    rows = []
    for scale in (True, False):
        other = KnnProblem(problem.X_train, problem.y_train, problem.X_valid, problem.y_valid,
                           n_classes=problem.n_classes, scale=scale)
        choice = plain_knn(other)
        test = float(np.mean(other.fit(choice.k).predict(np.asarray(X_test, float)) == np.asarray(y_test)))
        rows.append({"features": "standardised" if scale else "raw (unscaled)", "k": choice.k,
                     "valid_accuracy": 100 * choice.valid_accuracy, "test_accuracy": 100 * test})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- model files

MODEL_KIND = modelfile.register_kind("knn", required=("k", "spectral_params", "feature_names", "scaled", "n_train"))
FEATURES_ENTRY, LABELS_ENTRY, SCALER_ENTRY = "train_features.npy", "train_labels.npy", "scaler.json"
DEFAULT_MODEL_NAME = "spectral_knn.zip"


def save_knn_model(path, pipeline, X_train, y_train, *, classes, image_params, spectral_params,
                   synthetic: bool, feature_names=spectral.FEATURE_NAMES, selection: str = "") -> Path:
    """Save a fitted KNN pipeline as a ``knn`` model file (format: :mod:`genrestudy.modelfile`).

    The zip holds ``genrestudy.json`` (classes, image and spectral parameters, k, feature
    names, and the SHA-256 of every other entry), the training features and labels (``.npy``)
    and the scaler's statistics (``scaler.json``; none when unscaled): all a KNN is, and
    nothing executable.

    Parameters
    ----------
    path : path
        The file to write (e.g. ``data/models/spectral_knn.zip``); a demo-data model never
        replaces a real-data one (:func:`genrestudy.modelfile.model_destination`).
    pipeline : sklearn.pipeline.Pipeline
        From :func:`knn_pipeline`, fitted on ``X_train``/``y_train``.
    classes : list of str
        Genre of each label code.
    image_params : ImageParams or dict
        Segmentation (and sample rate) of the training audio.
    spectral_params : SpectralParams
        How the features were computed.
    selection : str
        How k was chosen (recorded in the header).
    """
    from ..images import ImageParams

    X, y = np.asarray(X_train, dtype=np.float64), np.asarray(y_train, dtype=np.int64)
    knn, scaler = pipeline.named_steps["knn"], pipeline.named_steps["scale"]
    if X.ndim != 2 or X.shape != (knn.n_samples_fit_, len(feature_names)) or len(y) != len(X):
        raise ValueError(f"expected the pipeline's {knn.n_samples_fit_} training rows × {len(feature_names)} "
                         f"features and as many labels, got {X.shape} and {len(y)} labels")
    if y.min() < 0 or y.max() >= len(classes):
        raise ValueError(f"labels must be codes into the {len(classes)} classes, got {y.min()}..{y.max()}")
    params = asdict(image_params) if isinstance(image_params, ImageParams) else asdict(ImageParams(**image_params))
    header = modelfile.model_header(
        MODEL_KIND, classes=list(classes), image_params=params, synthetic=synthetic, k=int(knn.n_neighbors),
        spectral_params=asdict(spectral_params), feature_names=list(feature_names), scaled=scaler != "passthrough",
        n_train=int(len(X)), selection=selection, metric="euclidean", voting="uniform")
    entries = {FEATURES_ENTRY: _npy_bytes(X), LABELS_ENTRY: _npy_bytes(y)}
    if header["scaled"]:
        entries[SCALER_ENTRY] = json.dumps({"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
                                            "var": scaler.var_.tolist()}).encode()
    path = modelfile.model_destination(path, synthetic=synthetic)
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache.atomic_path(path) as tmp:
        modelfile.write_model_archive(tmp, header, entries)  # the header records each entry's SHA-256
    return path


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass
class KnnModel(predict.GenreModel):
    """A saved spectral-feature KNN: a clip's signal in, its segments' class vote shares out."""

    pipeline: object = None

    @property
    def spectral_params(self) -> spectral.SpectralParams:
        return spectral.SpectralParams(**self.header["spectral_params"])

    def describe(self) -> str:
        data = "the SYNTHETIC demo data (its genres mean nothing for real music)" if self.synthetic else "real audio"
        return (f"knn model (k={self.header['k']}, {self.header['n_train']} training rows of "
                f"{self.spectral_params.level}-level spectral features, {len(self.classes)} genres) "
                f"trained on {data}: {self.path}")

    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        raise TypeError("a KNN model classifies the spectral features of audio, not images: use clip_probabilities")

    def feature_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` vote shares of ``(n, n_features)`` spectral feature vectors."""
        return class_probabilities(self.pipeline, vectors, len(self.classes))

    def clip_probabilities(self, clip: np.ndarray) -> np.ndarray:
        """The spectral features of the clip's whole segments, computed as in training, classified."""
        from ..segments import segment_clip

        params = self.image_params
        segments = segment_clip(np.asarray(clip, dtype=np.float32), **asdict(params.segment_params))
        vectors = spectral.spectral_shape(segments, sample_rate=params.sample_rate,
                                          **self.spectral_params.extractor_kwargs())
        return self.feature_probabilities(vectors)


def load_knn_model(path, header: dict | None = None, *, weights=None) -> KnnModel:
    """Read a ``knn`` model file (``weights`` is unused: a KNN has no backbone).

    Raises
    ------
    genrestudy.modelfile.ModelFileError
        Not a genrestudy model, another kind, or a damaged one (one line).
    """
    path = Path(path).expanduser()
    header = header or modelfile.read_header(path)
    if header["kind"] != MODEL_KIND:
        raise modelfile.ModelFileError(f"{path} is a {header['kind']} model, not {MODEL_KIND}")
    modelfile.check_payload(path, header)  # a damaged or altered entry is refused before it is parsed
    entry = FEATURES_ENTRY
    try:
        with zipfile.ZipFile(path) as archive:
            X = np.load(io.BytesIO(archive.read(FEATURES_ENTRY)), allow_pickle=False)
            entry = LABELS_ENTRY
            y = np.load(io.BytesIO(archive.read(LABELS_ENTRY)), allow_pickle=False)
            entry = SCALER_ENTRY
            scaler = json.loads(archive.read(SCALER_ENTRY)) if header["scaled"] else None
        pipeline = _rebuilt_pipeline(X, y, header, scaler)
    except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise modelfile.ModelFileError(f"not a genrestudy model: {path} (no readable {entry}: {reason})") from None
    return KnnModel(path=path, header=header, pipeline=pipeline)


def _rebuilt_pipeline(X: np.ndarray, y: np.ndarray, header: dict, scaler: dict | None):
    n_features, k = len(header["feature_names"]), int(header["k"])
    if X.ndim != 2 or X.shape[1] != n_features or y.shape != (len(X),) or not 1 <= k <= len(X):
        raise ValueError(f"{X.shape} features, {y.shape} labels, k={k} for {n_features} features")
    if y.min() < 0 or y.max() >= len(header["classes"]):
        raise ValueError(f"labels {y.min()}..{y.max()} outside the {len(header['classes'])} classes")
    pipeline = knn_pipeline(k, scale=bool(header["scaled"]))
    if scaler is not None:
        step = pipeline.named_steps["scale"]
        step.mean_, step.scale_, step.var_ = (np.asarray(scaler[name], dtype=np.float64) for name in ("mean", "scale", "var"))
        if step.mean_.shape != (n_features,) or step.scale_.shape != (n_features,):
            raise ValueError(f"scaler statistics for {step.mean_.shape} features, expected {n_features}")
        step.n_features_in_, step.n_samples_seen_ = n_features, len(X)
        X_knn = step.transform(X)
    else:
        X_knn = X
    pipeline.named_steps["knn"].fit(X_knn, y)
    return pipeline


predict.register_loader(MODEL_KIND, load_knn_model)


# ---------------------------------------------------------------- Table 7's methods

class _SpectralKNN(Method):
    """KNN on the spectral features of the study's segments, k chosen on the validation part."""

    needs = ("spectral",)
    scale: ClassVar[bool] = True

    def settings(self) -> dict:
        return {"spectral": asdict(spectral.study_params(self.inputs)), "scale": self.scale,
                "k_values": [min(K_VALUES), max(K_VALUES)]}

    def choose(self, problem: KnnProblem) -> KChoice:
        raise NotImplementedError

    def fit(self, train: Part, valid: Part) -> None:
        values = train.data.spectral()
        self.n_classes = len(train.data.classes)
        problem = KnnProblem(values[train.rows], train.labels, values[valid.rows], valid.labels,
                             n_classes=self.n_classes, scale=self.scale)
        choice = self.choose(problem)
        self.pipeline = problem.fit(choice.k)
        self.record = {"training_seconds": choice.seconds, "hyperparameters": {"k": choice.k, "scale": self.scale},
                       "seed": choice.seed, "k": choice.k, "valid_accuracy": choice.valid_accuracy,
                       "fitness_evaluations": choice.evaluations, "distinct_k_fitted": choice.distinct_k}

    def predict_proba(self, test: Part) -> np.ndarray:
        return class_probabilities(self.pipeline, test.data.spectral()[test.rows], self.n_classes)


@register
class PlainKNN(_SpectralKNN):
    key, name = "spectral_knn_plain", "Spectral KNN (plain)"

    def choose(self, problem: KnnProblem) -> KChoice:
        return plain_knn(problem)


@register
class GeneticKNN(_SpectralKNN):
    key, name = "spectral_knn_ga", "Spectral KNN (GA)"
    #: Table 7's GA run: the middle of the source's 9 settings, with the study's first seed
    ga: ClassVar[GASettings] = GASettings(population=10, generations=20)

    def settings(self) -> dict:
        return {**super().settings(), "ga": self.ga.as_dict(), "ga_seed": int(self.inputs.seeds[0])}

    def choose(self, problem: KnnProblem) -> KChoice:
        return ga_knn(problem, self.ga, seed=int(self.inputs.seeds[0]))
