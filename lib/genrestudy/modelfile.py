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

Every other entry of the archive (the payload) has its SHA-256 in the header's
``payload_sha256`` (``{"booster.txt": "sha256:<hex>", ...}``, added by :func:`attach_header`
and :func:`write_model_archive`), checked by :func:`check_payload` before anything parses it:
a damaged payload must never reach a native parser (LightGBM's aborts the process on a
truncated booster). Files written before the hashes have none and are read as they are.

A file without that entry (a plain ``.keras`` model, anything else), or a truncated or
damaged one, is refused with one line: "not a genrestudy model: ...". Keras is imported only
to save or load a Keras model, so a header is read and checked without it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
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
#: the header field holding the SHA-256 of every payload entry
PAYLOAD_FIELD = "payload_sha256"
# kind -> the further fields its header must hold; a method module adds its kind with register_kind
_KINDS: dict[str, tuple[str, ...]] = {}
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hash_table(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) and _SHA256.match(v)
                                           for k, v in value.items())


# header field -> (check, what was expected): a wrong type is refused here, not met later as
# "invalid literal for int()" deep in the loader
_FIELD_TYPES = {
    "synthetic": (lambda v: isinstance(v, bool), "true or false"),
    "backbone": (lambda v: isinstance(v, str), "a backbone name (text)"),
    "input_size": (lambda v: _is_int(v) and v >= 8, "an integer of at least 8"),
    "weights": (lambda v: isinstance(v, str), "text (imagenet, sha256:<hex> or random-init-seed<N>)"),
    "weights_source": (lambda v: v is None or isinstance(v, str), "a file path or null"),
    "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "precision": (lambda v: isinstance(v, str), "text (float32, bfloat16 or float16)"),
    "backbone_fingerprint": (lambda v: isinstance(v, str), "text (sha256:<hex>)"),
    "num_iteration": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "image_params": (lambda v: isinstance(v, dict), "an object of image parameters"),
    "training": (lambda v: isinstance(v, dict), "an object"),
    PAYLOAD_FIELD: (_is_hash_table, 'an object of entry names to "sha256:<64 hex digits>"'),
}


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
    found = header.get("kind")
    if not isinstance(found, str) or found not in _KINDS or (kind is not None and found != kind):
        hint = ("" if kind is not None or not isinstance(found, str) or found in _KINDS else
                " (the study's methods register their kinds when genrestudy.methods is imported)")
        refuse(f"kind {header.get('kind')!r}, expected {kind or ' or '.join(_KINDS)}{hint}")
    required = COMMON_FIELDS + _KINDS[header["kind"]]
    missing = [k for k in required if k not in header]
    if missing:
        refuse(f"header lacks {', '.join(missing)}")
    classes = header["classes"]
    if (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or len(classes) < 2
            or len(set(classes)) != len(classes)):
        refuse(f"classes must be two or more distinct names, got {str(classes)[:80]}")
    for name, (ok, expected) in _FIELD_TYPES.items():
        if name in header and not ok(header[name]):
            refuse(f"header field {name!r} must be {expected}, got {json.dumps(header[name], default=str)[:60]}")
    reason = _image_params_problem(header["image_params"])
    if reason:
        refuse(f"bad image parameters: {reason}")
    if "backbone" in required and header["backbone"] not in backbones.BACKBONES:
        refuse(f"unknown backbone {header['backbone']!r}")
    return header


def _image_params_problem(params: dict) -> str | None:
    """Why ``params`` are not :class:`ImageParams` (wrong names, types or values), or None."""
    expected = {f.name: f.type for f in dataclasses.fields(ImageParams)}
    unknown = sorted(set(params) - set(expected))
    if unknown:
        return f"unknown field(s) {', '.join(map(str, unknown))}"
    for name, value in params.items():
        kind = str(expected[name])
        number = _is_int(value) if kind == "int" else isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number or (value is None and "None" in kind)):
            return f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got {json.dumps(value)[:40]}"
    try:
        ImageParams(**params)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _sha256(archive: zipfile.ZipFile, entry: str) -> str:
    digest = hashlib.sha256()
    with archive.open(entry) as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _write_header(archive: zipfile.ZipFile, header: dict) -> None:
    """Write ``header`` with the SHA-256 of every entry already in ``archive``."""
    if HEADER_ENTRY in archive.namelist():
        raise ValueError(f"{archive.filename} already has a {HEADER_ENTRY}")
    hashes = {entry: _sha256(archive, entry) for entry in archive.namelist() if not entry.endswith("/")}
    archive.writestr(HEADER_ENTRY, json.dumps({**header, PAYLOAD_FIELD: hashes}, indent=2, sort_keys=True,
                                              default=str))


def attach_header(zip_path, header: dict) -> None:
    """Add ``genrestudy.json`` (with the payload's hashes) to ``zip_path`` (a freshly written ``.keras``)."""
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        _write_header(archive, header)


def write_model_archive(path, header: dict, entries: dict[str, bytes]) -> None:
    """Write a model file: ``entries`` (name → bytes) and the header recording their SHA-256.

    Any kind whose payload is not a Keras archive (the hybrid's booster, a KNN's arrays, ...)
    is written with this, so :func:`check_payload` and :func:`read_payload` protect it.
    ``path`` is written directly: pass a temporary path and move it into place.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        _write_header(archive, header)


def check_payload(path, header: dict) -> None:
    """Refuse (:class:`ModelFileError`) a file whose payload differs from the hashes in its header.

    Every entry besides the header must be listed with a matching SHA-256; a file written
    before the hashes (no ``payload_sha256``) passes unchecked.
    """
    expected = header.get(PAYLOAD_FIELD)
    if expected is None:
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n != HEADER_ENTRY and not n.endswith("/")]
            for entry in sorted(set(names) | set(expected)):
                if entry not in expected or entry not in names:
                    reason = "not recorded in its header" if entry not in expected else "missing"
                    raise ModelFileError(f"not a genrestudy model: {path} (entry {entry} is {reason}: altered)")
                if _sha256(archive, entry) != expected[entry]:
                    raise ModelFileError(f"not a genrestudy model: {path} ({entry} does not match the SHA-256 "
                                         "recorded when it was saved: damaged or altered)")
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"not a genrestudy model: {path} (unreadable: {str(exc)[:160]})") from None


def read_payload(path, header: dict, entry: str) -> bytes:
    """The bytes of ``entry`` of a model file, checked against the header's SHA-256 when it has one."""
    check_payload(path, header)
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(entry)
    except KeyError:
        raise ModelFileError(f"not a genrestudy model: {path} (no readable {entry}: not in the archive)") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"not a genrestudy model: {path} (unreadable {entry}: {str(exc)[:160]})") from None


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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RecursionError, RuntimeError) as exc:
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
    check_payload(path, meta)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras reports a damaged archive in many exception types
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ModelFileError(f"not a genrestudy model: {path} (Keras cannot load it: {reason})") from None
    if int(model.output.shape[-1]) != len(meta["classes"]):
        raise ModelFileError(f"not a genrestudy model: {path} ({int(model.output.shape[-1])} outputs "
                             f"for {len(meta['classes'])} classes)")
    return model, meta
