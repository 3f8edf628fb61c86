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
its own further required fields when it is registered (:func:`register_kind`), with the
:class:`genrestudy.models.modelschema.Field` (type and range) of each. Every field of a header
that the schema knows (:data:`COMMON_SCHEMA` and the kind's) is checked before anything uses
it, and a value that does not fit is refused in one line naming the field; a ``backbone``
must be one of :data:`genrestudy.extractors.backbones.BACKBONES`.

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
  :mod:`genrestudy.run.predict` writes and reads it.

Every other entry of the archive (the payload) has its SHA-256 in the header's
``payload_sha256`` (``{"booster.txt": "sha256:<hex>", ...}``) and its size in
``payload_bytes``, added by :func:`attach_header` and :func:`write_model_archive` and
checked by :func:`check_payload` before anything parses it: a damaged payload must never
reach a native parser (LightGBM's aborts the process on a truncated booster). Sizes are
compared before a byte is inflated, and no entry is inflated past its recorded size, nor
past :data:`MAX_HEADER_BYTES` (the header) or :data:`MAX_ENTRY_BYTES` (anything else), so a
small file that would inflate to gigabytes (a zip bomb) is refused at once. Files written
before the hashes have none and are read as they are, within those caps.

A file without that entry (a plain ``.keras`` model, anything else), or a truncated or
damaged one, is refused with one line: "not a genrestudy model: ...". Keras is imported only
to save or load a Keras model, so a header is read and checked without it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path
from typing import Iterable

from .. import cache, paths
from ..extractors import backbones
from ..signals.images import ImageParams
from .modelschema import Field, flag, integer, is_int, names, number, params_of, shown, table, text

log = logging.getLogger(__name__)

FORMAT = "genrestudy-model"
FORMAT_VERSION = 1
HEADER_ENTRY = "genrestudy.json"
DEFAULT_MODEL_NAME = "resnet50_end_to_end.keras"
#: fields every kind's header holds
COMMON_FIELDS = ("classes", "image_params", "synthetic")
_BACKBONE_FIELDS = ("backbone", "input_size", "weights")
#: the header fields holding the SHA-256 and the size of every payload entry
PAYLOAD_FIELD, PAYLOAD_SIZES = "payload_sha256", "payload_bytes"
#: the most the header may inflate to (a real one is a few kB), and any other entry (ResNet-50's
#: weights are about 100 MB): checked against the archive's sizes and while reading
MAX_HEADER_BYTES, MAX_ENTRY_BYTES = 4 << 20, 2 << 30
_SHA256 = r"sha256:[0-9a-f]{64}"


def _image_params_cross_check(params: dict) -> str | None:
    top = params.get("fmax") or params.get("sample_rate", 22050) / 2
    if params.get("fmin", 0.0) >= top:
        return f"fmin {params.get('fmin')} is not below fmax {top:g}"
    if params.get("n_segments", 10) * params.get("segment_seconds", 3.0) > 3600:
        return "a clip of n_segments x segment_seconds is longer than an hour"
    return None


#: every :class:`ImageParams` field with the values a model file may hold
IMAGE_PARAMS_SCHEMA = params_of(ImageParams, {
    "sample_rate": integer(1000, 384_000), "n_segments": integer(1, 1000),
    "segment_seconds": number(0, 600, above=True), "pad_seconds": number(0, 600), "n_fft": integer(16, 1 << 16),
    "hop_length": integer(1, 1 << 16), "n_mels": integer(2, 2048), "fmin": number(0, 1e6),
    "fmax": number(0, 1e6, above=True, optional=True), "top_db": number(0, 1000, above=True),
    "image_size": integer(8, 4096)}, what="image parameters", check=_image_params_cross_check)

#: the schema of the fields any kind's header may hold (a kind adds its own in :func:`register_kind`)
COMMON_SCHEMA: dict[str, Field] = {
    "classes": names(at_least=2, what="genre names"),
    "image_params": IMAGE_PARAMS_SCHEMA,
    "synthetic": flag(),
    "backbone": text(backbones.BACKBONES),
    "input_size": integer(8, 4096),
    "weights": text(pattern=rf"imagenet|{_SHA256}|random-init-seed[0-9]{{1,10}}"),
    "weights_source": text(optional=True),
    "seed": integer(0, 2**32 - 1),
    "precision": text(("float32", "bfloat16", "float16")),
    "backbone_fingerprint": text(pattern=_SHA256),
    "num_iteration": integer(0, 10**7),
    "preprocessing": text(),
    "created": text(),
    "training": Field("an object", lambda v: None if isinstance(v, dict) else f"must be an object, got {shown(v)}"),
    PAYLOAD_FIELD: table(lambda k: bool(k), text(pattern=_SHA256), 'an object of entry names to "sha256:<64 hex digits>"'),
    PAYLOAD_SIZES: table(lambda k: bool(k), integer(0, MAX_ENTRY_BYTES), "an object of entry names to sizes in bytes"),
}
# kind -> (the further fields its header must hold, the schema of its own fields)
_KINDS: dict[str, tuple[tuple[str, ...], dict[str, Field]]] = {}


class ModelFileError(ValueError):
    """A file that is not a usable genrestudy model; ``str(err)`` is one line."""


def register_kind(name: str, *, required: Iterable[str] = (), fields: dict[str, Field] | None = None) -> str:
    """Let model files of kind ``name`` be written and read (a method module calls this once).

    Parameters
    ----------
    name : str
        The kind, as written in the header (``"end-to-end"``, ``"hybrid"``, ``"knn"``, ...).
    required : iterable of str
        Header fields a file of this kind must hold beyond :data:`COMMON_FIELDS`.
    fields : dict of str to Field, optional
        The schema of this kind's own fields (:mod:`genrestudy.models.modelschema`): every required
        field must have one, here or in :data:`COMMON_SCHEMA`.

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
    required, fields = tuple(required), dict(fields or {})
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model kind is a non-empty string, got {name!r}")
    unchecked = [k for k in required if k not in fields and k not in COMMON_SCHEMA]
    if unchecked:
        raise ValueError(f"model kind {name!r}: no schema for its field(s) {', '.join(unchecked)}")
    if name in _KINDS and _KINDS[name][0] != required:
        raise ValueError(f"model kind {name!r} is already registered with fields {_KINDS[name][0]}, not {required}")
    _KINDS[name] = (required, fields)
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
    if not is_int(version) or not 1 <= version <= FORMAT_VERSION:
        refuse(f"format version {version!r}; this genrestudy reads versions up to {FORMAT_VERSION}")
    found = header.get("kind")
    if not isinstance(found, str) or found not in _KINDS or (kind is not None and found != kind):
        hint = ("" if kind is not None or not isinstance(found, str) or found in _KINDS else
                " (the study's methods register their kinds when genrestudy.methods is imported)")
        refuse(f"kind {header.get('kind')!r}, expected {kind or ' or '.join(_KINDS)}{hint}")
    required, own = COMMON_FIELDS + _KINDS[header["kind"]][0], _KINDS[header["kind"]][1]
    missing = [k for k in required if k not in header]
    if missing:
        refuse(f"header lacks {', '.join(missing)}")
    for name, field in {**COMMON_SCHEMA, **own}.items():
        reason = field.problem(header[name]) if name in header else None
        if reason:
            refuse(f"header field {name!r} {reason}")
    sizes = header.get(PAYLOAD_SIZES)
    if sizes is not None and set(sizes) != set(header.get(PAYLOAD_FIELD) or {}):
        refuse(f"header fields {PAYLOAD_FIELD!r} and {PAYLOAD_SIZES!r} list different entries")
    return header


def read_entry(archive: zipfile.ZipFile, entry: str, limit: int, path) -> bytes:
    """The bytes of ``entry``, refused (:class:`ModelFileError`) before or while inflating past ``limit``.

    The archive's recorded size is checked first; the read itself is bounded too, since that
    size is only what the archive claims.
    """
    info = archive.getinfo(entry)  # KeyError: not in the archive
    if info.file_size > limit:
        raise ModelFileError(f"not a genrestudy model: {path} ({entry} would inflate to {info.file_size} bytes, "
                             f"more than the {limit} it may hold)")
    with archive.open(info) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"not a genrestudy model: {path} ({entry} inflates past the {limit} bytes it may hold)")
    return data


def _sha256(archive: zipfile.ZipFile, entry: str, limit: int = MAX_ENTRY_BYTES, path=None) -> str:
    """SHA-256 of ``entry``, never inflating more than ``limit`` bytes of it."""
    digest, total = hashlib.sha256(), 0
    with archive.open(entry) as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            total += len(block)
            if total > limit:
                raise ModelFileError(f"not a genrestudy model: {path or archive.filename} ({entry} inflates past "
                                     f"the {limit} bytes it may hold)")
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _write_header(archive: zipfile.ZipFile, header: dict) -> None:
    """Write ``header`` with the SHA-256 and size of every entry already in ``archive``."""
    if HEADER_ENTRY in archive.namelist():
        raise ValueError(f"{archive.filename} already has a {HEADER_ENTRY}")
    entries = [info for info in archive.infolist() if not info.filename.endswith("/")]
    hashes = {info.filename: _sha256(archive, info.filename) for info in entries}
    sizes = {info.filename: info.file_size for info in entries}
    archive.writestr(HEADER_ENTRY, json.dumps({**header, PAYLOAD_FIELD: hashes, PAYLOAD_SIZES: sizes}, indent=2,
                                              sort_keys=True, default=str))


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


def _payload_limits(archive: zipfile.ZipFile, path, header: dict) -> dict[str, int]:
    """Each payload entry's size limit, after checking its names and sizes against the header (nothing inflated)."""
    expected, sizes = header.get(PAYLOAD_FIELD), header.get(PAYLOAD_SIZES) or {}
    infos = {i.filename: i for i in archive.infolist() if i.filename != HEADER_ENTRY and not i.filename.endswith("/")}
    if expected is None:  # written before the records: the cap alone
        for entry, info in sorted(infos.items()):
            if info.file_size > MAX_ENTRY_BYTES:
                raise ModelFileError(f"not a genrestudy model: {path} ({entry} would inflate to {info.file_size} "
                                     f"bytes, more than the {MAX_ENTRY_BYTES} it may hold)")
        return {name: MAX_ENTRY_BYTES for name in infos}
    for entry in sorted(set(infos) | set(expected)):
        if entry not in expected or entry not in infos:
            reason = "not recorded in its header" if entry not in expected else "missing"
            raise ModelFileError(f"not a genrestudy model: {path} (entry {entry} is {reason}: altered)")
        limit = sizes.get(entry, MAX_ENTRY_BYTES)
        if infos[entry].file_size > limit or (entry in sizes and infos[entry].file_size != limit):
            raise ModelFileError(f"not a genrestudy model: {path} ({entry} holds {infos[entry].file_size} bytes, "
                                 f"{'its header records' if entry in sizes else 'more than the limit of'} {limit}: "
                                 "damaged or altered)")
    return {name: sizes.get(name, MAX_ENTRY_BYTES) for name in infos}


def check_payload(path, header: dict) -> None:
    """Refuse (:class:`ModelFileError`) a file whose payload differs from the sizes and hashes in its header.

    Every entry besides the header must be listed; its size is compared before it is
    inflated, and it is never inflated past that size. A file written before the hashes (no
    ``payload_sha256``) passes unchecked, within :data:`MAX_ENTRY_BYTES` per entry.
    """
    expected = header.get(PAYLOAD_FIELD)
    try:
        with zipfile.ZipFile(path) as archive:
            limits = _payload_limits(archive, path, header)
            for entry in sorted(limits) if expected is not None else []:
                if _sha256(archive, entry, limits[entry], path) != expected[entry]:
                    raise ModelFileError(f"not a genrestudy model: {path} ({entry} does not match the SHA-256 "
                                         "recorded when it was saved: damaged or altered)")
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"not a genrestudy model: {path} (unreadable: {str(exc)[:160]})") from None


def read_payloads(path, header: dict, entries: Iterable[str]) -> dict[str, bytes]:
    """The bytes of ``entries`` of a model file, checked against the header's sizes and hashes when it has them."""
    check_payload(path, header)
    out, entry = {}, None
    try:
        with zipfile.ZipFile(path) as archive:
            limits = _payload_limits(archive, path, header)
            for entry in entries:
                out[entry] = read_entry(archive, entry, limits.get(entry, MAX_ENTRY_BYTES), path)
    except KeyError:
        raise ModelFileError(f"not a genrestudy model: {path} (no readable {entry}: not in the archive)") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"not a genrestudy model: {path} (unreadable {entry}: {str(exc)[:160]})") from None
    return out


def read_payload(path, header: dict, entry: str) -> bytes:
    """The bytes of ``entry`` of a model file (:func:`read_payloads`)."""
    return read_payloads(path, header, [entry])[entry]


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
            header = json.loads(read_entry(archive, HEADER_ENTRY, MAX_HEADER_BYTES, path))
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


def load_keras_model(path, *, kind: str | None = "end-to-end", expected_input=None) -> tuple[object, dict]:
    """``(keras.Model, metadata)`` of a Keras model file of ``kind`` (None: any kind).

    ``expected_input``, a function of the header, gives the input shape (without the batch
    axis) the header implies; a network taking another is refused.

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
    expected = expected_input(meta) if expected_input is not None else None
    if expected is not None and tuple(model.inputs[0].shape[1:]) != tuple(expected):
        raise ModelFileError(f"not a genrestudy model: {path} (its network takes inputs of shape "
                             f"{tuple(model.inputs[0].shape[1:])}, its header implies {expected})")
    return model, meta
