"""LightGBM on feature vectors: the hybrid model's second half.

Every configuration of a search trains on the *same* binned data. LightGBM spends a large
part of a naive fit turning the raw ``(n, 2048)`` float matrix into histogram bins; here the
training set is binned once (``lgb.Dataset(...).construct()``), the validation set is binned
with the training set as reference (so both use the same bin edges), and every fit reuses the
two constructed Datasets. Binning parameters (``max_bin``, ``min_data_in_bin``) are therefore
fixed for a whole search; the searched parameters (leaves, depth, ``min_child_samples``,
rates, regularisation, bagging and feature fractions) do not change bins. LightGBM refuses
to change ``min_data_in_leaf`` on a constructed Dataset when it pre-filtered features by that
value, so Datasets are built with ``feature_pre_filter=False``.

Early stopping watches the validation multi-logloss; the validation accuracy at the best
iteration comes from LightGBM's own ``multi_error`` metric recorded during training, so a
fit needs no extra prediction pass to be scored. The multi-logloss is :func:`multi_logloss`'s,
not LightGBM's metric, whose parallel sum changes in the last bits with the thread count.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

#: parameters that decide how features are binned; fixed for every fit on one TrainingData
BINNING_PARAMS = ("max_bin", "min_data_in_bin")

#: the study's LightGBM ``max_bin`` (LightGBM's default is 255; the paper does not say). Every
#: fit of the study bins with it: the searches (notebooks 03, 09) and the hybrid of Table 8
#: (notebook 08). ``bench/tune.py`` measures both binnings on a generated paper-sized problem
#: and prints the speed and validation accuracy the coarser bins cost, in its own run.
STUDY_MAX_BIN = 63

#: LightGBM's levers that change speed (and, for quantized gradients, the fits a little) but
#: not the searched configuration; a :class:`TrainingData` fixes one set of them for every fit
#: on it (its ``training`` field, part of its key). ``bench/tune.py`` measures each one's speed and
#: validation-accuracy cost against the naive search.
TRAINING_LEVERS = {
    "row_wise": {"force_row_wise": True, "force_col_wise": False},
    "quantized": {"use_quantized_grad": True, "num_grad_quant_bins": 4, "quant_train_renew_leaf": True},
}

#: LightGBM's learner as :class:`TrainingData` ``training`` options: ``"cpu"`` (the study's) or ``"gpu"``
#: (OpenCL; not used by default: bench/reports/lightgbm_device.md says why)
DEVICE_OPTIONS = {"cpu": {}, "gpu": {"device_type": "gpu"}}

#: parameters every fit shares (not searched)
FIXED_PARAMS = {
    "objective": "multiclass",
    "verbosity": -1,
    # 2048 dense columns: column-wise histograms; forcing it skips LightGBM's per-fit timing test
    "force_col_wise": True,
    "feature_pre_filter": False,
}


@dataclass(eq=False)
class TrainingData:
    """Train and validation features of one search, binned once per process.

    Attributes
    ----------
    X_train, y_train, X_valid, y_valid : np.ndarray
        Float32 features and integer labels (``0..num_class-1``).
    num_class : int
        Number of classes.
    max_bin, min_data_in_bin : int
        LightGBM binning parameters, fixed for every fit on this data.
    training : dict
        LightGBM training options for every fit on this data (e.g. ``TRAINING_LEVERS["quantized"]``;
        empty: LightGBM's exact gradients, column-wise histograms). Part of the key, so a cached
        search made with other options is never served.
    key : str
        Hash of the arrays, binning parameters and training options; names the binned Datasets
        in the per-process memo, so workers of a cluster bin each data set once.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    num_class: int
    max_bin: int = STUDY_MAX_BIN
    min_data_in_bin: int = 3
    training: dict = field(default_factory=dict)
    key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.X_train = np.ascontiguousarray(self.X_train, dtype=np.float32)
        self.X_valid = np.ascontiguousarray(self.X_valid, dtype=np.float32)
        self.y_train = np.asarray(self.y_train, dtype=np.int64)
        self.y_valid = np.asarray(self.y_valid, dtype=np.int64)
        if self.X_train.ndim != 2 or self.X_valid.ndim != 2 or self.X_train.shape[1] != self.X_valid.shape[1]:
            raise ValueError(f"expected 2-D train and validation features with the same width, got "
                             f"{self.X_train.shape} and {self.X_valid.shape}")
        if len(self.X_train) != len(self.y_train) or len(self.X_valid) != len(self.y_valid):
            raise ValueError(f"features and labels differ in length: train {len(self.X_train)} vs "
                             f"{len(self.y_train)}, valid {len(self.X_valid)} vs {len(self.y_valid)}")
        if len(self.X_train) == 0 or len(self.X_valid) == 0:
            raise ValueError(f"need training and validation rows, got {len(self.X_train)} and {len(self.X_valid)}")
        for name, y in (("train", self.y_train), ("valid", self.y_valid)):
            if y.min() < 0 or y.max() >= self.num_class:
                raise ValueError(f"{name} labels must lie in 0..{self.num_class - 1}, got {y.min()}..{y.max()}")
        digest = hashlib.sha256()
        for array in (self.X_train, self.y_train, self.X_valid, self.y_valid):
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
        digest.update(f"{self.num_class}|{self.max_bin}|{self.min_data_in_bin}".encode())
        if self.training:  # keys of data without options stay as they were
            clash = sorted(set(self.training) & {*BINNING_PARAMS, "num_class", "seed", "num_threads", "objective"})
            if clash:
                raise ValueError(f"training options may not set {clash}; they are fixed elsewhere")
            digest.update(json.dumps(self.training, sort_keys=True).encode())
        self.key = digest.hexdigest()[:16]

    @property
    def binning(self) -> dict:
        return {"max_bin": self.max_bin, "min_data_in_bin": self.min_data_in_bin}

    def datasets(self) -> tuple[lgb.Dataset, lgb.Dataset]:
        """The constructed (train, valid) LightGBM Datasets, binned on first use in this process."""
        return _binned(self)

    def row_subset(self, n_rows: int, *, seed: int = 0) -> np.ndarray:
        """Sorted indices of ``n_rows`` training rows, stratified by class (same seed, same rows)."""
        n = len(self.y_train)
        if not 0 < n_rows <= n:
            raise ValueError(f"n_rows must be in 1..{n} (the training rows), got {n_rows}")
        if n_rows == n:
            return np.arange(n)
        counts = np.bincount(self.y_train, minlength=self.num_class)
        stratify = self.y_train if n_rows >= self.num_class and counts[counts > 0].min() >= 2 else None
        idx, _ = train_test_split(np.arange(n), train_size=n_rows, stratify=stratify, random_state=seed)
        return np.sort(idx)


# A few binned data sets per process: a search uses one; keeping two lets a notebook switch back.
_BINNED: OrderedDict[str, tuple[lgb.Dataset, lgb.Dataset]] = OrderedDict()
_BINNED_LOCK = threading.Lock()
_BINNED_KEEP = 2


def _binned(data: TrainingData) -> tuple[lgb.Dataset, lgb.Dataset]:
    with _BINNED_LOCK:
        if data.key in _BINNED:
            _BINNED.move_to_end(data.key)
            return _BINNED[data.key]
        params = {**FIXED_PARAMS, **data.training, **data.binning, "num_class": data.num_class, "num_threads": 1}
        # free_raw_data=True on purpose: a later parameter that would change the bins then
        # raises instead of LightGBM silently re-binning the shared Dataset
        train = lgb.Dataset(data.X_train, label=data.y_train, params=params, free_raw_data=True).construct()
        valid = lgb.Dataset(data.X_valid, label=data.y_valid, reference=train, params=params,
                            free_raw_data=True).construct()
        _BINNED[data.key] = (train, valid)
        while len(_BINNED) > _BINNED_KEEP:
            _BINNED.popitem(last=False)
        return train, valid


def training_data(features: np.ndarray, labels: np.ndarray, split: pd.Series | np.ndarray, *,
                  num_class: int | None = None, max_bin: int = STUDY_MAX_BIN,
                  min_data_in_bin: int = 3) -> TrainingData:
    """Cut features and integer labels into the train and validation parts of ``split``.

    Parameters
    ----------
    features : np.ndarray
        ``(n, d)`` feature rows.
    labels : np.ndarray
        ``(n,)`` integer class codes.
    split : pd.Series or np.ndarray
        ``"train"``/``"valid"``/``"test"`` per row (other values, e.g. ``"unlisted"``, are left out).
        The test rows are not touched here.
    num_class : int, optional
        Number of classes (default: ``labels.max() + 1``).
    max_bin, min_data_in_bin : int
        LightGBM binning, fixed for every fit on the result.
    """
    split = np.asarray(split)
    if len(split) != len(features) or len(labels) != len(features):
        raise ValueError(f"features ({len(features)} rows), labels ({len(labels)}) and split ({len(split)}) "
                         "must be aligned")
    train, valid = split == "train", split == "valid"
    if not train.any() or not valid.any():
        raise ValueError(f"the split needs 'train' and 'valid' rows; got values {sorted(set(split.tolist()))}")
    labels = np.asarray(labels)
    num_class = int(num_class if num_class is not None else labels.max() + 1)
    absent = sorted(set(range(num_class)) - set(labels[train].tolist()))
    if absent:
        log.warning("classes %s have no training rows under this split; the model cannot predict them", absent)
    X = np.asarray(features)
    return TrainingData(X[train], labels[train], X[valid], labels[valid], num_class=num_class,
                        max_bin=max_bin, min_data_in_bin=min_data_in_bin)


def lightgbm_params(params: dict, *, num_class: int, seed: int = 0, num_threads: int = 1,
                    training: dict | None = None) -> dict:
    """Searched ``params`` plus the fixed ones and the ``training`` options, in LightGBM's native names.

    ``bagging_freq`` defaults to 1: LightGBM ignores ``bagging_fraction`` unless ``bagging_freq > 0``.
    Binning parameters are rejected (they are fixed by :class:`TrainingData`).
    """
    clash = sorted(set(params) & set(BINNING_PARAMS))
    if clash:
        raise ValueError(f"{clash} change how features are binned; set them on TrainingData, not per configuration")
    out = {**FIXED_PARAMS, **(training or {}), "bagging_freq": 1, **params, "num_class": num_class, "seed": seed,
           "num_threads": num_threads, "metric": ["multi_error"]}
    for key in ("num_leaves", "max_depth", "min_child_samples", "bagging_freq"):
        if key in out:
            out[key] = int(out[key])
    return out


@dataclass(frozen=True)
class BoostingState:
    """Where a fit stopped, so that a larger round budget continues it instead of starting again.

    Successive halving on boosting rounds trains the survivors of a rung for more rounds; with
    this state the next rung trains only the extra rounds, on top of the trees already grown
    (their raw scores become the LightGBM ``init_score`` of the continued fit).

    Without bagging or feature sampling a continued fit equals a fresh fit of the full length
    (tested). With them, LightGBM's random draws cannot be resumed: the continued segment draws
    its bags and feature subsets from a seed derived from ``(seed, rounds)``, so it is another
    sample of the same configuration, not a replay of the first rounds' draws.

    Attributes
    ----------
    params : dict
        The searched parameters of the fit (a continuation must use the same).
    seed : int
        The fit's seed.
    models : tuple of bytes
        zlib-compressed LightGBM model text of each trained segment, in order.
    logloss, error : tuple of float
        Validation multi-logloss and multi-error after each round so far.
    stopped : bool
        Early stopping fired: more rounds would not change the result.
    """

    params: dict
    seed: int
    models: tuple[bytes, ...]
    logloss: tuple[float, ...]
    error: tuple[float, ...]
    stopped: bool

    @property
    def rounds(self) -> int:
        return len(self.logloss)

    def raw_scores(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """``(n, num_class)`` raw scores of the trees grown so far on each array (the next
        segment's init scores); each segment's model is parsed once for all the arrays."""
        totals = [0.0] * len(arrays)
        for blob in self.models:
            booster = lgb.Booster(model_str=zlib.decompress(blob).decode())
            totals = [t + booster.predict(X, raw_score=True, num_threads=1) for t, X in zip(totals, arrays)]
        return [np.asarray(t, dtype=np.float64).reshape(len(X), -1) for t, X in zip(totals, arrays)]


@dataclass
class FitResult:
    """One trained configuration, scored on the validation split.

    Attributes
    ----------
    params : dict
        The searched parameters as given.
    num_boost_round : int
        Maximum number of boosting rounds allowed.
    n_rows : int
        Training rows used (all of them unless a halving rung subsampled).
    best_iteration : int
        Round with the lowest validation multi-logloss (early stopping).
    valid_accuracy, valid_logloss : float
        Validation accuracy and multi-logloss at ``best_iteration``.
    fit_seconds : float
        Wall time of the fit (the shared binning excluded).
    start_round : int
        Rounds taken over from a previous fit (``resume``); 0 for a fit from scratch.
    curve : pd.DataFrame or None
        Per-round ``train_logloss``/``valid_logloss``/``valid_accuracy`` when recorded.
    booster : lgb.Booster or None
        The model, when kept.
    state : BoostingState or None
        What a longer fit needs to continue this one, when kept.
    """

    params: dict
    num_boost_round: int
    n_rows: int
    best_iteration: int
    valid_accuracy: float
    valid_logloss: float
    fit_seconds: float
    start_round: int = 0
    curve: pd.DataFrame | None = None
    booster: lgb.Booster | None = None
    state: BoostingState | None = None


def multi_logloss(preds: np.ndarray, dataset: lgb.Dataset) -> tuple[str, float, bool]:
    """LightGBM's ``multi_logloss`` as a ``feval``, summed in a fixed order: the same trees, the same value
    on any number of threads (LightGBM's own metric differs by about 1e-15)."""
    labels = np.asarray(dataset.get_label(), dtype=np.int64)
    proba = np.asarray(preds, dtype=np.float64).reshape(len(labels), -1, order="F" if np.ndim(preds) == 1 else "C")
    return "multi_logloss", float(np.mean(-np.log(np.maximum(proba[np.arange(len(labels)), labels], 1e-15)))), False


def segment_seed(seed: int, start_round: int) -> int:
    """LightGBM seed of a fit segment starting after ``start_round`` rounds (``seed`` itself at 0)."""
    if start_round == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(start_round)]).generate_state(1)[0] % (2 ** 31 - 1))


def _best_round(logloss: list[float], early_stopping_rounds: int | None) -> int:
    # LightGBM's early stopping: the first round with the lowest validation logloss; without it, the last round
    return int(np.argmin(logloss)) + 1 if early_stopping_rounds else len(logloss)


def _check_fit(num_boost_round: int, params: dict, seed: int, resume: BoostingState | None, *,
               subset: bool) -> None:
    if num_boost_round < 1:
        raise ValueError(f"num_boost_round must be at least 1, got {num_boost_round}")
    if resume is not None:
        if resume.params != dict(params) or resume.seed != seed:
            raise ValueError("resume belongs to another configuration or seed: a fit continues only itself")
        if subset:
            raise ValueError("a continued fit uses all training rows and keeps neither a curve nor a model; "
                             "refit from scratch for those")


def _continued_datasets(data: TrainingData, resume: BoostingState, train: lgb.Dataset,
                        valid: lgb.Dataset) -> tuple[lgb.Dataset, lgb.Dataset]:
    """The datasets of a continued fit: the trees grown so far enter as init scores; the subsets
    share the bins of the originals."""
    train_scores, valid_scores = resume.raw_scores(data.X_train, data.X_valid)
    train = train.subset(np.arange(len(data.y_train))).construct()
    train.set_init_score(train_scores.ravel(order="F"))
    valid = valid.subset(np.arange(len(data.y_valid))).construct()
    valid.set_init_score(valid_scores.ravel(order="F"))
    return train, valid


def fit_lightgbm(data: TrainingData, params: dict, *, num_boost_round: int, early_stopping_rounds: int | None = 50,
                 n_rows: int | None = None, seed: int = 0, num_threads: int = 1, record_curve: bool = False,
                 keep_model: bool = False, resume: BoostingState | None = None,
                 keep_state: bool = False) -> FitResult:
    """Train one configuration on the pre-binned data, early-stopped on the validation split.

    Parameters
    ----------
    data : TrainingData
        Train/validation features (binned once per process).
    params : dict
        Searched LightGBM parameters (e.g. one point of :data:`genrestudy.models.search.TABLE2_GRID`).
    num_boost_round : int
        Maximum number of boosting rounds (in all, ``resume``'s rounds included).
    early_stopping_rounds : int or None
        Stop after this many rounds without a lower validation multi-logloss (None: never).
    n_rows : int, optional
        Train on a class-stratified subset of this many training rows (successive halving's
        ``samples`` resource); the subset reuses the shared bins.
    seed : int
        LightGBM seed (bagging, feature fraction) and the row subset's seed.
    num_threads : int
        LightGBM threads; 1 when several configurations run side by side.
    record_curve : bool
        Also record the training multi-logloss per round (Fig 6).
    keep_model : bool
        Return the Booster (otherwise dropped to keep memory flat over thousands of fits).
    resume : BoostingState, optional
        Continue this earlier fit of the same parameters and seed up to ``num_boost_round``
        rounds, training only the rounds it lacks (see :class:`BoostingState`). A fit that
        early-stopped, or already has the rounds, is scored from its history without training.
    keep_state : bool
        Return the :class:`BoostingState` that a longer fit can continue.
    """
    _check_fit(num_boost_round, params, seed, resume, subset=n_rows is not None or record_curve or keep_model)
    start = time.perf_counter()
    train, valid = data.datasets()
    used_rows = len(data.y_train)
    if n_rows is not None and n_rows < used_rows:
        train = train.subset(data.row_subset(n_rows, seed=seed)).construct()
        used_rows = n_rows
    done = 0 if resume is None else resume.rounds
    logloss = [] if resume is None else list(resume.logloss)
    error = [] if resume is None else list(resume.error)
    models = () if resume is None else resume.models
    stopped = False if resume is None else resume.stopped
    train_logloss: list[float] = []
    booster = None
    if not stopped and done < num_boost_round:
        if resume is not None:
            train, valid = _continued_datasets(data, resume, train, valid)
        full = lightgbm_params(params, num_class=data.num_class, seed=segment_seed(seed, done), num_threads=num_threads,
                               training=data.training)
        booster = lgb.Booster(full, train)
        booster.add_valid(valid, "valid")
        best_logloss, best_round = (min(logloss), int(np.argmin(logloss)) + 1) if logloss else (np.inf, 0)
        for round_ in range(done + 1, num_boost_round + 1):
            booster.update()
            scores = {name: value for _, name, value, _ in booster.eval_valid(feval=multi_logloss)}
            logloss.append(float(scores["multi_logloss"]))
            error.append(float(scores["multi_error"]))
            if record_curve:
                train_scores = booster.eval_train(feval=multi_logloss)
                train_logloss.append(float({n: v for _, n, v, _ in train_scores}["multi_logloss"]))
            if logloss[-1] < best_logloss:
                best_logloss, best_round = logloss[-1], round_
            elif early_stopping_rounds and round_ - best_round >= early_stopping_rounds:
                stopped = True
                break
        if keep_state:
            models = models + (zlib.compress(booster.model_to_string().encode(), 1),)
    state = None
    if keep_state:
        state = BoostingState(params=dict(params), seed=seed, models=models, logloss=tuple(logloss),
                              error=tuple(error), stopped=stopped)
    # a history longer than the budget (a shorter rung after a longer one) is scored at the budget
    logloss, error = logloss[:num_boost_round], error[:num_boost_round]
    best = _best_round(logloss, early_stopping_rounds)
    curve = None
    if record_curve:
        curve = pd.DataFrame({"iteration": np.arange(1, len(logloss) + 1), "train_logloss": train_logloss,
                              "valid_logloss": logloss, "valid_accuracy": 1.0 - np.asarray(error)})
    if keep_model and booster is not None:
        booster.best_iteration = best
    return FitResult(params=dict(params), num_boost_round=num_boost_round, n_rows=used_rows, best_iteration=best,
                     valid_accuracy=float(1.0 - error[best - 1]), valid_logloss=float(logloss[best - 1]),
                     fit_seconds=time.perf_counter() - start, start_round=done, curve=curve,
                     booster=booster if keep_model else None, state=state)


def predict_proba(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n, num_class)`` at the booster's best iteration."""
    return booster.predict(np.asarray(X, dtype=np.float32), num_iteration=booster.best_iteration or None)
