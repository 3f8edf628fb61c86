"""Neighbouring study 2: six small networks trained from scratch, as the source describes them.

* Net1, an MLP on a segment's summary vector (:func:`genrestudy.signals.sequences.summary_vectors`):
  flatten → Dense 512 ReLU → Dense 512 ReLU → Dense 10;
* Net2, a CNN on the spectrogram image (180 × 180 × 3 in the source): Conv 32, Conv 32,
  MaxPool 2, Conv 64, Conv 128, MaxPool 2, Flatten, Dense 256, Dense 10 (3 × 3 kernels,
  stride 1, same padding, ReLU);
* Net3, Net2 with batch normalisation after every convolution (trained with Adam), and
  Net4, the same network trained with RMSprop;
* Net5, two stacked LSTM layers of 128 units on the feature sequence, many-to-one, dropout
  0.3, early stopping with patience 7 on the validation loss;
* Net6, Net5 trained on real and conditional-GAN generated sequences (:mod:`genrestudy.networks.cgan`).

Every network standardises its input itself (a ``Rescaling`` of the 0–255 image, or a
``Normalization`` with the training rows' mean and variance), so a saved model file holds
all a prediction needs. The model-file kind ``"small-network"`` is registered here, with
the loader ``genrestudy predict --model`` uses (:class:`SmallNetModel`).

:data:`GRIDS` holds the source's configuration grid (the ``paper`` profile) and the demo's
reduced one; :mod:`genrestudy.networks.smallnets_training` trains and selects over it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..models import modelfile, modelschema
from ..run import predict
from ..signals.sequences import SequenceParams, segment_sequences, summary_vectors

#: network key → (the source's name, the input it takes: "summary", "images" or "sequences")
NETWORKS = {"net1": ("Net1 MLP", "summary"), "net2": ("Net2 CNN", "images"),
            "net3": ("Net3 CNN + batch norm", "images"), "net4": ("Net4 CNN + batch norm, RMSprop", "images"),
            "net5": ("Net5 LSTM", "sequences"), "net6": ("Net6 LSTM + CGAN augmentation", "sequences")}
#: the optimisers each network is trained with in the source (Net3 only Adam, Net4 only RMSprop)
OPTIMISERS = {"net1": ("adam", "rmsprop"), "net2": ("adam", "rmsprop"), "net3": ("adam",), "net4": ("rmsprop",),
              "net5": ("adam", "rmsprop"), "net6": ("adam", "rmsprop")}
#: networks trained for a fixed number of epochs (the others stop early on the validation loss)
FIXED_EPOCHS = ("net1", "net2", "net3", "net4")
#: networks with batch normalisation after every convolution
BATCH_NORM = ("net3", "net4")
LSTM_DROPOUT, LSTM_UNITS, PATIENCE = 0.3, 128, 7
#: batch-norm moving-average momentum (the source does not state one; Keras' default is 0.99).
#: The moving statistics keep momentum**n of their initial values after n steps: at 0.99 that is
#: still 0.99**100 ≈ 37 % after 100 steps, at 0.9 it is 0.9**30 ≈ 4 % after 30, so with the
#: demo's few steps 0.9 at least evaluates with statistics of the data. It does not make the demo's
#: Net3/4 learn: their scores (notebook 06's table) can stay near chance. ``Grid.bn_momentum``
#: switches it (docs/DEVIATIONS.md).
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Grid:
    """The configurations a profile trains, and how much data and time it gives them.

    Attributes
    ----------
    image_size : int
        Side the CNNs see (the image cache is resized at batch time; the source's 180).
    learning_rates, optimisers : tuple
        Learning rates; optimisers per network (None: the source's, :data:`OPTIMISERS`).
    epochs : tuple of int
        Fixed epochs of Net1–4 (the source's 50 and 100).
    max_epochs : int
        Largest epoch count of Net5/6, which stop early (patience :data:`PATIENCE`).
    max_train_rows : int or None
        A seeded subset of the training rows (None: all).
    batch_size : int
        Rows per batch.
    cgan_epochs : int
        Epochs of the conditional GANs.
    reduced : bool
        The grid is smaller than the source's (tables say so).
    bn_momentum : float
        Batch-norm momentum of Net3/4 (:data:`BN_MOMENTUM`; Keras' own default is 0.99); part
        of their configurations, so of their cache keys.
    """

    image_size: int
    learning_rates: tuple
    epochs: tuple
    max_epochs: int
    max_train_rows: int | None
    batch_size: int
    cgan_epochs: int
    reduced: bool
    optimisers: dict | None = field(default=None)
    bn_momentum: float = BN_MOMENTUM

    def optimisers_of(self, net: str) -> tuple[str, ...]:
        return tuple((self.optimisers or {}).get(net, OPTIMISERS[net]))

    def configs(self, net: str) -> list[dict]:
        """The configurations of ``net``: optimiser × learning rate × epochs (one epoch budget for Net5/6)."""
        epochs = self.epochs if net in FIXED_EPOCHS else (self.max_epochs,)
        batch_norm = {"bn_momentum": float(self.bn_momentum)} if net in BATCH_NORM else {}
        return [{"optimiser": o, "learning_rate": float(lr), "epochs": int(e), "batch_size": self.batch_size,
                 "early_stopping": None if net in FIXED_EPOCHS else PATIENCE, **batch_norm}
                for o in self.optimisers_of(net) for e in epochs for lr in self.learning_rates]

    def as_dict(self) -> dict:
        return asdict(self)


#: ``paper``: the source's grid at 180 × 180; ``demo``: small images, a training subset, a few
#: epochs, two learning rates and one optimiser per network (two CPU cores, seconds per network)
GRIDS = {
    "paper": Grid(image_size=180, learning_rates=(0.01, 0.001, 0.0005, 0.0001), epochs=(50, 100), max_epochs=100,
                  max_train_rows=None, batch_size=32, cgan_epochs=100, reduced=False),
    "demo": Grid(image_size=32, learning_rates=(0.001, 0.0005), epochs=(2,), max_epochs=4, max_train_rows=256,
                 batch_size=32, cgan_epochs=10, reduced=True,
                 optimisers={"net1": ("adam",), "net2": ("adam",), "net5": ("adam",), "net6": ("adam",)}),
}


def grid_of(profile: str) -> Grid:
    """The grid of a run profile (``inputs.profile``)."""
    if profile not in GRIDS:
        raise ValueError(f"no small-network grid for profile {profile!r}; expected one of {', '.join(GRIDS)}")
    return GRIDS[profile]


# ---------------------------------------------------------------- the architectures

def _chain(name: str, inputs, stack: list):
    """A functional ``keras.Model`` of ``stack`` applied in turn to ``inputs`` (so ``model.output`` exists)."""
    import keras

    x = inputs
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x, name=name)


def _normalisation(mean, variance):
    import keras

    return keras.layers.Normalization(axis=-1, mean=np.asarray(mean, np.float32).tolist(),
                                      variance=np.maximum(np.asarray(variance, np.float32), 1e-6).tolist(),
                                      name="standardise")


def build_mlp(n_features: int, n_classes: int = 10, *, mean=None, variance=None):
    """Net1: flatten → Dense 512 ReLU → Dense 512 ReLU → Dense ``n_classes`` (softmax)."""
    import keras
    from keras import layers

    mean = np.zeros(n_features) if mean is None else mean
    variance = np.ones(n_features) if variance is None else variance
    return _chain("net1", keras.Input((n_features,)), [
        _normalisation(mean, variance), layers.Flatten(), layers.Dense(512, activation="relu"),
        layers.Dense(512, activation="relu"), layers.Dense(n_classes, activation="softmax", dtype="float32")])


def build_cnn(image_size: int = 180, n_classes: int = 10, *, batch_norm: bool = False, name: str = "net2",
              bn_momentum: float = BN_MOMENTUM):
    """Net2 (Net3/Net4 with ``batch_norm``, of momentum ``bn_momentum``): the source's CNN on
    ``image_size``² × 3 images (0–255 in)."""
    import keras
    from keras import layers

    stack = [layers.Rescaling(1.0 / 255)]
    for filters, pool in ((32, False), (32, True), (64, False), (128, True)):
        stack.append(layers.Conv2D(filters, 3, strides=1, padding="same", activation=None if batch_norm else "relu"))
        if batch_norm:
            stack += [layers.BatchNormalization(momentum=bn_momentum), layers.Activation("relu")]
        if pool:
            stack.append(layers.MaxPooling2D(2))
    stack += [layers.Flatten(), layers.Dense(256, activation="relu"),
              layers.Dense(n_classes, activation="softmax", dtype="float32")]
    return _chain(name, keras.Input((image_size, image_size, 3)), stack)


def build_lstm(frames: int, n_features: int = 40, n_classes: int = 10, *, mean=None, variance=None, name: str = "net5"):
    """Net5/Net6: LSTM 128 (whole sequence) → LSTM 128 (last step) → dropout 0.3 → Dense ``n_classes``."""
    import keras
    from keras import layers

    mean = np.zeros(n_features) if mean is None else mean
    variance = np.ones(n_features) if variance is None else variance
    return _chain(name, keras.Input((frames, n_features)), [
        _normalisation(mean, variance), layers.LSTM(LSTM_UNITS, return_sequences=True), layers.LSTM(LSTM_UNITS),
        layers.Dropout(LSTM_DROPOUT), layers.Dense(n_classes, activation="softmax", dtype="float32")])


def build_network(net: str, x_train: np.ndarray | None, *, n_classes: int, image_size: int = 180,
                  bn_momentum: float = BN_MOMENTUM):
    """The network ``net`` for inputs like ``x_train`` (its rows standardise the MLP's and LSTMs' input)."""
    if net not in NETWORKS:
        raise ValueError(f"unknown network {net!r}; expected one of {', '.join(NETWORKS)}")
    kind = NETWORKS[net][1]
    if kind == "images":
        return build_cnn(image_size, n_classes, batch_norm=net in BATCH_NORM, name=net, bn_momentum=bn_momentum)
    axes = (0,) if kind == "summary" else (0, 1)
    mean, variance = np.asarray(x_train).mean(axis=axes), np.asarray(x_train).var(axis=axes)
    if kind == "summary":
        return build_mlp(x_train.shape[1], n_classes, mean=mean, variance=variance)
    return build_lstm(x_train.shape[1], x_train.shape[2], n_classes, mean=mean, variance=variance, name=net)


def resize_images(grey: np.ndarray, size: int) -> np.ndarray:
    """``(n, size, size)`` uint8 bilinear resizes of ``(n, h, w)`` grey images (as they are if already that size)."""
    from PIL import Image

    grey = np.asarray(grey)
    if grey.shape[1:] == (size, size):
        return grey
    return np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)) for img in grey])


def network_inputs(net: str, segments: np.ndarray, *, sample_rate: int, sequence_params: SequenceParams):
    """A network's input from decoded ``(k, samples)`` segments (the sequence networks'; images go via mel images)."""
    sequences = segment_sequences(segments, sample_rate=sample_rate, **sequence_params.as_dict())
    return summary_vectors(sequences) if NETWORKS[net][1] == "summary" else sequences


# ---------------------------------------------------------------- model files

MODEL_KIND = modelfile.register_kind(
    "small-network", required=("network", "input", "sequence_params", "net_size"),
    fields={"network": modelschema.text(NETWORKS), "input": modelschema.text(("summary", "images", "sequences")),
            "net_size": modelschema.integer(8, 1024),
            "sequence_params": modelschema.params_of(SequenceParams, {
                "n_fft": modelschema.integer(64, 1 << 16), "hop_length": modelschema.integer(1, 1 << 16),
                "n_mels": modelschema.integer(20, 2048)}, what="sequence parameters")})


def model_header(net: str, *, classes, image_params: dict, synthetic: bool, sequence_params: SequenceParams,
                 net_size: int, training: dict) -> dict:
    """The ``genrestudy.json`` of a small network's model file."""
    from ..signals.images import ImageParams

    return modelfile.model_header(MODEL_KIND, classes=list(classes), image_params=asdict(ImageParams(**image_params)),
                                  synthetic=bool(synthetic), network=net, input=NETWORKS[net][1],
                                  sequence_params=sequence_params.as_dict(), net_size=int(net_size), training=training)


@dataclass
class SmallNetModel(predict.GenreModel):
    """A saved small network: a clip's segments in (as images or feature sequences), probabilities out."""

    network: object = None

    def describe(self) -> str:
        data = "the SYNTHETIC demo data (its genres mean nothing for real music)" if self.synthetic else "real audio"
        return (f"{NETWORKS[self.header['network']][0]} ({self.header['input']} input, {len(self.classes)} genres) "
                f"trained on {data}: {self.path}")

    def _predict(self, x: np.ndarray) -> np.ndarray:
        from .training import predict_padded

        batch = self.image_params.n_segments  # one clip per call, padded: one shape, traced once
        return np.concatenate([predict_padded(self.network, x[s:s + batch], batch)
                               for s in range(0, len(x), batch)]).astype(np.float64)

    def segment_probabilities(self, images: np.ndarray) -> np.ndarray:
        from .training import prepare_images

        if self.header["input"] != "images":
            raise TypeError(f"a {self.header['input']} network classifies feature sequences of audio, not images: "
                            "use clip_probabilities")
        return self._predict(prepare_images(resize_images(images, self.header["net_size"]), preprocess=None))

    def clip_probabilities(self, clip: np.ndarray) -> np.ndarray:
        if self.header["input"] == "images":
            return super().clip_probabilities(clip)
        from ..signals.segments import segment_clip

        params = self.image_params
        segments = segment_clip(np.asarray(clip, dtype=np.float32), **asdict(params.segment_params))
        return self._predict(network_inputs(self.header["network"], segments, sample_rate=params.sample_rate,
                                            sequence_params=SequenceParams(**self.header["sequence_params"])))


def load_smallnet_model(path, header: dict | None = None, *, weights=None) -> SmallNetModel:
    """Read a ``small-network`` model file (``weights`` is unused: these networks start from scratch)."""
    network, header = modelfile.load_keras_model(Path(path), kind=MODEL_KIND, expected_input=lambda h: (
        (h["net_size"], h["net_size"], 3) if h["input"] == "images" else None))
    if header["network"] not in NETWORKS or header["input"] != NETWORKS[header["network"]][1]:
        raise modelfile.ModelFileError(f"not a genrestudy model: {path} (unknown network {header['network']!r} "
                                       f"with {header['input']!r} input)")
    return SmallNetModel(path=Path(path), header=header, network=network)


predict.register_loader(MODEL_KIND, load_smallnet_model, note="one of the six small networks, a .keras (notebook 06)")
