"""The model file of a fitted spectral KNN (kind ``"knn"``), which ``genrestudy predict --model`` reads.

A zip of the header, the training features and labels (``.npy``), k and the scaler's
statistics (JSON): no pickle. Its :class:`KnnModel` computes the spectral features of a clip's
segments and classifies them.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import cache
from ..signals import spectral
from . import modelfile
from ..run import predict
from .knn import class_probabilities, knn_pipeline
from .modelschema import flag, integer, names, number, params_of, text

#: the schema of a knn header's own fields (checked before the model is read)
KNN_FIELDS = {
    "k": integer(1, 10**6), "n_train": integer(1, 10**8), "scaled": flag(),
    "feature_names": names(at_least=1, what="feature names"),
    "spectral_params": params_of(spectral.SpectralParams, {
        "n_fft": integer(16, 1 << 16), "hop_length": integer(1, 1 << 16), "roll_percent": number(0, 1, above=True),
        "level": text(spectral.LEVELS)}, what="spectral parameters"),
    "selection": text(), "metric": text(("euclidean",)), "voting": text(("uniform",)),
}
MODEL_KIND = modelfile.register_kind("knn", required=("k", "spectral_params", "feature_names", "scaled", "n_train"),
                                     fields=KNN_FIELDS)
FEATURES_ENTRY, LABELS_ENTRY, SCALER_ENTRY = "train_features.npy", "train_labels.npy", "scaler.json"
DEFAULT_MODEL_NAME = "spectral_knn.zip"


def save_knn_model(path, pipeline, X_train, y_train, *, classes, image_params, spectral_params,
                   synthetic: bool, feature_names=spectral.FEATURE_NAMES, selection: str = "") -> Path:
    """Save a fitted KNN pipeline as a ``knn`` model file (format: :mod:`genrestudy.models.modelfile`).

    The zip holds ``genrestudy.json`` (classes, image and spectral parameters, k, feature
    names, and the SHA-256 of every other entry), the training features and labels (``.npy``)
    and the scaler's statistics (``scaler.json``; none when unscaled): all a KNN is, and
    nothing executable.

    Parameters
    ----------
    path : path
        The file to write (e.g. ``data/models/spectral_knn.zip``); a demo-data model never
        replaces a real-data one (:func:`genrestudy.models.modelfile.model_destination`).
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
    from ..signals.images import ImageParams

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
        from ..signals.segments import segment_clip

        params = self.image_params
        segments = segment_clip(np.asarray(clip, dtype=np.float32), **asdict(params.segment_params))
        vectors = spectral.spectral_shape(segments, sample_rate=params.sample_rate,
                                          **self.spectral_params.extractor_kwargs())
        return self.feature_probabilities(vectors)


def load_knn_model(path, header: dict | None = None, *, weights=None) -> KnnModel:
    """Read a ``knn`` model file (``weights`` is unused: a KNN has no backbone).

    Raises
    ------
    genrestudy.models.modelfile.ModelFileError
        Not a genrestudy model, another kind, or a damaged one (one line).
    """
    path = Path(path).expanduser()
    header = header or modelfile.read_header(path)
    if header["kind"] != MODEL_KIND:
        raise modelfile.ModelFileError(f"{path} is a {header['kind']} model, not {MODEL_KIND}")

    def refuse(entry: str, reason: str):
        raise modelfile.ModelFileError(f"not a genrestudy model: {path} (no readable {entry}: {reason})")

    n_train, n_features = header["n_train"], len(header["feature_names"])
    if header["k"] > n_train:
        raise modelfile.ModelFileError(f"not a genrestudy model: {path} (header field 'k' is {header['k']}, more "
                                       f"than its {n_train} training rows)")
    entries = [FEATURES_ENTRY, LABELS_ENTRY] + ([SCALER_ENTRY] if header["scaled"] else [])
    data = modelfile.read_payloads(path, header, entries)  # sizes and hashes checked before anything is parsed
    X = _stored_array(data[FEATURES_ENTRY], (n_train, n_features), "f", lambda why: refuse(FEATURES_ENTRY, why))
    y = _stored_array(data[LABELS_ENTRY], (n_train,), "i", lambda why: refuse(LABELS_ENTRY, why))
    if y.min() < 0 or y.max() >= len(header["classes"]):
        refuse(LABELS_ENTRY, f"labels {y.min()}..{y.max()} outside the {len(header['classes'])} classes")
    scaler = _stored_scaler(data[SCALER_ENTRY], n_features, lambda why: refuse(SCALER_ENTRY, why)) \
        if header["scaled"] else None
    return KnnModel(path=path, header=header, pipeline=_rebuilt_pipeline(X, y, header, scaler))


def _stored_array(data: bytes, shape: tuple, kind: str, refuse) -> np.ndarray:
    """The ``.npy`` array in ``data`` if it has ``shape``, a dtype of ``kind`` (``"f"`` or ``"i"``) and finite values."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        refuse(f"not a readable .npy array ({str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__})")
    if array.shape != shape or array.dtype.kind not in (kind, "i" if kind == "f" else kind):
        refuse(f"{array.shape} {array.dtype} values, the header implies {shape} "
               f"{'numbers' if kind == 'f' else 'integer labels'}")
    if kind == "f" and not np.isfinite(array).all():
        refuse(f"{int((~np.isfinite(array)).sum())} values are NaN or infinite")
    return array


def _stored_scaler(data: bytes, n_features: int, refuse) -> dict:
    """The scaler statistics in ``data``: ``mean``, ``scale`` and ``var`` of ``n_features`` finite numbers each."""
    try:
        stats = json.loads(data)
    except (ValueError, RecursionError) as exc:
        refuse(f"not JSON ({str(exc)[:80]})")
    out = {}
    for name in ("mean", "scale", "var"):
        values = stats.get(name) if isinstance(stats, dict) else None
        ok = isinstance(values, list) and len(values) == n_features and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        array = np.asarray(values, dtype=np.float64) if ok else None
        # a scale divides the features: above 0; a variance is never negative
        bad = array is None or not np.isfinite(array).all() or bool(
            (array <= 0).any() if name == "scale" else (array < 0).any() if name == "var" else False)
        if bad:
            refuse(f"{name} must be {n_features} finite numbers"
                   + {"mean": "", "scale": ", all above 0", "var": ", none negative"}[name])
        out[name] = array
    return out


def _rebuilt_pipeline(X: np.ndarray, y: np.ndarray, header: dict, scaler: dict | None):
    """The fitted pipeline of checked training rows, labels and scaler statistics."""
    pipeline = knn_pipeline(int(header["k"]), scale=bool(header["scaled"]))
    if scaler is not None:
        step = pipeline.named_steps["scale"]
        step.mean_, step.scale_, step.var_ = scaler["mean"], scaler["scale"], scaler["var"]
        step.n_features_in_, step.n_samples_seen_ = X.shape[1], len(X)
        X_knn = step.transform(X)
    else:
        X_knn = X
    pipeline.named_steps["knn"].fit(X_knn, y)
    return pipeline


predict.register_loader(MODEL_KIND, load_knn_model, note=f"a spectral KNN .zip (notebook 05, {DEFAULT_MODEL_NAME})")
