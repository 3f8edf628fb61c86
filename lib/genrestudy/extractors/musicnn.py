"""A music-trained frozen extractor: musicnn's published taggers, ported to Keras 3.

The study's frozen ImageNet backbones were trained on photographs; musicnn (Pons & Serra,
2019) was trained on music, to tag the Million Song Dataset (``MSD_*``, 50 tags) and
MagnaTagATune (``MTT_*``, 50 tags). Its weights come from the pinned ``musicnn`` sdist
(:mod:`genrestudy.extractors.musicnn_weights`); this module is its architecture in Keras 3
(backend-agnostic), loaded by the checkpoint's variable names, and its input representation.

Input representation (the authors'): 16 kHz mono, STFT with ``n_fft`` 512 and hop 256, 96
mel bands (librosa's defaults otherwise), kept in float16 as the authors stored it, then
``log10(10000 · x + 1)``; the taggers read patches of 187 frames (3 s). Here the mel patch
of every study segment is computed once from the cached decoded segments
(:func:`mel_patches`, through :func:`genrestudy.signals.signal_set.segment_features`) and the network
runs over that cache (:func:`embeddings`).

Embeddings, as the published benchmarks used them: the ``penultimate`` layer (200 units for
musicnn, the flattened last pool for vgg) and the ``mean_pool``/``max_pool`` of the mid-level
features over time (753 each for musicnn; for vgg, the fourth pool's mean and max over time
and frequency). The network's 50 tag probabilities come with them (:data:`OUTPUTS`).

>>> cfg = ARCHITECTURES["MSD_musicnn"]
>>> sum(OUTPUT_WIDTHS[cfg.family].values())
1756
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import cache
from . import musicnn_weights
from .musicnn_architecture import ARCHITECTURES, OUTPUT_WIDTHS, OUTPUTS, build_model  # noqa: F401
from .musicnn_weights import WeightsMissing  # noqa: F401  (re-exported: the one error of a missing download)

#: the representation's cache name (bump when :func:`mel_patches` changes its numbers)
MEL_CACHE_NAME = "musicnn-mel-v1"
_EMBEDDINGS_KIND = "musicnn-embeddings"
_EMBEDDINGS_VERSION = 1
#: patches per forward pass: on a CPU speed hardly changes from 2 to 64 patches, while the peak memory
#: grows with every patch (keeps the demo's extraction under notebook 07's memory limit)
BATCH_SIZE = 2
#: which outputs make the embedding, by name (the published benchmarks' choice: all three)
EMBEDDINGS = ("penultimate", "mean_pool", "max_pool")


@dataclass(frozen=True)
class MelParams:
    """musicnn's input representation (the authors' settings; part of every cache key)."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    n_frames: int = 187

    def __post_init__(self):
        ok = {"sample_rate": self.sample_rate > 0, "n_fft": self.n_fft >= 16, "hop_length": self.hop_length >= 1,
              "n_mels": self.n_mels >= 1, "n_frames": self.n_frames >= 1}
        bad = [f"{k}={getattr(self, k)!r}" for k, good in ok.items() if not good]
        if bad:
            raise ValueError(f"invalid musicnn input parameters {', '.join(bad)}")


# ---------------------------------------------------------------- the input representation

def mel_spectrogram(signal: np.ndarray, *, sample_rate: int, params: MelParams = MelParams()) -> np.ndarray:
    """``(..., frames, n_mels)`` float16 mel power of ``signal`` (``(..., samples)`` at ``sample_rate``),
    resampled to ``params.sample_rate`` first (soxr, as librosa.load does)."""
    import librosa

    y = np.asarray(signal, dtype=np.float32)
    if sample_rate != params.sample_rate:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=params.sample_rate, res_type="soxr_hq", axis=-1)
    mel = librosa.feature.melspectrogram(y=y, sr=params.sample_rate, n_fft=params.n_fft,
                                         hop_length=params.hop_length, n_mels=params.n_mels)
    return np.swapaxes(mel, -1, -2).astype(np.float16)


def mel_patches(segments: np.ndarray, *, sample_rate: int, n_fft: int = 512, hop_length: int = 256,
                n_mels: int = 96, n_frames: int = 187, target_rate: int = 16000) -> np.ndarray:
    """``(k, n_frames, n_mels)`` float16 mel patches of one clip's ``(k, samples)`` segments.

    The extractor of :func:`mel_set` (thread-safe): each segment's first ``n_frames`` frames,
    zero-padded when a segment is shorter. Fed to the network through :func:`log_compress`.
    """
    params = MelParams(sample_rate=target_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, n_frames=n_frames)
    mel = mel_spectrogram(segments, sample_rate=sample_rate, params=params)[:, :n_frames]
    if mel.shape[1] < n_frames:
        mel = np.pad(mel, ((0, 0), (0, n_frames - mel.shape[1]), (0, 0)))
    return mel


def log_compress(mel: np.ndarray) -> np.ndarray:
    """The network's input, ``log10(10000 · x + 1)`` in float32 of the float16 mel power.

    (The authors' NumPy < 1.17 promoted ``10000 * float16`` to float32; in float16 the product
    overflows for loud bins.)
    """
    return np.log10(10000.0 * np.asarray(mel, dtype=np.float32) + 1.0)


def clip_patches(signal: np.ndarray, *, sample_rate: int, params: MelParams = MelParams()) -> np.ndarray:
    """The authors' tagging input of a whole clip: its mel, cut into consecutive ``n_frames`` patches.

    Raises :class:`genrestudy.signals.segments.ClipTooShortError` (a ``ValueError``; the study's one
    message for a clip too short, as ``genrestudy predict`` words it) when the clip is shorter
    than one patch.
    """
    from ..signals.segments import ClipTooShortError

    mel = mel_spectrogram(signal, sample_rate=sample_rate, params=params)
    count = (len(mel) - params.n_frames) // params.n_frames + 1 if len(mel) >= params.n_frames else 0
    if count < 1:
        # librosa's centred frames: 1 + samples // hop, so a patch needs (n_frames - 1) * hop samples
        least = (params.n_frames - 1) * params.hop_length * sample_rate // params.sample_rate
        raise ClipTooShortError.of(len(signal), least, sample_rate, f"{params.n_frames}-frame patch")
    return np.stack([mel[i * params.n_frames:(i + 1) * params.n_frames] for i in range(count)])


def mel_set(signal_set, params: MelParams = MelParams(), *, n_jobs: int = -1, cache_root=None):
    """The mel patches of every segment of ``signal_set`` (one decode per clip; cached)."""
    from ..signals.signal_set import segment_features

    kwargs = {"n_fft": params.n_fft, "hop_length": params.hop_length, "n_mels": params.n_mels,
              "n_frames": params.n_frames, "target_rate": params.sample_rate}
    return segment_features(signal_set, mel_patches, name=MEL_CACHE_NAME, params=kwargs, n_jobs=n_jobs,
                            libraries=("numpy", "scipy", "librosa", "soxr"), cache_root=cache_root)


# ---------------------------------------------------------------- the network

_MODELS: dict[str, object] = {}


def load_model(model: str = "MSD_musicnn", *, cache_root=None):
    """The Keras 3 port of ``model`` with its published weights (built once per process).

    Raises :class:`WeightsMissing` (one line) when the weights have not been fetched.
    """
    key = f"{model}@{cache_root}"
    if key not in _MODELS:
        if model not in ARCHITECTURES:
            raise ValueError(f"unknown musicnn model {model!r}; expected one of {', '.join(ARCHITECTURES)}")
        weights = musicnn_weights.read_checkpoint(model, cache_root)
        _MODELS[key] = build_model(ARCHITECTURES[model], weights)
    return _MODELS[key]


def parameter_count(model: str = "MSD_musicnn", *, cache_root=None) -> int:
    """Trainable and non-trainable parameters of the port (the checkpoint's size, optimiser slots aside)."""
    return int(load_model(model, cache_root=cache_root).count_params())


def run_network(model: str, mel: np.ndarray, *, batch_size: int = BATCH_SIZE, cache_root=None) -> dict[str, np.ndarray]:
    """``{output: (n, width)}`` of :data:`OUTPUTS` for ``(n, n_frames, n_mels)`` mel patches."""
    from keras import ops

    network = load_model(model, cache_root=cache_root)
    parts: dict[str, list] = {name: [] for name in OUTPUTS}
    for start in range(0, len(mel), batch_size):
        out = network(log_compress(mel[start:start + batch_size]), training=False)
        for name in OUTPUTS:
            parts[name].append(ops.convert_to_numpy(out[name]).astype(np.float32, copy=False))
    return {name: np.concatenate(parts[name]) if parts[name] else np.zeros((0, 0), np.float32) for name in OUTPUTS}


# ---------------------------------------------------------------- embeddings of the study's segments

@dataclass
class MusicnnEmbeddings:
    """The network's outputs for every segment of a mel set (row for row).

    Attributes
    ----------
    root : Path
        The cache entry (``values.npy``, ``segments.csv``, ``meta.json``).
    values : np.ndarray
        ``(n_segments, Σ widths)`` float32, memory-mapped: the :data:`OUTPUTS` side by side.
    segments : pd.DataFrame
        ``segment_id``, ``track_id``, ``label``, ``segment``, ``path``.
    meta : dict
        ``model``, ``weights``, ``mel_cache``, ``columns`` (output → [start, stop]), timing and peak RSS.
    """

    root: object
    values: np.ndarray
    segments: pd.DataFrame
    meta: dict

    @property
    def key(self) -> str:
        return self.root.name

    def output(self, name: str) -> np.ndarray:
        start, stop = self.meta["columns"][name]
        return self.values[:, start:stop]

    def embedding(self, outputs=EMBEDDINGS) -> np.ndarray:
        """``(n_segments, d)`` float32: the named outputs side by side (default: :data:`EMBEDDINGS`)."""
        return np.concatenate([self.output(name) for name in outputs], axis=1)


def _open_embeddings(root) -> MusicnnEmbeddings:
    from ..signals.segments import open_segment_entry

    root, meta, values, segments = open_segment_entry(root, "values.npy", what="musicnn embedding",
                                                      builder="genrestudy.extractors.musicnn.embeddings")
    if len(segments) != values.shape[0]:
        raise cache.CacheError(f"{root}: {len(segments)} segments but {values.shape[0]} rows; delete it to rebuild")
    return MusicnnEmbeddings(root=root, values=values, segments=segments, meta=meta)


def _build_embeddings(mels, model: str, batch_size: int, cache_root, entry) -> dict:
    from tqdm.auto import tqdm

    from ..progress import progress_bar

    load_model(model, cache_root=cache_root)  # built before the clock starts: extraction alone is timed
    started, chunk = time.perf_counter(), 256
    blocks = []
    for start in progress_bar(range(0, len(mels.values), chunk), desc=f"{model} embeddings", unit="chunk"):
        out = run_network(model, np.asarray(mels.values[start:start + chunk]), batch_size=batch_size,
                          cache_root=cache_root)
        blocks.append(np.concatenate([out[name] for name in OUTPUTS], axis=1))
    seconds = time.perf_counter() - started
    values = np.concatenate(blocks)
    columns, start = {}, 0
    for name in OUTPUTS:
        width = OUTPUT_WIDTHS[ARCHITECTURES[model].family][name]
        columns[name], start = [start, start + width], start + width
    if values.shape[1] != start:
        raise ValueError(f"{model}: outputs of width {values.shape[1]}, expected {start}")
    with cache.write_guard(entry):
        cache.save_array(entry / "values.npy", values)
        cache.write_csv(entry / "segments.csv", mels.segments)
    tqdm.write(f"{model}: {len(values)} segments in {seconds:.1f} s ({len(values) / max(seconds, 1e-9):.1f}/s), "
               f"{values.shape[1]} outputs each → {entry}")
    return {"model": model, "weights": musicnn_weights.weights_hash(), "mel_cache": mels.key, "columns": columns,
            "synthetic": bool(mels.meta.get("synthetic", False)), "n_segments": len(values),
            "seconds": seconds, "segments_per_second": len(values) / max(seconds, 1e-9),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "parameters": parameter_count(model, cache_root=cache_root),
            "versions": cache.library_versions("keras", "tensorflow", "jax", "torch", "numpy")}


def embedding_key(mel_key: str, model: str) -> str:
    """Key of a model's outputs on a mel set: the mel cache, the model, the weights' hash, the port's version."""
    import keras

    return cache.cache_key(f"musicnn-embeddings-v{_EMBEDDINGS_VERSION}", mel_key, model,
                           musicnn_weights.weights_hash(), keras.config.backend(),
                           cache.library_versions("keras"))


def embeddings(signal_set, model: str = "MSD_musicnn", *, params: MelParams = MelParams(),
               batch_size: int = BATCH_SIZE, n_jobs: int = -1, cache_root=None) -> MusicnnEmbeddings:
    """``model``'s outputs for every segment of ``signal_set`` (mel patches and outputs cached).

    Raises :class:`WeightsMissing` (one line) when the weights have not been fetched.
    """
    musicnn_weights.checkpoint_dir(model, cache_root)  # a missing download fails before any work
    mels = mel_set(signal_set, params, n_jobs=n_jobs, cache_root=cache_root)
    build = lambda entry: _build_embeddings(mels, model, batch_size, cache_root, entry)  # noqa: E731
    return cache.open_or_build(_EMBEDDINGS_KIND, embedding_key(mels.key, model), open_entry=_open_embeddings,
                               build=build, root=cache_root)


def study_embeddings(inputs, model: str = "MSD_musicnn", *, outputs=EMBEDDINGS, image_set=None):
    """``(embedding, meta)``: ``(n_segments, d)`` float32 rows aligned with ``study.image_set(inputs)``'s
    rows, and the cache entry's meta (``parameters``, ``seconds``, ``segments_per_second``, ``peak_rss_mb``).

    What notebook 07 needs to put musicnn beside the ImageNet backbones.
    """
    from ..run import study
    from ..signals.spectral import check_aligned

    found = embeddings(study.signal_set(inputs), model)
    images = image_set if image_set is not None else study.image_set(inputs)
    check_aligned(found.segments, images.segments)
    return found.embedding(outputs), {**found.meta, "key": found.key}


def extraction_step(*, musicnn_model: str, **inputs) -> dict:
    """In a fresh process (:func:`genrestudy.efficiency.measure_step`): ``musicnn_model``'s outputs for the
    inputs' segments into their cache, timed; when cached already, computed again without storing, to time them.

    Returns ``images`` (segments), ``seconds``, ``images_per_second`` and ``parameters``.
    """
    from ..run import study

    given = study.StudyInputs(**inputs)
    signal_set = study.signal_set(given)
    musicnn_weights.checkpoint_dir(musicnn_model)
    mels = mel_set(signal_set)
    entry = cache.entry_dir(_EMBEDDINGS_KIND, embedding_key(mels.key, musicnn_model))
    if cache.is_complete(entry):
        load_model(musicnn_model)
        started = time.perf_counter()
        for start in range(0, len(mels.values), 256):
            run_network(musicnn_model, np.asarray(mels.values[start:start + 256]))
        seconds = time.perf_counter() - started
    else:
        seconds = float(embeddings(signal_set, musicnn_model).meta["seconds"])
    n = len(mels.values)
    return {"images": n, "seconds": seconds, "images_per_second": n / max(seconds, 1e-9),
            "parameters": parameter_count(musicnn_model)}


def measure_extraction(inputs, model: str = "MSD_musicnn") -> dict:
    """``model``'s extraction over the inputs' segments measured in a fresh process (cached per machine):
    ``images_per_second``, ``peak_rss_mb`` (the whole process), ``rss_before_mb``, ``seconds``, ``images``
    (segments), ``parameters``: the ``cost`` notebook 07 shows for each extractor.

    Raises :class:`WeightsMissing` (one line) when the weights have not been fetched.
    """
    from .. import device, efficiency
    from ..run import study

    musicnn_weights.checkpoint_dir(model)
    mels = mel_set(study.signal_set(inputs))
    key = cache.cache_key("musicnn-extraction-cost-v1", embedding_key(mels.key, model), efficiency.hardware(),
                          device.accelerator(), BATCH_SIZE)

    def build(folder) -> dict:
        report = efficiency.measure_step("genrestudy.extractors.musicnn:extraction_step",
                                         {"musicnn_model": model, **inputs.as_dict()})
        return {"model": model, "hardware": efficiency.hardware(), **report["result"],
                "peak_rss_mb": report["peak_rss_mb"], "rss_before_mb": report["rss_before_mb"]}

    return cache.open_or_build("extraction-cost", key, open_entry=cache.read_meta, build=build)


# ---------------------------------------------------------------- tags of audio files

@dataclass
class FileTags:
    """The tags of one audio file: tag → mean probability over its 3 s patches."""

    path: str
    model: str
    probabilities: dict
    patches: int

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self, k: int) -> dict:
        return {"path": self.path, "model": self.model, "tags": dict(self.top(k)), "patches": self.patches}


def tag_file(path, model: str = "MSD_musicnn", *, cache_root=None) -> FileTags:
    """The authors' tagging of one file: 16 kHz, consecutive 3 s patches, tag probabilities averaged.

    Raises ``genrestudy.data.audio.AudioError`` or ``ValueError`` (one line) for a file that
    cannot be tagged, :class:`WeightsMissing` when the weights have not been fetched.
    """
    from ..data.audio import load_audio

    params = MelParams()
    signal, _ = load_audio(path, sample_rate=params.sample_rate)
    patches = clip_patches(signal, sample_rate=params.sample_rate, params=params)
    tags = run_network(model, patches, cache_root=cache_root)["tags"].mean(axis=0)
    labels = ARCHITECTURES[model].labels
    return FileTags(path=str(path), model=model, probabilities={t: float(p) for t, p in zip(labels, tags)},
                    patches=len(patches))
