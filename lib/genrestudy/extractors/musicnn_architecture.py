"""musicnn's two architectures (Pons & Serra, 2019) in Keras 3, named as the authors' checkpoints.

* ``musicnn``: a musically motivated front-end (timbral convolutions 7×38 and 7×67 over the
  whole mel axis, temporal ones 128×1, 64×1, 32×1, each max-pooled over frequency), a
  mid-end of three 7-frame convolutions with residual connections, and a back-end that
  pools the dense-connected mid-level features over time (max and mean, interleaved as the
  authors' flatten left them) into a 200-unit dense layer (the ``penultimate``) and 50 tags.
* ``vgg``: five 3×3 convolution blocks with max pooling, 50 tags from the flattened last pool
  (MSD_vgg's checkpoint pools time and frequency in separate first blocks, as its graph shows).

Every convolution is followed by its ReLU, then batch normalisation (the authors' order).
Layers with weights carry the TF 1 layer names of the checkpoint (``conv2d_5``,
``batch_normalization_6``, ``dense``, ``1CNN``...), so :func:`assign_weights` takes each
variable by name; a name or shape that does not match fails in one line. No backend call:
the layers are Keras 3's, and the checkpoint arrives as NumPy arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: what the network returns, in the order the embedding caches store them
OUTPUTS = ("tags", "penultimate", "mean_pool", "max_pool")
#: the width of each output per family (musicnn: 561 front-end + 3 × 64 mid-end = 753 pooled features)
OUTPUT_WIDTHS = {"musicnn": {"tags": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753},
                 "vgg": {"tags": 50, "penultimate": 256, "mean_pool": 128, "max_pool": 128}}


@dataclass(frozen=True)
class Architecture:
    """One published tagger: its family (``musicnn`` or ``vgg``), input size and width settings."""

    name: str
    family: str
    n_frames: int = 187
    n_mels: int = 96
    n_tags: int = 50
    midend_filters: int = 64
    backend_units: int = 200
    vgg_filters: int = 128
    #: each vgg block's max pooling, (size, strides); MSD_vgg's graph pools time and frequency apart
    vgg_pools: tuple = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

    @property
    def labels(self) -> list[str]:
        from .musicnn_weights import tag_names

        return tag_names(self.name)


ARCHITECTURES = {name: Architecture(name=name, family=name.split("_")[1])
                 for name in ("MSD_musicnn", "MTT_musicnn", "MTT_vgg")}
# as its checkpoint's graph has it (the package's models.py describes MTT_vgg's pooling for both)
ARCHITECTURES["MSD_vgg"] = Architecture(name="MSD_vgg", family="vgg", vgg_pools=(
    ((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))))


def _conv_bn(x, conv, bn_name: str):
    """The authors' block: convolution with ReLU, then batch normalisation (epsilon as TF 1's layers)."""
    from keras import layers

    return layers.BatchNormalization(epsilon=1e-3, name=bn_name)(conv(x))


def _pooled_over_frequency(x, filters: int, kernel, padding: str, n: int):
    """Front-end branch ``n``: ``conv2d_{n-1}`` → ``batch_normalization_{n}`` → max over the frequency axis."""
    from keras import layers

    conv = layers.Conv2D(filters, kernel, padding=padding, activation="relu", name=_numbered("conv2d", n - 1))
    h = _conv_bn(x, conv, _numbered("batch_normalization", n))
    h = layers.MaxPooling2D(pool_size=(1, h.shape[2]))(h)
    return layers.Reshape((h.shape[1], filters))(h)


def _numbered(base: str, n: int) -> str:
    """TF 1's layer names: ``conv2d``, ``conv2d_1``, ``conv2d_2``..."""
    return base if n == 0 else f"{base}_{n}"


def _musicnn(arch: Architecture):
    import keras
    from keras import layers

    mel = keras.Input((arch.n_frames, arch.n_mels), name="log_mel")
    x = layers.Reshape((arch.n_frames, arch.n_mels, 1))(mel)
    x = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization")(x)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)))(x)  # 'same' in time for the valid timbral convolutions
    timbral_filters, temporal_filters = int(1.6 * 128), int(1.6 * 32)
    front = [_pooled_over_frequency(padded, timbral_filters, (7, int(share * arch.n_mels)), "valid", n)
             for n, share in ((1, 0.4), (2, 0.7))]
    front += [_pooled_over_frequency(x, temporal_filters, (length, 1), "same", n)
              for n, length in ((3, 128), (4, 64), (5, 32))]
    front = layers.Concatenate(axis=2)(front)
    mid = [front]
    for n in range(3):  # conv2d_5..7 span the whole feature axis: a 1-D convolution over time
        conv = layers.Conv1D(arch.midend_filters, 7, padding="same", activation="relu", name=_numbered("conv2d", 5 + n))
        h = _conv_bn(mid[-1], conv, _numbered("batch_normalization", 6 + n))
        mid.append(h if n == 0 else layers.Add()([h, mid[-1]]))
    features = layers.Concatenate(axis=2)(mid)
    max_pool, mean_pool = layers.GlobalMaxPooling1D()(features), layers.GlobalAveragePooling1D()(features)
    width = features.shape[2]
    pooled = layers.Concatenate(axis=2)([layers.Reshape((width, 1))(max_pool), layers.Reshape((width, 1))(mean_pool)])
    pooled = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization_9")(layers.Flatten()(pooled))
    dense = layers.Dense(arch.backend_units, activation="relu", name="dense")
    penultimate = _conv_bn(pooled, dense, "batch_normalization_10")
    tags = layers.Dense(arch.n_tags, activation="sigmoid", name="dense_1")(penultimate)
    return keras.Model(mel, {"tags": tags, "penultimate": penultimate, "mean_pool": mean_pool,
                             "max_pool": max_pool}, name=arch.name)


def _vgg(arch: Architecture):
    import keras
    from keras import layers

    mel = keras.Input((arch.n_frames, arch.n_mels), name="log_mel")
    x = layers.Reshape((arch.n_frames, arch.n_mels, 1))(mel)
    x = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization")(x)
    fourth = None
    for n, (size, strides) in enumerate(arch.vgg_pools, start=1):
        conv = layers.Conv2D(arch.vgg_filters, 3, padding="same", activation="relu", name=f"{n}CNN")
        x = layers.MaxPooling2D(pool_size=size, strides=strides)(_conv_bn(x, conv, f"batch_normalization_{n}"))
        fourth = x if n == 4 else fourth
    penultimate = layers.Flatten()(x)
    tags = layers.Dense(arch.n_tags, activation="sigmoid", name="dense")(penultimate)
    return keras.Model(mel, {"tags": tags, "penultimate": penultimate,
                             "mean_pool": layers.GlobalAveragePooling2D()(fourth),
                             "max_pool": layers.GlobalMaxPooling2D()(fourth)}, name=arch.name)


def assign_weights(network, weights: dict[str, np.ndarray]) -> None:
    """Give every weight of ``network`` the checkpoint variable ``<layer name>/<weight name>``.

    A 2-D convolution kernel spanning the whole feature axis becomes the 1-D kernel it is
    (``(7, 561, 1, 64)`` → ``(7, 561, 64)``). Raises ``ValueError`` (one line) for a variable
    that is missing, left over or of another size.
    """
    unused = set(weights)
    for layer in network.layers:
        for weight in layer.weights:
            name = f"{layer.name}/{weight.name}"
            if name not in weights:
                raise ValueError(f"{network.name}: the checkpoint has no variable {name}")
            value = weights[name]
            if value.size != int(np.prod(weight.shape)):
                raise ValueError(f"{network.name}: {name} has shape {value.shape}, "
                                 f"the port expects {tuple(weight.shape)}")
            weight.assign(value.reshape(weight.shape))
            unused.discard(name)
    if unused:
        raise ValueError(f"{network.name}: {len(unused)} checkpoint variables unused (first: {sorted(unused)[0]})")


def build_model(arch: Architecture, weights: dict[str, np.ndarray] | None = None):
    """The Keras 3 model of ``arch``; ``weights`` (``{variable name: array}``) assigned by name when given."""
    network = (_musicnn if arch.family == "musicnn" else _vgg)(arch)
    if weights is not None:
        assign_weights(network, weights)
    return network
