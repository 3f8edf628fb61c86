"""Genre prediction for any audio file, with the end-to-end or the hybrid model.

A new file is prepared exactly as the training images were: decoded to mono at the model's
sample rate (:func:`genrestudy.audio.load_audio`), cut into 3 s segments and turned into
mel images with the model's own :class:`genrestudy.images.ImageParams`, each grey image
repeated on three channels and passed through the backbone's own ``preprocess_input`` on
its 0–255 values. A file longer than one clip (``n_segments`` × ``segment_seconds``, 30 s
in the paper) is taken clip by clip, as training clips were, so every whole segment of it
counts; a shorter one gives as many whole segments as it holds. The track's genre
probabilities are the mean of its segments' probabilities.

Model files
-----------
Every genrestudy model file is a zip archive holding a ``genrestudy.json`` entry::

    {"format": "genrestudy-model", "format_version": 1,
     "kind": "end-to-end" | "hybrid",
     "classes": ["blues", ...],            # label order of the model's outputs
     "image_params": {...},                # ImageParams fields (dataclasses.asdict)
     "backbone": "ResNet50", "input_size": 224,
     "weights": "imagenet" | "sha256:<hex>" | "random-init-seed<N>",
     "preprocessing": "keras.applications.resnet50.preprocess_input (...)",
     "synthetic": false, ...}

* **end-to-end** (``.keras``): the Keras archive itself (``config.json``,
  ``model.weights.h5``, ``metadata.json``) with ``genrestudy.json`` added, so the one file
  still opens with ``keras.models.load_model``; ``training`` records settings and timing.
* **hybrid** (``.zip``, e.g. ``resnet50_lightgbm.zip``): ``genrestudy.json`` plus
  ``booster.txt``, the LightGBM model as text (at its best iteration). The backbone is not
  stored: it is rebuilt from ``backbone``/``weights``/``seed``/``input_size``, and
  ``backbone_fingerprint`` (SHA-256 of the rebuilt network's weights) proves it is the
  network the booster was trained on. ``precision`` is the arithmetic of the features.

A file without that entry (a plain ``.keras`` model, anything else) is refused with one
line: "not a genrestudy model: ...".
"""
from __future__ import annotations

import abc
import hashlib
import json
import logging
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from . import cache, features, paths
from .audio import AudioError, load_audio
from .images import ImageParams, mel_images
from .segments import ClipTooShortError

log = logging.getLogger(__name__)

FORMAT = "genrestudy-model"
FORMAT_VERSION = 1
HEADER_ENTRY = "genrestudy.json"
BOOSTER_ENTRY = "booster.txt"
KINDS = ("end-to-end", "hybrid")
DEFAULT_MODEL_NAME = "resnet50_end_to_end.keras"
_REQUIRED = ("classes", "image_params", "backbone", "input_size", "weights", "synthetic")


class ModelFileError(ValueError):
    """A file that is not a usable genrestudy model; ``str(err)`` is one line."""


def default_model_path() -> Path:
    """Where notebook 04 saves the end-to-end model and the CLI looks by default: ``data/models/``."""
    return paths.data_dir() / "models" / DEFAULT_MODEL_NAME


def model_destination(path, *, synthetic: bool) -> Path:
    """Where to save a model meant for ``path`` without losing a real-data model already there.

    A model trained on the synthetic demo data never replaces one trained on real audio (the
    demo run would otherwise overwrite the CLI's default model after a paper run): it goes
    beside it as ``<name>.synthetic<suffix>``, with a warning. Anything else is saved at ``path``.
    """
    path = Path(path).expanduser()
    if not synthetic or not path.exists():
        return path
    try:
        existing = read_header(path)
    except (ModelFileError, OSError):
        return path  # not one of ours, or unreadable: replaced, as before
    if existing.get("synthetic", True):
        return path
    beside = path.with_name(f"{path.stem}.synthetic{path.suffix}")
    log.warning("%s holds a model trained on real audio; this demo-data model goes to %s instead", path, beside)
    return beside


# ---------------------------------------------------------------- the header

def model_header(kind: str, *, classes, image_params: dict, backbone: str, weights: str, input_size: int,
                 synthetic: bool, **extra) -> dict:
    """The ``genrestudy.json`` of a model file (validated); ``extra`` holds kind-specific fields."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "classes": list(classes),
              "image_params": dict(image_params), "backbone": backbone, "input_size": int(input_size),
              "weights": weights, "synthetic": bool(synthetic), **extra}
    check_header(header, "<new model>", kind=kind)
    return header


def check_header(header, path, *, kind: str | None = None) -> dict:
    """Raise :class:`ModelFileError` unless ``header`` is a complete genrestudy header (of ``kind``)."""
    def refuse(reason: str):
        raise ModelFileError(f"not a genrestudy model: {path} ({reason})")

    if not isinstance(header, dict) or header.get("format") != FORMAT:
        refuse(f"its {HEADER_ENTRY} does not declare format {FORMAT!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        refuse(f"format version {version!r}; this genrestudy reads versions up to {FORMAT_VERSION}")
    if header.get("kind") not in KINDS or (kind is not None and header["kind"] != kind):
        refuse(f"kind {header.get('kind')!r}, expected {kind or ' or '.join(KINDS)}")
    missing = [k for k in _REQUIRED if k not in header]
    if missing:
        refuse(f"header lacks {', '.join(missing)}")
    classes = header["classes"]
    if (not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes)
            or not all(isinstance(c, str) for c in classes)):
        refuse(f"classes must be two or more distinct names, got {classes!r}")
    try:
        ImageParams(**header["image_params"])
    except (TypeError, ValueError) as exc:
        refuse(f"bad image parameters: {exc}")
    if header["backbone"] not in features.BACKBONES:
        refuse(f"unknown backbone {header['backbone']!r}")
    return header


def attach_header(zip_path, header: dict) -> None:
    """Add ``genrestudy.json`` to the zip archive ``zip_path`` (a freshly written ``.keras``)."""
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        if HEADER_ENTRY in archive.namelist():
            raise ValueError(f"{zip_path} already has a {HEADER_ENTRY}")
        archive.writestr(HEADER_ENTRY, json.dumps(header, indent=2, sort_keys=True, default=str))


def read_header(path) -> dict:
    """The validated ``genrestudy.json`` of a model file, without loading the model.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError
        Anything that is not a genrestudy model file (one line).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"not a genrestudy model: {path} (not a zip archive such as a .keras file)")
    try:
        with zipfile.ZipFile(path) as archive:
            if HEADER_ENTRY not in archive.namelist():
                what = "a Keras model without" if "config.json" in archive.namelist() else "a zip archive without"
                raise ModelFileError(f"not a genrestudy model: {path} ({what} genrestudy's {HEADER_ENTRY})")
            header = json.loads(archive.read(HEADER_ENTRY))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"not a genrestudy model: {path} (unreadable: {str(exc)[:160]})") from None
    return check_header(header, path)


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


@dataclass
class EndToEndModel(GenreModel):
    """The fine-tuned ResNet-50 of :mod:`genrestudy.endtoend`."""

    network: object = None

    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        from .endtoend import predict_padded

        _check_images(images, self.image_params)
        batch = self.image_params.n_segments  # one clip per call, padded: a constant shape, traced once
        out = []
        for start in range(0, len(images), batch):
            rgb = np.repeat(np.asarray(images[start:start + batch])[..., None], 3, axis=-1)
            x = features.preprocess_images(rgb, backbone=self.header["backbone"])
            out.append(predict_padded(self.network, x, batch))
        return np.concatenate(out).astype(np.float64)


@dataclass
class HybridModel(GenreModel):
    """A frozen backbone's features → LightGBM (notebook 03's model)."""

    network: object = None
    booster: object = None

    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        from .classifiers import predict_proba

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


def _runnable_precision(precision: str) -> str:
    """The stored feature precision, or float32 where this machine cannot run it usefully."""
    device = features.accelerator()
    if precision == "float16" and device != "gpu":
        return "float32"
    if precision == "bfloat16" and device != "gpu" and not features.cpu_supports_bfloat16():
        return "float32"
    return precision


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
    found = features.weights_identity(source)
    if found != identity:
        raise ValueError(f"weights file {source} is {found}, but the model was trained with {identity}")
    return str(source)


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
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}; train one with notebooks/04_finetune_resnet50.ipynb "
                                "(end-to-end) or notebooks/03_tune_lightgbm.ipynb (hybrid), or pass --model")
    header = read_header(path)
    if header["kind"] == "end-to-end":
        from . import endtoend

        network, header = endtoend.load_model(path)
        return EndToEndModel(path=path, header=header, network=network)
    return _load_hybrid(path, header, weights=weights)


def _load_hybrid(path: Path, header: dict, *, weights) -> HybridModel:
    import lightgbm as lgb

    for key in ("seed", "precision", "backbone_fingerprint"):
        if key not in header:
            raise ModelFileError(f"not a genrestudy model: {path} (hybrid header lacks {key})")
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(BOOSTER_ENTRY).decode("utf-8")
        booster = lgb.Booster(model_str=text)
    except (KeyError, UnicodeDecodeError, lgb.basic.LightGBMError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"not a genrestudy model: {path} (no readable {BOOSTER_ENTRY}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    n_classes = len(header["classes"])
    spec = features.backbone_spec(header["backbone"])
    if booster.num_model_per_iteration() != n_classes or booster.num_feature() != spec.n_features:
        raise ModelFileError(f"not a genrestudy model: {path} (booster has {booster.num_model_per_iteration()} classes "
                             f"x {booster.num_feature()} features; header says {n_classes} x {spec.n_features})")
    build = dict(weights=_weights_source(header, weights), image_size=header["image_params"]["image_size"],
                 input_size=header["input_size"], seed=header["seed"])
    # the fingerprint is of the float32 network (as saved); a reduced-precision build holds
    # other weights (batch norm folded in that precision), so it is checked on a float32 build
    reference = features.build_backbone(spec.name, precision="float32", **build)
    precision = _runnable_precision(header["precision"])
    network = reference if precision == "float32" else features.build_backbone(spec.name, precision=precision, **build)
    if backbone_fingerprint(reference) != header["backbone_fingerprint"]:
        raise ValueError(f"the {spec.name} rebuilt here ({header['weights']}) differs from the one the booster of "
                         f"{path} was trained on (another Keras version or backend?); re-extract the features "
                         "and retrain the hybrid here")
    return HybridModel(path=path, header=header, network=network, booster=booster)


def hybrid_settings(feature_set, image_set) -> dict:
    """The keyword arguments of :func:`save_hybrid_model` for a booster trained on ``feature_set``.

    ``feature_set`` must come from :func:`genrestudy.features.extract_features` over
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
    """Save a LightGBM booster with what is needed to predict from audio (see the module docstring).

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
        How the features were extracted (as in :func:`genrestudy.features.extract_features`);
        :func:`hybrid_settings` reads them off a feature set.
    synthetic : bool
        Trained on the synthetic demo data (then a real-data model at ``path`` is kept and this
        one saved beside it, see :func:`model_destination`).

    Returns the path written. The backbone is built once here to record its fingerprint (a few seconds).
    """
    spec = features.backbone_spec(backbone)
    params = asdict(image_params) if isinstance(image_params, ImageParams) else asdict(ImageParams(**image_params))
    classes = list(classes)
    input_size = int(input_size or spec.input_size)
    if booster.num_model_per_iteration() != len(classes):
        raise ValueError(f"the booster predicts {booster.num_model_per_iteration()} classes, "
                         f"{len(classes)} class names given")
    if booster.num_feature() != spec.n_features:
        raise ValueError(f"the booster takes {booster.num_feature()} features, {spec.name} gives {spec.n_features}")
    if precision not in features.PRECISIONS or precision == "auto":
        raise ValueError(f"precision must be the resolved one of the features (float32, bfloat16, float16), "
                         f"got {precision!r}")
    network = features.build_backbone(spec.name, weights=weights, image_size=params["image_size"],
                                      input_size=input_size, precision="float32", seed=seed)
    header = model_header(
        "hybrid", classes=classes, image_params=params, backbone=spec.name,
        weights=features.weights_identity(weights, seed=seed),
        weights_source=None if weights is None else str(weights), seed=int(seed), input_size=input_size,
        precision=precision, backbone_fingerprint=backbone_fingerprint(network),
        preprocessing=f"keras.applications.{spec.module}.preprocess_input ({spec.preprocessing})",
        num_iteration=int(booster.best_iteration or booster.current_iteration()), synthetic=synthetic)
    path = model_destination(path, synthetic=synthetic)
    with cache.atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(HEADER_ENTRY, json.dumps(header, indent=2, sort_keys=True, default=str))
            archive.writestr(BOOSTER_ENTRY, booster.model_to_string())
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


def segment_image_chunks(signal: np.ndarray, params: ImageParams) -> Iterator[np.ndarray]:
    """Mel images of a signal, one clip (``n_segments`` segments) at a time.

    A long recording is cut into consecutive clips of ``n_segments × segment_seconds``, each
    imaged exactly as a training clip was; a tail after the last whole clip gives its whole
    segments, and one shorter than a segment is left out.

    Raises
    ------
    ClipTooShortError
        The whole signal is shorter than one segment.
    """
    clip = params.n_segments * params.segment_samples
    for start in range(0, max(len(signal), 1), clip):
        try:
            yield mel_images(signal[start:start + clip], params)
        except ClipTooShortError:
            if start == 0:
                raise


def predict_file(path, model: GenreModel) -> Prediction:
    """Predict the genre of one audio file (wav, au, flac, ogg, mp3; any rate, mono or stereo).

    Raises
    ------
    genrestudy.audio.AudioError
        The file cannot be decoded (one line).
    genrestudy.segments.ClipTooShortError
        It is shorter than one segment.
    """
    params = model.image_params
    signal, _ = load_audio(path, sample_rate=params.sample_rate)
    proba = np.concatenate([model.segment_probabilities(images) for images in segment_image_chunks(signal, params)])
    mean = proba.mean(axis=0)
    classes = model.classes
    return Prediction(path=str(path), genre=classes[int(mean.argmax())],
                      probabilities={c: float(p) for c, p in zip(classes, mean)}, segments=int(len(proba)))


def predict_files(paths: Iterable, model: GenreModel | None = None, *, progress: bool = False) -> list[Prediction]:
    """Predict every file; a file that fails gets a :class:`Prediction` with its ``error``, the rest go on.

    Parameters
    ----------
    paths : iterable of path
        Audio files.
    model : GenreModel, optional
        From :func:`load_model` (default: the model at :func:`default_model_path`).
    progress : bool
        Show a progress bar over files.
    """
    from tqdm.auto import tqdm

    model = model or load_model()
    out = []
    for path in tqdm(list(paths), desc="predicting", unit="file", disable=not progress):
        try:
            out.append(predict_file(path, model))
        except (AudioError, ClipTooShortError, OSError) as exc:
            out.append(Prediction(path=str(path), error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    return out
