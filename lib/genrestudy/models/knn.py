"""Spectral features → KNN, its k chosen by enumeration (neighbouring study 1 of docs/PAPER.md).

The source study classified the FFT spectrum's six shape features (:mod:`genrestudy.signals.spectral`)
with an unweighted Euclidean KNN and chose k in 1..15 with a genetic algorithm
(:mod:`genrestudy.models.genetic`); it chose on its test set. Here every choice uses the
**validation** split and the test split is scored once: **plain** fits and scores every k of
1..15 on validation (15 fits); the best wins, the smallest k on a tie. KNN runs in a
scikit-learn ``Pipeline`` with standardisation (optional, on by default: the features' scales
differ by four orders of magnitude). The registered Table 7 methods are in
:mod:`genrestudy.methods.knn`, the model file in :mod:`genrestudy.models.knn_model`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..report import evaluation

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
        ``mean`` (fitness of the population), ``best_k``, ``evaluations``, ``distinct_k``,
        ``population_k`` (the generation's k, the elite copies first; None for code 0000).
    """

    method: str
    k: int
    valid_accuracy: float
    evaluations: int
    distinct_k: int
    seconds: float
    settings: object = None  # the genetic.GASettings of a GA run
    seed: int | None = None
    history: pd.DataFrame | None = None

    @property
    def label(self) -> str:
        if self.settings is None:
            return "plain KNN (k = 1..15 enumerated)"
        return f"GA KNN (population {self.settings.population} × {self.settings.generations} generations)"


def best_k(accuracies: dict[int, float]) -> int:
    """The k of the highest accuracy, the smallest k on a tie."""
    return min(accuracies, key=lambda k: (-accuracies[k], k))


def plain_knn(problem: KnnProblem) -> KChoice:
    """Fit every k of 1..15, keep the best on validation (smallest k on a tie)."""
    started = time.perf_counter()
    accuracies = {k: problem.valid_accuracy(k) for k in K_VALUES}
    k = best_k(accuracies)
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
    bootstrap interval (:func:`genrestudy.report.table7.score_with_ci`, resampling test tracks), the
    track-level accuracy (a track's segments' mean vote shares), and the time to classify one sample.
    """

    scored: dict[int, dict] = {}
    for k in sorted({c.k for c in choices}):
        pipeline = problem.fit(k)
        proba = class_probabilities(pipeline, X_test, problem.n_classes)
        levels = {r["level"]: r for r in evaluation.score_with_ci(proba, y_test, test_tracks, n_resamples=n_resamples, seed=seed)}
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
    table = pd.concat([ours, source.drop(columns="k")], ignore_index=True)
    return table.assign(note=table["note"].fillna(""))


def histories_by_setting(runs: list[KChoice]) -> dict[str, list[pd.DataFrame]]:
    """The GA runs' per-generation histories, grouped by setting (for :func:`genrestudy.report.plots.plot_ga_fitness`)."""
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
