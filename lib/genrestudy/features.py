"""Spectrogram images → frozen ImageNet backbone features (the hybrid model's first half).

A backbone from ``keras.applications`` (ResNet-50 by default, the paper's) is built
without its classifier (``include_top=False``), frozen, and closed with global average
pooling, so each image becomes one vector (2048 numbers for ResNet-50). Each backbone
gets its own input size and its own ``preprocess_input`` applied to 0–255 images:
ResNet-50's is Caffe-style (RGB → BGR, ImageNet channel means subtracted, no scaling);
rescaling to [0, 1] instead is the classic mistake that leaves a frozen ResNet-50 blind.

Extraction streams batches from the memory-mapped image cache (the image set is never
copied into memory), prepares the next batch on a background thread while the current
one runs through a compiled inference function, and can compute in reduced precision
(bfloat16 on CPUs with bf16 instructions, float16 on GPUs) with float32 output; each
BatchNormalization that follows a convolution is folded into it (exact for a frozen
network, and it spares a pass over every activation map). Features are cached under a
key of everything that determines them.

Only Keras 3 APIs are used, so the same code runs under ``KERAS_BACKEND=tensorflow``,
``jax`` or ``torch``.
"""
from __future__ import annotations

import logging
import mmap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache
from .images import ImageSet
from .segments import LabelledSegments

log = logging.getLogger(__name__)

_CACHE_KIND = "features"
# Bump when a change in this module changes the numbers a cache entry holds.
_FORMAT_VERSION = 1

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Reduced precision computes in bf16/fp16 while keeping weights and the pooled output in float32.
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


# ---------------------------------------------------------------- the feature set

@dataclass
class FeatureSet(LabelledSegments):
    """Features of a data set, one row of :attr:`segments` per feature row.

    Attributes
    ----------
    root : Path or None
        The cache entry folder (``features.npy``, ``segments.csv``, ``meta.json``);
        None for tables built in memory or read from elsewhere.
    features : np.ndarray
        ``(n_segments, n_features)`` float32, possibly a read-only memmap.
    segments : pd.DataFrame
        ``segment_id``, ``track_id``, ``label`` and, for image-derived features,
        ``segment`` and ``path``.
    meta : dict
        Backbone, weights identity, image-cache key, precision, ``synthetic``, ...
    """

    root: Path | None
    features: np.ndarray
    segments: pd.DataFrame
    meta: dict = field(default_factory=dict)



def open_feature_set(root: Path) -> FeatureSet:
    """Open a complete feature cache entry (features memory-mapped read-only)."""
    root = Path(root)
    if not cache.is_complete(root):
        raise cache.CacheError(f"{root} is not a complete feature cache (no {cache.META_FILE}); run extract_features")
    meta = cache.read_meta(root)
    features = np.load(root / "features.npy", mmap_mode="r")
    segments = pd.read_csv(root / "segments.csv", dtype={"track_id": str, "label": str, "path": str})
    if len(segments) != features.shape[0]:
        raise cache.CacheError(f"{root}: {len(segments)} segment rows but {features.shape[0]} feature rows; "
                               "delete it to rebuild")
    return FeatureSet(root=root, features=features, segments=segments, meta=meta)


# ---------------------------------------------------------------- backbones

@dataclass(frozen=True)
class Backbone:
    """How to build and feed one ``keras.applications`` backbone.

    Attributes
    ----------
    name : str
        Constructor name in ``keras.applications``.
    module : str
        Submodule of ``keras.applications`` holding its ``preprocess_input``.
    preprocessing : str
        What that ``preprocess_input`` does to 0–255 RGB values (recorded in the cache meta).
    input_size : int
        Native input size (images are resized to it inside the model).
    min_size : int
        Smallest input Keras accepts for it.
    n_features : int
        Length of the pooled feature vector.
    """

    name: str
    module: str
    preprocessing: str
    input_size: int
    min_size: int
    n_features: int

    def imagenet_file(self, input_size: int) -> str:
        """Name of the ImageNet no-top weights file Keras downloads into ``<KERAS_HOME>/models``."""
        stem = self.name.lower()
        if stem.startswith("efficientnet"):
            return f"{stem}_notop.h5"
        if stem == "mobilenetv2":
            # Keras ships weights for these sizes and falls back to the 224 ones otherwise.
            rows = input_size if input_size in (96, 128, 160, 192, 224) else 224
            return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
        return f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"


_CAFFE = "caffe: RGB->BGR, minus ImageNet BGR means (103.939, 116.779, 123.68), 0-255 scale"
_TORCH = "torch: /255, minus ImageNet means, divided by ImageNet stds (RGB)"
_TF = "tf: /127.5 - 1 (RGB)"
_IN_MODEL = "none outside the model: the network rescales and normalises 0-255 RGB itself"

BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("ResNet50", "resnet50", _CAFFE, 224, 32, 2048),
    Backbone("DenseNet201", "densenet", _TORCH, 224, 32, 1920),
    Backbone("EfficientNetB0", "efficientnet", _IN_MODEL, 224, 32, 1280),
    Backbone("EfficientNetB6", "efficientnet", _IN_MODEL, 528, 32, 2304),
    Backbone("EfficientNetB7", "efficientnet", _IN_MODEL, 600, 32, 2560),
    Backbone("Xception", "xception", _TF, 299, 71, 2048),
    Backbone("MobileNetV2", "mobilenet_v2", _TF, 224, 32, 1280),
)}


def backbone_spec(backbone: str) -> Backbone:
    """The :class:`Backbone` named ``backbone`` (one of :data:`BACKBONES`)."""
    try:
        return BACKBONES[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}") from None


def preprocess_images(images: np.ndarray, *, backbone: str = "ResNet50") -> np.ndarray:
    """Apply ``backbone``'s own ``preprocess_input`` to 0–255 RGB images.

    Parameters
    ----------
    images : np.ndarray
        ``(n, h, w, 3)`` uint8 RGB images with their 0–255 values (as
        :meth:`genrestudy.images.ImageSet.rgb` gives them), never rescaled to [0, 1].
    backbone : str
        One of :data:`BACKBONES`.

    Returns
    -------
    np.ndarray
        ``(n, h, w, 3)`` float32, what the backbone was trained on (for ResNet-50: BGR
        channel order, ImageNet means subtracted, still on the 0–255 scale).
    """
    import keras

    spec = backbone_spec(backbone)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images with 0-255 values, got dtype {images.dtype}; "
                         "pass the cached images unscaled (each backbone's preprocess_input does the scaling)")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images of shape (n, height, width, 3), got shape {images.shape}")
    module = getattr(keras.applications, spec.module)
    return np.asarray(module.preprocess_input(images.astype(np.float32)), dtype=np.float32)


def cpu_supports_bfloat16() -> bool:
    """Whether the CPU has bfloat16 dot-product instructions (x86 AVX512-BF16/AMX, Arm BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: nothing cheap and reliable to ask, so assume no
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def accelerator() -> str:
    """``"gpu"`` when the Keras backend sees a GPU, else ``"cpu"``."""
    import keras

    if keras.config.backend() == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    try:
        return "gpu" if keras.distribution.list_devices("gpu") else "cpu"
    except RuntimeError:  # jax raises when it has no GPU platform at all
        return "cpu"


def resolve_precision(precision: str = "auto") -> str:
    """``"auto"`` → float16 on a GPU, bfloat16 on a CPU with bf16 instructions, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if accelerator() == "gpu":
        return "float16"
    return "bfloat16" if cpu_supports_bfloat16() else "float32"


def weights_identity(weights: str | Path | None, *, seed: int = 0) -> str:
    """What the backbone's weights are, for cache keys and metadata.

    ``"imagenet"``, ``"sha256:<hex>"`` of a local weights file, or ``"random-init-seed<N>"``
    for ``weights=None`` (random initialisation is made deterministic by ``seed``).
    """
    if weights is None:
        return f"random-init-seed{int(seed)}"
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found; expected 'imagenet', None or the path of a "
                                "Keras weights file (.h5 / .weights.h5) for the backbone without its top")
    return f"sha256:{cache.file_sha256(path)}"


def _keras_models_dir() -> Path:
    # keras.utils.get_file keeps downloads in <keras home>/models; ask Keras where its home is
    # (it honours KERAS_HOME) rather than guessing.
    from keras.src.backend.config import keras_home

    return Path(keras_home()).expanduser() / "models"


def imagenet_weights_path(backbone: str = "ResNet50", input_size: int | None = None) -> Path:
    """Where Keras keeps (and looks for) the ImageNet no-top weights of ``backbone``."""
    spec = backbone_spec(backbone)
    return _keras_models_dir() / spec.imagenet_file(input_size or spec.input_size)


def application(spec: Backbone, *, weights: str | Path | None, input_size: int):
    """The bare ``keras.applications`` network (no top, no pooling), weights loaded."""
    import keras

    constructor = getattr(keras.applications, spec.name)
    kwargs = dict(include_top=False, pooling=None, input_shape=(input_size, input_size, 3))
    if weights != "imagenet":
        return constructor(weights=None if weights is None else str(Path(weights).expanduser()), **kwargs)
    expected = imagenet_weights_path(spec.name, input_size)
    try:
        return constructor(weights="imagenet", **kwargs)
    except Exception as exc:  # Keras' download raises a bare Exception ("URL fetch failure ...")
        if expected.is_file():
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileNotFoundError(
            f"ImageNet weights for {spec.name} are not in the Keras cache and could not be downloaded "
            f"({reason}); place {expected.name} in {expected.parent} or pass weights=<path to that file>"
        ) from None


def _folding_pairs(model) -> dict[str, str]:
    """``{batchnorm name: convolution name}`` for every BatchNormalization that can be folded.

    Foldable: its only input is a Conv2D / DepthwiseConv2D / SeparableConv2D without an
    activation whose output goes nowhere else, and it normalises the channel axis.
    """
    import keras

    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    producer, consumers = {}, {}
    for layer in model.layers:
        producer[id(layer.output)] = layer
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        for tensor in inputs:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or isinstance(layer.input, (list, tuple)):
            continue
        conv = producer.get(id(layer.input))
        if (isinstance(conv, convs) and consumers.get(id(conv.output)) == 1
                and conv.get_config().get("activation") == "linear"
                and conv.data_format == "channels_last" and layer.axis in (-1, 3)):
            pairs[layer.name] = conv.name
    return pairs


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """Weights of ``conv`` with the inference-time affine map of ``bn`` folded in (plus a bias)."""
    import keras

    mean = bn.moving_mean.numpy().astype(np.float64)
    var = bn.moving_variance.numpy().astype(np.float64)
    gamma = bn.gamma.numpy().astype(np.float64) if bn.scale else np.ones_like(mean)
    beta = bn.beta.numpy().astype(np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    weights = [w.astype(np.float64) for w in conv.get_weights()]
    bias = weights.pop() if conv.use_bias else np.zeros_like(mean)
    if isinstance(conv, keras.layers.SeparableConv2D):
        depthwise, pointwise = weights
        weights = [depthwise, pointwise * scale]
    elif isinstance(conv, keras.layers.DepthwiseConv2D):
        (kernel,) = weights
        weights = [kernel * scale.reshape(kernel.shape[2], kernel.shape[3])]
    else:
        (kernel,) = weights
        weights = [kernel * scale]
    return [w.astype(np.float32) for w in weights] + [((bias - mean) * scale + beta).astype(np.float32)]


def _inference_copy(model, *, policy: str):
    """``model`` with foldable BatchNormalizations folded into their convolutions, in ``policy``.

    Folding is exact arithmetic for a frozen network; it removes a normalisation pass over
    every activation map, which in reduced precision would also cost a cast to float32 and
    back around each BatchNormalization. Under a mixed policy, convolution and dense layers
    store their weights in the compute type: a mixed layer would cast its float32 weights to
    that type on every call anyway, so the numbers are the same, with half the weight memory
    and no per-call cast; the other layers (normalisations, rescalings) keep float32 weights.
    """
    import keras

    pairs = _folding_pairs(model)
    folded_convs = set(pairs.values())
    weighty = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)
    compute_policy = policy.removeprefix("mixed_")

    class FoldedBatchNorm(keras.layers.Layer):
        """Stands in for a BatchNormalization folded into the convolution before it."""

        def call(self, inputs, mask=None):
            return inputs

    def clone(layer):
        config = dict(layer.get_config(), dtype=compute_policy if isinstance(layer, weighty) else policy)
        if layer.name in pairs:
            return FoldedBatchNorm(name=layer.name, dtype=policy)
        if layer.name in folded_convs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    originals = {layer.name: layer for layer in model.layers}
    bn_of = {conv: bn for bn, conv in pairs.items()}
    for layer in copy.layers:
        if layer.name in bn_of:
            layer.set_weights(_folded_weights(originals[layer.name], originals[bn_of[layer.name]]))
        elif layer.name not in pairs and layer.weights:
            layer.set_weights(originals[layer.name].get_weights())
    return copy


def build_backbone(backbone: str = "ResNet50", *, weights: str | Path | None = None,
                   image_size: int | None = None, input_size: int | None = None,
                   precision: str = "float32", seed: int = 0):
    """A frozen feature extractor: preprocessed RGB images → pooled float32 features.

    Parameters
    ----------
    backbone : str
        One of :data:`BACKBONES` (``"ResNet50"``, the paper's, by default).
    weights : {"imagenet", None} or path
        ``"imagenet"`` (Keras downloads them once into ``<KERAS_HOME>/models``; offline and
        not there, a one-line FileNotFoundError says which file to put where), the path of
        a local weights file of the network without its top, or None for a random
        initialisation fixed by ``seed``.
    image_size : int, optional
        Side of the images fed in; they are resized (bilinear) to ``input_size`` inside the
        model. Default: ``input_size``.
    input_size : int, optional
        Side the backbone runs at. Default: the backbone's own (224 for ResNet-50).
    precision : {"float32", "bfloat16", "float16", "auto"}
        Compute precision (see :func:`resolve_precision` for ``"auto"``). In reduced
        precision, convolutions compute in and store their weights in bf16/fp16, while
        normalisation layers keep float32 weights and the pooled output is float32.
    seed : int
        Seed of the random initialisation when ``weights`` is None.

    Returns
    -------
    keras.Model
        Input ``(image_size, image_size, 3)`` float32 (the output of
        :func:`preprocess_images`), output ``(n_features,)`` float32; not trainable.
        BatchNormalizations that directly follow a convolution are folded into it.
    """
    import keras

    spec = backbone_spec(backbone)
    input_size = int(input_size or spec.input_size)
    image_size = int(image_size or input_size)
    if input_size < spec.min_size:
        raise ValueError(f"{spec.name} needs input_size >= {spec.min_size}, got {input_size}")
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    policy = _POLICIES[resolve_precision(precision)]
    if weights is not None and weights != "imagenet":
        weights_identity(weights)  # a missing file fails here with one clear line
    keras.utils.set_random_seed(int(seed))
    net = _inference_copy(application(spec, weights=weights, input_size=input_size), policy=policy)
    net.trainable = False
    inputs = keras.Input((image_size, image_size, 3), dtype="float32", name="preprocessed_images")
    x = inputs
    if image_size != input_size:
        # Resizing after preprocess_input equals resizing before: bilinear weights sum to one
        # and every preprocess_input is a per-channel affine map.
        x = keras.layers.Resizing(input_size, input_size, interpolation="bilinear", dtype="float32")(x)
    x = net(x, training=False)
    outputs = keras.layers.GlobalAveragePooling2D(dtype="float32", name="avg_pool")(x)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_features")
    model.trainable = False
    return model


# ---------------------------------------------------------------- streaming extraction

class _PeakRSS:
    """Samples this process's resident memory on a thread; ``peak_mb`` after the block."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_mb = 0.0

    def _sample(self):
        while True:
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            if self._stop.wait(self._interval):
                return

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)


def _release_pages(images: np.ndarray, start: int, stop: int) -> None:
    """Unmap rows ``start:stop`` of a memory-mapped ``images`` from this process.

    Pages of a mapped file that were read count in the process's resident memory until the
    kernel needs them back, so streaming a large image set would look like holding it all.
    The pages stay in the page cache; only this process's mapping of them is dropped. Only
    read-only maps qualify: dropping pages of a copy-on-write map would discard its edits.
    """
    mm = getattr(images, "_mmap", None)
    if (mm is None or getattr(images, "mode", None) != "r" or not hasattr(mmap, "MADV_DONTNEED")
            or not images.flags.c_contiguous or stop <= start):
        return
    # byte positions of the rows inside the mapping (``images`` may be a view into it)
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    first = images[start:stop].ctypes.data - base
    last = first + images[start:stop].nbytes
    page = mmap.PAGESIZE
    begin, end = -(-first // page) * page, (last // page) * page
    if end > begin:
        mm.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def stream_features(model, images: np.ndarray, *, backbone: str = "ResNet50", batch_size: int = 32,
                    progress: bool = True, desc: str = "features") -> np.ndarray:
    """Run ``model`` over ``images`` batch by batch; the next batch is prepared while one computes.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_backbone`.
    images : np.ndarray
        ``(n, size, size)`` grey or ``(n, size, size, 3)`` RGB uint8 images, typically a
        read-only memmap; only one batch (plus the one being prepared) is in memory at a time.
    backbone : str
        Whose ``preprocess_input`` to apply (the one ``model`` was built for).
    batch_size : int
        Images per call; every call gets exactly this many (the last batch is padded), so the
        compiled inference function is traced once.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Label of the progress bar.

    Returns
    -------
    np.ndarray
        ``(n, n_features)`` float32.
    """
    from tqdm import tqdm

    n = len(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"expected (n, size, size) grey or (n, size, size, 3) RGB images, got shape {images.shape}")
    n_features = int(model.output.shape[-1])
    out = np.empty((n, n_features), dtype=np.float32)
    if n == 0:
        return out

    def prepare(start: int) -> np.ndarray:
        stop = min(start + batch_size, n)
        chunk = np.array(images[start:stop])  # a copy, so the mapped pages can be let go
        _release_pages(images, start, stop)
        if chunk.ndim == 3:
            chunk = np.repeat(chunk[..., None], 3, axis=-1)
        batch = preprocess_images(chunk, backbone=backbone)
        if stop - start < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - (stop - start), *batch.shape[1:]), batch.dtype)])
        return batch

    starts = range(0, n, batch_size)
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        pending = pool.submit(prepare, starts[0])
        for i, start in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(prepare, starts[i + 1])
            stop = min(start + batch_size, n)
            out[start:stop] = np.asarray(model.predict_on_batch(batch))[: stop - start]
            bar.update(stop - start)
    return out


def feature_cache_key(image_set: ImageSet, *, backbone: str, weights_id: str, input_size: int,
                      precision: str) -> str:
    """Key of a feature cache entry: the image cache, the network, its weights, the arithmetic, versions."""
    import keras

    backend = keras.config.backend()
    return cache.cache_key(f"features-v{_FORMAT_VERSION}", image_set.key, backbone, weights_id, input_size,
                           precision, backend, cache.library_versions("keras", backend, "numpy"))


def extract_features(image_set: ImageSet, *, backbone: str = "ResNet50", weights: str | Path | None = None,
                     input_size: int | None = None, batch_size: int = 32, precision: str = "auto",
                     seed: int = 0, cache_root: Path | None = None, progress: bool = True) -> FeatureSet:
    """Features of every image of ``image_set`` from a frozen backbone, computed once and cached.

    Parameters
    ----------
    image_set : ImageSet
        The cached mel images (from :func:`genrestudy.study.image_set`).
    backbone : str
        One of :data:`BACKBONES`; ``"ResNet50"`` (2048 features) is the paper's.
    weights : {"imagenet", None} or path
        See :func:`build_backbone`. None (random initialisation) is the offline demo setting.
    input_size : int, optional
        Side the backbone runs at (default: its own, 224 for ResNet-50).
    batch_size : int
        Images per inference call. Only speed and memory depend on it (on this study's 2-core
        CPU, 16, 32 and 64 ran at the same speed; 64 needs ~170 MB more), so it is not part
        of the key.
    precision : {"auto", "float32", "bfloat16", "float16"}
        Compute precision; ``"auto"`` takes float16 on a GPU, bfloat16 on a CPU with bf16
        instructions, float32 otherwise. The resolved precision is part of the key.
    seed : int
        Seed of the random initialisation when ``weights`` is None.
    cache_root : path, optional
        Cache folder (default :func:`genrestudy.paths.cache_dir`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    FeatureSet
        ``features`` (n_segments × n_features float32, memory-mapped), ``segments`` as in
        the image set, ``meta`` with the backbone, weights identity, image-cache key,
        preprocessing, precision and the measured ``extraction`` throughput and peak memory.
    """
    spec = backbone_spec(backbone)
    input_size = int(input_size or spec.input_size)
    resolved = resolve_precision(precision)
    weights_id = weights_identity(weights, seed=seed)
    key = feature_cache_key(image_set, backbone=spec.name, weights_id=weights_id,
                            input_size=input_size, precision=resolved)
    entry = cache.entry_dir(_CACHE_KIND, key, cache_root)
    if cache.is_complete(entry):
        try:
            return open_feature_set(entry)
        except (cache.CacheError, OSError, ValueError) as exc:
            log.warning("feature cache %s is damaged (%s); rebuilding it", entry, exc)
            (entry / cache.META_FILE).unlink(missing_ok=True)
    cache.make_writable_dir(entry)

    import keras

    image_size = int(image_set.images.shape[1])
    model = build_backbone(spec.name, weights=weights, image_size=image_size, input_size=input_size,
                           precision=resolved, seed=seed)
    with _PeakRSS() as memory:
        started = time.perf_counter()
        features = stream_features(model, image_set.images, backbone=spec.name, batch_size=batch_size,
                                   progress=progress, desc=f"{spec.name} features")
        seconds = time.perf_counter() - started
    check_features(features)
    rate = len(features) / seconds if seconds > 0 else float("nan")
    log.info("%s: %d images -> %d features in %.1f s (%.1f img/s, %s, peak RSS %.0f MB)",
             spec.name, len(features), features.shape[1], seconds, rate, resolved, memory.peak_mb)

    segments = image_set.segments.reset_index(drop=True)
    cache.save_array(entry / "features.npy", features)
    cache.write_csv(entry / "segments.csv", segments)
    meta = {
        "kind": _CACHE_KIND, "key": key, "backbone": spec.name, "n_features": int(features.shape[1]),
        "n_segments": int(len(features)), "weights": weights_id,
        "weights_source": None if weights is None else str(weights), "seed": int(seed),
        "image_cache": image_set.key, "image_size": image_size, "input_size": input_size,
        "preprocessing": f"keras.applications.{spec.module}.preprocess_input ({spec.preprocessing})",
        "precision": resolved, "precision_requested": precision, "synthetic": image_set.synthetic,
        "keras_backend": keras.config.backend(), "device": accelerator(), "bn_folded": True,
        "versions": cache.library_versions("keras", keras.config.backend(), "numpy"),
        "extraction": {"seconds": round(seconds, 3), "images_per_second": round(rate, 2),
                       "batch_size": int(batch_size), "peak_rss_mb": round(memory.peak_mb, 1)},
    }
    cache.finish(entry, meta)
    return open_feature_set(entry)


# ---------------------------------------------------------------- checks and views

def feature_summary(features: np.ndarray) -> pd.Series:
    """Numbers that show whether features carry information (not constant, not degenerate).

    Constancy and sameness are judged relative to the largest magnitude in the table, so the
    check means the same at any scale (a randomly initialised network can output ~1e-13).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected a non-empty (rows, dims) feature table, got shape {x.shape}")
    finite = np.isfinite(x)
    clean = np.where(finite, x, 0.0)
    scale = float(np.abs(clean).max())
    spread = clean.std(axis=0)
    distinct = len(np.unique(np.round(clean / scale, 6), axis=0)) if scale > 0 else 1
    norms = np.linalg.norm(clean, axis=1)
    return pd.Series({
        "rows": x.shape[0], "dims": x.shape[1],
        "non_finite_values": int((~finite).sum()),
        "constant_dims_fraction": float(np.mean(spread <= 1e-6 * scale)),
        "zero_dims_fraction": float(np.mean(np.all(clean == 0, axis=0))),
        "distinct_rows": int(distinct),
        "max_abs_value": scale,
        "row_norm_min": float(norms.min()),
        "row_norm_max": float(norms.max()),
    }, dtype=object)


def check_features(features: np.ndarray) -> pd.Series:
    """Raise ValueError if features are non-finite, all constant or identical across rows.

    Returns :func:`feature_summary` of the features when they pass.
    """
    summary = feature_summary(features)
    problems = []
    if summary["non_finite_values"]:
        problems.append(f"{int(summary['non_finite_values'])} non-finite values")
    if summary["rows"] > 1 and summary["constant_dims_fraction"] >= 1.0:
        problems.append("every dimension is constant over the rows")
    if summary["rows"] > 1 and summary["distinct_rows"] < 2:
        problems.append("all rows are identical")
    if problems:
        raise ValueError(f"degenerate features ({'; '.join(problems)}): check the images and the preprocessing")
    return summary


def project_features(features: np.ndarray, *, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D projection of standardised features: ``"pca"`` or ``"tsne"`` (scikit-learn)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        reduced = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    raise ValueError(f"unknown projection method {method!r}; expected 'pca' or 'tsne'")


def plot_feature_projection(feature_set: FeatureSet, *, method: str = "pca", seed: int = 0):
    """Scatter of a 2-D projection of the features, one colour per genre."""
    import matplotlib.pyplot as plt

    xy = project_features(feature_set.features, method=method, seed=seed)
    labels = feature_set.labels
    fig, ax = plt.subplots(figsize=(7, 5.5))
    cmap = plt.get_cmap("tab10" if len(feature_set.classes) <= 10 else "tab20")
    for code, genre in enumerate(feature_set.classes):
        mask = labels == code
        ax.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.7, color=cmap(code % cmap.N), label=genre)
    meta = feature_set.meta
    ax.set_title(f"{method.upper()} of {meta.get('backbone', '?')} features "
                 f"({meta.get('weights', '?')}, {meta.get('precision', '?')})", fontsize=10)
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.legend(markerscale=2, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig
