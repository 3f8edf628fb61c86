"""The ImageNet backbones: which networks, how each is fed, and the frozen feature extractor.

A backbone from ``keras.applications`` (ResNet-50 by default, the paper's) is described by a
:class:`Backbone`: its constructor, its own ``preprocess_input`` applied to 0–255 RGB images,
its native and smallest input sizes and the length of its pooled features. ResNet-50's
preprocessing is Caffe-style (RGB → BGR, ImageNet channel means subtracted, no scaling);
rescaling to [0, 1] instead is the classic mistake that leaves a frozen ResNet-50 blind.

:func:`application` builds the bare network with its weights (ImageNet from the Keras cache,
a local file, or a seeded random initialisation), for the end-to-end model to train on.
:func:`build_backbone` closes it with global average pooling as a frozen feature extractor,
each BatchNormalization that follows a convolution folded into it (exact for a frozen
network, and it spares a pass over every activation map), in the precision
:func:`genrestudy.device.resolve_precision` gives for inference.

Keras is imported inside the functions that build networks, so reading the backbone table
(:data:`BACKBONES`, as a model file's header check does) costs nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import cache, device


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

    @property
    def preprocessing_note(self) -> str:
        """What a model file or cache records as the images' preprocessing."""
        return f"keras.applications.{self.module}.preprocess_input ({self.preprocessing})"

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
#: frozen extractors that are not ImageNet image backbones: the music-trained taggers of
#: :mod:`genrestudy.extractors.musicnn` (they read the audio, not the images), comparable in notebook 07
MUSIC_TAGGERS = ("MSD_musicnn", "MTT_musicnn")


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
        :meth:`genrestudy.signals.images.ImageSet.rgb` gives them), never rescaled to [0, 1].
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


#: a local copy of ImageNet weights instead of Keras's download (``./run_all.sh --weights PATH``)
WEIGHTS_ENV = "GENRESTUDY_WEIGHTS"


def imagenet_weights_path(backbone: str = "ResNet50", input_size: int | None = None) -> Path:
    """Where the ImageNet no-top weights of ``backbone`` are read from.

    ``$GENRESTUDY_WEIGHTS`` when set: a folder holding Keras's file names, or one file, which
    stands for the backbone whose Keras file name it bears, and for ResNet-50 (the paper's
    backbone) when it bears none; otherwise the Keras cache, where Keras downloads them.
    """
    spec = backbone_spec(backbone)
    name = spec.imagenet_file(input_size or spec.input_size)
    given = os.environ.get(WEIGHTS_ENV)
    if given:
        local = Path(given).expanduser().resolve()
        if not local.is_file():
            return local / name
        keras_names = {b.imagenet_file(b.input_size) for b in BACKBONES.values()}
        if local.name == name or (spec.name == "ResNet50" and local.name not in keras_names):
            return local
    return _keras_models_dir() / name


def application(spec: Backbone, *, weights: str | Path | None, input_size: int):
    """The bare ``keras.applications`` network (no top, no pooling), weights loaded."""
    import keras

    constructor = getattr(keras.applications, spec.name)
    kwargs = dict(include_top=False, pooling=None, input_shape=(input_size, input_size, 3))
    if weights != "imagenet":
        return constructor(weights=None if weights is None else str(Path(weights).expanduser()), **kwargs)
    expected = imagenet_weights_path(spec.name, input_size)
    if expected.is_file():  # in the Keras cache already, or a local copy (GENRESTUDY_WEIGHTS): no download
        return constructor(weights=str(expected), **kwargs)
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
        Compute precision (``"auto"``: :func:`genrestudy.device.resolve_precision` for
        inference). In reduced precision, convolutions compute in and store their weights in
        bf16/fp16, while normalisation layers keep float32 weights and the pooled output is float32.
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
    policy = device.POLICIES[device.resolve_precision(precision, training=False)]
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


