"""Genre prediction for any audio file, with the end-to-end or the hybrid model.

A new file is prepared exactly as the training images were: decoded to mono at the model's
sample rate (:func:`genrestudy.data.audio.load_audio`), cut into 3 s segments and turned into
mel images with the model's own :class:`genrestudy.signals.images.ImageParams`, each grey image
repeated on three channels and passed through the backbone's own ``preprocess_input`` on
its 0–255 values. A file longer than one clip (``n_segments`` × ``segment_seconds``, 30 s
in the paper) is taken clip by clip, as training clips were, so every whole segment of it
counts; a shorter one gives as many whole segments as it holds. The track's genre
probabilities are the mean of its segments' probabilities.

Models are read from genrestudy model files (:mod:`genrestudy.models.modelfile` describes the
format): an end-to-end ``.keras`` file, or a hybrid ``.zip`` (``genrestudy.json`` plus
``booster.txt``) written by :func:`save_hybrid_model`. A file that is not one of ours is
refused with one line, before Keras is imported.
"""
from __future__ import annotations

import abc
import hashlib
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .. import cache, device
from ..extractors import backbones, features
from ..data.audio import AudioError
from ..models.boosterfile import BoosterTextError, check_booster_text
from ..signals.images import ImageParams, mel_images
from ..models.modelfile import (
    DEFAULT_MODEL_NAME,
    ModelFileError,
    check_payload,
    default_model_path,
    load_keras_model,
    model_destination,
    model_header,
    read_header,
    read_payload,
    write_model_archive,
)
# clip_chunks and stream_clips live beside the segmentation they follow (a file of any length, block by block)
from ..signals.segments import SILENT_PEAK, ClipTooShortError, clip_chunks, segments_peak, stream_clips

BOOSTER_ENTRY = "booster.txt"


# ---------------------------------------------------------------- loaded models

@dataclass
class GenreModel(abc.ABC):
    """A loaded model: segment images in, class probabilities out.

    Attributes
    ----------
    path : Path
        The model file.
    header : dict
        Its ``genrestudy.json``.
    """

    path: Path
    header: dict

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def classes(self) -> list[str]:
        return list(self.header["classes"])

    @property
    def image_params(self) -> ImageParams:
        return ImageParams(**self.header["image_params"])

    @property
    def synthetic(self) -> bool:
        return bool(self.header["synthetic"])

    def describe(self) -> str:
        """One line: what the model is and what it was trained on."""
        data = "the SYNTHETIC demo data (its genres mean nothing for real music)" if self.synthetic else "real audio"
        return (f"{self.kind} {self.header['backbone']} model ({self.header['weights']}, "
                f"{len(self.classes)} genres) trained on {data}: {self.path}")

    @abc.abstractmethod
    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities of ``(n, size, size)`` uint8 grey segment images."""

    def clip_probabilities(self, clip: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities of the whole segments of one clip's signal (at most
        ``n_segments`` of them). Image models image it as a training clip was; a model on other
        inputs (e.g. spectral features) overrides this."""
        return self.segment_probabilities(mel_images(clip, self.image_params))


@dataclass
class EndToEndModel(GenreModel):
    """The fine-tuned ResNet-50 of :mod:`genrestudy.networks.endtoend`."""

    network: object = None

    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        # training imports Keras, so only once a model runs: the CLI refuses a wrong file before
        from ..networks.training import predict_padded, prepare_images

        _check_images(images, self.image_params)
        batch = self.image_params.n_segments  # one clip per call, padded: a constant shape, traced once
        out = []
        for start in range(0, len(images), batch):
            x = prepare_images(np.asarray(images[start:start + batch]), preprocess=self.header["backbone"])
            out.append(predict_padded(self.network, x, batch))
        return np.concatenate(out).astype(np.float64)


@dataclass
class HybridModel(GenreModel):
    """A frozen backbone's features → LightGBM (notebook 03's model)."""

    network: object = None
    booster: object = None

    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        from ..models.classifiers import predict_proba

        _check_images(images, self.image_params)
        vectors = features.stream_features(self.network, np.asarray(images), backbone=self.header["backbone"],
                                           batch_size=self.image_params.n_segments, progress=False)
        return np.asarray(predict_proba(self.booster, vectors), dtype=np.float64)


def _check_images(images: np.ndarray, params: ImageParams) -> None:
    size = params.image_size
    if images.ndim != 3 or images.shape[1:] != (size, size) or images.dtype != np.uint8:
        raise ValueError(f"expected (n, {size}, {size}) uint8 segment images, got {images.shape} {images.dtype}")


def backbone_fingerprint(network) -> str:
    """SHA-256 of a network's weights (shapes and float32 values, in layer order)."""
    digest = hashlib.sha256()
    for weight in network.get_weights():
        array = np.ascontiguousarray(weight, dtype=np.float32)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


def _weights_source(header: dict, weights) -> str | None:
    """What to build the hybrid's backbone from, checked against the stored weights identity."""
    identity = header["weights"]
    if identity == "imagenet":
        return "imagenet"
    if identity.startswith("random-init-seed"):
        return None
    source = weights or header.get("weights_source")
    if not source:
        raise FileNotFoundError(f"the model's backbone weights ({identity}) come from a file; pass weights=<that file>")
    found = backbones.weights_identity(source)
    if found != identity:
        raise ValueError(f"weights file {source} is {found}, but the model was trained with {identity}")
    return str(source)


#: loaders of the model kinds that method modules add: ``kind -> loader(path, header, *, weights)``;
#: what each kind of file is and what writes it (``genrestudy predict --help`` shows them)
LOADERS: dict = {}
KIND_NOTES: dict = {"end-to-end": "an end-to-end .keras (notebook 04)", "hybrid": "a hybrid .zip (notebook 03)"}


def register_loader(kind: str, loader, *, note: str | None = None):
    """Let :func:`load_model` (and ``genrestudy predict --model``) read model files of ``kind``: ``loader(path,
    header, *, weights)`` returns a :class:`GenreModel` (the kind registered with
    :func:`genrestudy.models.modelfile.register_kind` too); ``note``: what such a file is, for ``predict --help``."""
    LOADERS[kind] = loader
    if note:
        KIND_NOTES[kind] = note
    return loader


def load_model(path=None, *, weights=None) -> GenreModel:
    """Load an end-to-end or hybrid model file.

    Parameters
    ----------
    path : path, optional
        The model file (default :func:`default_model_path`).
    weights : path, optional
        Hybrid models whose backbone weights came from a local file: where that file is now
        (default: the path recorded in the model). Its SHA-256 must match.

    Raises
    ------
    FileNotFoundError
        No model file (the message says how to make one).
    ModelFileError
        Not a genrestudy model, or a damaged one (one line).
    ValueError
        A hybrid model whose backbone cannot be rebuilt identically here.
    """
    path = Path(path).expanduser() if path is not None else default_model_path()
    special = _special_file(path)
    if special:
        raise ModelFileError(f"not a genrestudy model: {path} ({special})")
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}; train one with notebooks/04_finetune_resnet50.ipynb "
                                "(end-to-end) or notebooks/03_tune_lightgbm.ipynb (hybrid), or pass --model")
    header = read_header(path)
    if header["kind"] in LOADERS:
        check_payload(path, header)  # every kind's payload is checked before its loader parses it
        return LOADERS[header["kind"]](path, header, weights=weights)
    if header["kind"] == "end-to-end":
        # the network takes (image_size, image_size, 3) images of the header's parameters
        network, header = load_keras_model(path, kind="end-to-end", expected_input=lambda h: (
            h["image_params"]["image_size"],) * 2 + (3,))
        return EndToEndModel(path=path, header=header, network=network)
    return _load_hybrid(path, header, weights=weights)


def _load_hybrid(path: Path, header: dict, *, weights) -> HybridModel:
    import lightgbm as lgb

    for key in ("seed", "precision", "backbone_fingerprint"):
        if key not in header:
            raise ModelFileError(f"not a genrestudy model: {path} (hybrid header lacks {key})")
    data = read_payload(path, header, BOOSTER_ENTRY)
    try:
        # checked before LightGBM sees it: its C++ parser aborts the process on damaged text
        text = check_booster_text(data)
        booster = lgb.Booster(model_str=text)
    except (BoosterTextError, lgb.basic.LightGBMError, ValueError) as exc:
        raise ModelFileError(f"not a genrestudy model: {path} (no readable {BOOSTER_ENTRY}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    n_classes = len(header["classes"])
    spec = backbones.backbone_spec(header["backbone"])
    if booster.num_model_per_iteration() != n_classes or booster.num_feature() != spec.n_features:
        raise ModelFileError(f"not a genrestudy model: {path} (booster has {booster.num_model_per_iteration()} classes "
                             f"x {booster.num_feature()} features; header says {n_classes} x {spec.n_features})")
    build = dict(weights=_weights_source(header, weights), image_size=header["image_params"]["image_size"],
                 input_size=header["input_size"], seed=header["seed"])
    # the fingerprint is of the float32 network (as saved); a reduced-precision build holds
    # other weights (batch norm folded in that precision), so it is checked on a float32 build
    reference = backbones.build_backbone(spec.name, precision="float32", **build)
    precision = device.runnable_precision(header["precision"])
    network = reference if precision == "float32" else backbones.build_backbone(spec.name, precision=precision, **build)
    if backbone_fingerprint(reference) != header["backbone_fingerprint"]:
        raise ValueError(f"the {spec.name} rebuilt here ({header['weights']}) differs from the one the booster of "
                         f"{path} was trained on (another Keras version or backend?); re-extract the features "
                         "and retrain the hybrid here")
    return HybridModel(path=path, header=header, network=network, booster=booster)


def hybrid_settings(feature_set, image_set) -> dict:
    """The keyword arguments of :func:`save_hybrid_model` for a booster trained on ``feature_set``.

    ``feature_set`` must come from :func:`genrestudy.extractors.features.extract_features` over
    ``image_set`` (a Kaggle features table cannot predict from audio: its features are
    not computed by anything here).
    """
    meta = feature_set.meta
    if "backbone" not in meta or "image_cache" not in meta:
        raise ValueError("these features were not extracted by a backbone from mel images (e.g. a Kaggle "
                         "features table), so a model trained on them cannot predict from audio")
    if meta["image_cache"] != image_set.key:
        raise ValueError(f"the features come from image cache {meta['image_cache']}, not from {image_set.key}")
    return {"classes": feature_set.classes, "image_params": image_set.meta["params"], "backbone": meta["backbone"],
            "weights": meta.get("weights_source"), "seed": int(meta.get("seed", 0)),
            "input_size": int(meta["input_size"]), "precision": meta.get("precision", "float32"),
            "synthetic": bool(feature_set.synthetic)}


def save_hybrid_model(path, booster, *, classes, image_params, backbone: str = "ResNet50", weights=None,
                      seed: int = 0, input_size: int | None = None, precision: str = "float32",
                      synthetic: bool = False) -> Path:
    """Save a LightGBM booster with what is needed to predict from audio (format: :mod:`genrestudy.models.modelfile`).

    Parameters
    ----------
    path : path
        The model file to write (a zip archive; e.g. ``data/models/resnet50_lightgbm.zip``).
    booster : lightgbm.Booster
        Trained on the backbone's features; saved at its best iteration.
    classes : list of str
        Genre of each class code the booster predicts.
    image_params : ImageParams or dict
        How the training images were made.
    backbone, weights, seed, input_size, precision
        How the features were extracted (as in :func:`genrestudy.extractors.features.extract_features`);
        :func:`hybrid_settings` reads them off a feature set.
    synthetic : bool
        Trained on the synthetic demo data (then a real-data model at ``path`` is kept and this
        one saved beside it, see :func:`model_destination`).

    Returns the path written. The backbone is built once here to record its fingerprint (a few seconds).
    """
    spec = backbones.backbone_spec(backbone)
    params = asdict(image_params) if isinstance(image_params, ImageParams) else asdict(ImageParams(**image_params))
    classes = list(classes)
    input_size = int(input_size or spec.input_size)
    if booster.num_model_per_iteration() != len(classes):
        raise ValueError(f"the booster predicts {booster.num_model_per_iteration()} classes, "
                         f"{len(classes)} class names given")
    if booster.num_feature() != spec.n_features:
        raise ValueError(f"the booster takes {booster.num_feature()} features, {spec.name} gives {spec.n_features}")
    if precision not in device.INFERENCE_PRECISIONS or precision == "auto":
        raise ValueError(f"precision must be the resolved one of the features (float32, bfloat16, float16), "
                         f"got {precision!r}")
    network = backbones.build_backbone(spec.name, weights=weights, image_size=params["image_size"],
                                       input_size=input_size, precision="float32", seed=seed)
    header = model_header(
        "hybrid", classes=classes, image_params=params, backbone=spec.name,
        weights=backbones.weights_identity(weights, seed=seed),
        weights_source=None if weights is None else str(weights), seed=int(seed), input_size=input_size,
        precision=precision, backbone_fingerprint=backbone_fingerprint(network),
        preprocessing=spec.preprocessing_note, synthetic=synthetic,
        num_iteration=int(booster.best_iteration or booster.current_iteration()))
    path = model_destination(path, synthetic=synthetic)
    with cache.atomic_path(path) as tmp:
        write_model_archive(tmp, header, {BOOSTER_ENTRY: booster.model_to_string().encode("utf-8")})
    return path


# ---------------------------------------------------------------- predicting files

@dataclass
class Prediction:
    """The genre of one audio file, or why there is none.

    Attributes
    ----------
    path : str
        The file as given.
    genre : str or None
        The genre with the highest mean probability (None when the file failed).
    probabilities : dict
        Genre → mean segment probability, in the model's class order.
    segments : int
        Segments the file gave.
    error : str or None
        One line saying why the file could not be predicted.
    """

    path: str
    genre: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    segments: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable genres with their probabilities, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])[:k]

    def to_dict(self) -> dict:
        """``{"path", "genre", "probabilities", "segments"}``, or ``{"path", "error"}`` for a failure."""
        if not self.ok:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "genre": self.genre, "probabilities": self.probabilities,
                "segments": self.segments}


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"))


def _special_file(path) -> str | None:
    """What ``path`` is when it exists but is no regular file ("is a directory", ...), else None.

    Only ``stat`` is used: opening a named pipe would wait for a writer forever.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # missing or unreadable: the reader says so
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISREG(mode):
        return None
    return f"is not a regular file ({next((name for test, name in _NOT_REGULAR if test(mode)), 'a special file')})"


def _check_regular_file(path) -> None:
    special = _special_file(path)
    if special == "is a directory":
        raise IsADirectoryError(special)
    if special:
        raise AudioError(special)


def predict_file(path, model: GenreModel) -> Prediction:
    """Predict the genre of one audio file (wav, au, flac, ogg, mp3; any rate, mono or stereo).

    Raises
    ------
    genrestudy.data.audio.AudioError
        The file cannot be decoded, is not a regular file (a named pipe, a device), or is digitally
        silent (:data:`SILENT_PEAK`; one line). Any length is taken block by block (:func:`stream_clips`).
    IsADirectoryError
        It is a directory.
    genrestudy.signals.segments.ClipTooShortError
        It is shorter than one segment.
    """
    params = model.image_params
    _check_regular_file(path)
    parts, peak = [], 0.0
    for clip in stream_clips(path, params):
        peak = max(peak, segments_peak(clip, params))
        parts.append(model.clip_probabilities(clip))
    if peak <= SILENT_PEAK:
        raise AudioError(f"digitally silent: no segment rises above {SILENT_PEAK:.1e} (one 16-bit step, "
                         "-90 dBFS), so there is no sound to classify")
    proba = np.concatenate(parts)
    mean = proba.mean(axis=0)
    classes = model.classes
    return Prediction(path=str(path), genre=classes[int(mean.argmax())],
                      probabilities={c: float(p) for c, p in zip(classes, mean)}, segments=int(len(proba)))


def iter_predictions(paths: Iterable, model: GenreModel | None = None) -> Iterator[Prediction]:
    """Each file's :class:`Prediction` as soon as that file is done (a generator, in the order given): a
    caller that prints as it goes shows every finished file at once and keeps them when interrupted.
    A file that fails gets a :class:`Prediction` with its ``error`` and the rest go on. ``model``: from
    :func:`load_model` (default: the model at :func:`default_model_path`)."""
    model = model or load_model()
    for path in paths:
        try:
            yield predict_file(path, model)
        except (AudioError, ClipTooShortError, OSError) as exc:
            yield Prediction(path=str(path), error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def predict_files(paths: Iterable, model: GenreModel | None = None, *, progress: bool = False) -> list[Prediction]:
    """Every file's :class:`Prediction` in a list (:func:`iter_predictions`; ``progress``: a bar over files)."""
    from ..progress import progress_bar

    paths = list(paths)
    return list(progress_bar(iter_predictions(paths, model), total=len(paths), desc="predicting", unit="file",
                             enabled=progress))
