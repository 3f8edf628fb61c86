"""The model-file format every kind of genrestudy model is saved in.

Every genrestudy model file is a zip archive holding a ``genrestudy.json`` entry::

    {"format": "genrestudy-model", "format_version": 1,
     "kind": "end-to-end" | "hybrid" | <a kind a method registered>,
     "classes": ["blues", ...],            # label order of the model's outputs
     "image_params": {...},                # ImageParams fields (dataclasses.asdict)
     "synthetic": false,                   # trained on the synthetic demo data
     "backbone": "ResNet50", "input_size": 224,
     "weights": "imagenet" | "sha256:<hex>" | "random-init-seed<N>",
     "preprocessing": "keras.applications.resnet50.preprocess_input (...)", ...}

``classes``, ``image_params`` and ``synthetic`` are required of every kind; each kind names
its own further required fields when it is registered (:func:`register_kind`), and a
``backbone`` a kind requires must be one of :data:`genrestudy.backbones.BACKBONES`.

* **end-to-end** (``.keras``): the Keras archive itself (``config.json``,
  ``model.weights.h5``, ``metadata.json``) with ``genrestudy.json`` added, so the one file
  still opens with ``keras.models.load_model`` (:func:`save_keras_model`,
  :func:`load_keras_model`); ``training`` records settings and timing. Any other kind of
  Keras model is saved the same way.
* **hybrid** (``.zip``, e.g. ``resnet50_lightgbm.zip``): ``genrestudy.json`` plus
  ``booster.txt``, the LightGBM model as text (at its best iteration). The backbone is not
  stored: it is rebuilt from ``backbone``/``weights``/``seed``/``input_size``, and
  ``backbone_fingerprint`` (SHA-256 of the rebuilt network's weights) proves it is the
  network the booster was trained on. ``precision`` is the arithmetic of the features.
  :mod:`genrestudy.predict` writes and reads it.

A file without that entry (a plain ``.keras`` model, anything else), or a truncated or
damaged one, is refused with one line: "not a genrestudy model: ...". Keras is imported only
to save or load a Keras model, so a header is read and checked without it.
"""
from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Iterable

from . import backbones, cache, paths
from .images import ImageParams

log = logging.getLogger(__name__)

FORMAT = "genrestudy-model"
FORMAT_VERSION = 1
HEADER_ENTRY = "genrestudy.json"
DEFAULT_MODEL_NAME = "resnet50_end_to_end.keras"
#: fields every kind's header holds
COMMON_FIELDS = ("classes", "image_params", "synthetic")
_BACKBONE_FIELDS = ("backbone", "input_size", "weights")
# kind -> the further fields its header must hold; a method module adds its kind with register_kind
_KINDS: dict[str, tuple[str, ...]] = {}


class ModelFileError(ValueError):
    """A file that is not a usable genrestudy model; ``str(err)`` is one line."""


def register_kind(name: str, *, required: Iterable[str] = ()) -> str:
    """Let model files of kind ``name`` be written and read (a method module calls this once).

    Parameters
    ----------
    name : str
        The kind, as written in the header (``"end-to-end"``, ``"hybrid"``, ``"knn"``, ...).
    required : iterable of str
        Header fields a file of this kind must hold beyond :data:`COMMON_FIELDS`.

    Returns
    -------
    str
        ``name``. Registering a kind again with the same fields does nothing; with other
        fields it is refused (two methods would disagree on what the files hold).

    Examples
    --------
    >>> register_kind("end-to-end", required=("backbone", "input_size", "weights"))
    'end-to-end'
    """
    required = tuple(required)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model kind is a non-empty string, got {name!r}")
    if name in _KINDS and _KINDS[name] != required:
        raise ValueError(f"model kind {name!r} is already registered with fields {_KINDS[name]}, not {required}")
    _KINDS[name] = required
    return name


def kinds() -> tuple[str, ...]:
    """The registered model kinds."""
    return tuple(_KINDS)


register_kind("end-to-end", required=_BACKBONE_FIELDS)
register_kind("hybrid", required=_BACKBONE_FIELDS)


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

def model_header(kind: str, *, classes, image_params: dict, synthetic: bool, **fields) -> dict:
    """The ``genrestudy.json`` of a model file (validated); ``fields`` holds the kind's own fields."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "classes": list(classes),
              "image_params": dict(image_params), "synthetic": bool(synthetic), **fields}
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
    if header.get("kind") not in _KINDS or (kind is not None and header["kind"] != kind):
        refuse(f"kind {header.get('kind')!r}, expected {kind or ' or '.join(_KINDS)}")
    required = COMMON_FIELDS + _KINDS[header["kind"]]
    missing = [k for k in required if k not in header]
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
    if "backbone" in required and header["backbone"] not in backbones.BACKBONES:
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


# ---------------------------------------------------------------- Keras models

def save_keras_model(model, path, *, metadata: dict, kind: str | None = None) -> Path:
    """Write ``model`` as a ``.keras`` file carrying ``metadata`` (a :func:`model_header`).

    The optimizer state is left out (it would triple the file and prediction never needs it).
    ``kind``, when given, must be the header's. Returns the path written: a demo-data model
    does not replace a real-data one (see :func:`model_destination`).
    """
    path = Path(path).expanduser()
    if path.suffix != ".keras":
        raise ValueError(f"a {kind or 'Keras'} model is saved as a .keras file, got {path.name!r}")
    check_header(metadata, path, kind=kind)
    path = model_destination(path, synthetic=metadata["synthetic"])
    if int(model.output.shape[-1]) != len(metadata["classes"]):
        raise ValueError(f"the model has {int(model.output.shape[-1])} outputs for {len(metadata['classes'])} classes")
    # rebuilt from its config, not clone_model (which compiles the copy like the original)
    inference = type(model).from_config(model.get_config())
    inference.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache.atomic_path(path) as tmp:
        keras_file = tmp.with_name(tmp.stem + ".keras")  # Keras insists on the suffix
        try:
            inference.save(keras_file)
            attach_header(keras_file, metadata)
            keras_file.replace(tmp)
        finally:
            keras_file.unlink(missing_ok=True)
    return path


def load_keras_model(path, *, kind: str | None = "end-to-end") -> tuple[object, dict]:
    """``(keras.Model, metadata)`` of a Keras model file of ``kind`` (None: any kind).

    Raises
    ------
    ModelFileError
        ``path`` is not such a genrestudy model, or is truncated or damaged (one line:
        "not a genrestudy model: ...").
    """
    import keras

    path = Path(path).expanduser()
    meta = read_header(path)
    if kind is not None and meta["kind"] != kind:
        raise ModelFileError(f"{path} is a {meta['kind']} model, not {kind}")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras reports a damaged archive in many exception types
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ModelFileError(f"not a genrestudy model: {path} (Keras cannot load it: {reason})") from None
    if int(model.output.shape[-1]) != len(meta["classes"]):
        raise ModelFileError(f"not a genrestudy model: {path} ({int(model.output.shape[-1])} outputs "
                             f"for {len(meta['classes'])} classes)")
    return model, meta
