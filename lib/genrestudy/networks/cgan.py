"""The conditional GAN of neighbouring study 2, on waveforms (its main setup) and on feature sequences.

Generator: a 10-d label embedding ⊕ 100-d noise → Dense 512 → 1024 → 2048 (ReLU) → one
sample (a segment's waveform, ``tanh``; or a segment's standardised feature sequence,
flattened, linear). Discriminator: the sample ⊕ the label embedding → LeakyReLU Dense
1024 → 512 → real/fake (sigmoid). Both are trained with Adam (0.0002, β₁ 0.5) on binary
cross-entropy, the discriminator on a real and a generated batch, then the generator through
the frozen discriminator, with ``train_on_batch`` only: no backend-specific code.

On waveforms (66,150 samples per 3 s segment at 22050 Hz) the two networks hold about
200 million parameters, about 3.3 GB with Adam's state: the ``paper`` profile's. Its
generated segments go through the same feature step as real ones
(:func:`genrestudy.signals.sequences.segment_sequences`). The demo uses the feature variant.

:func:`feature_augmentation` trains the feature CGAN on a network's training rows and
draws as many generated sequences as there are real ones, with the training rows' labels
(no balancing, as the source); the result is cached by what determines it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import cache

NOISE_DIM, EMBED_DIM = 100, 10
GENERATOR_UNITS, DISCRIMINATOR_UNITS = (512, 1024, 2048), (1024, 512)
_CACHE_KIND = "cgan-augmentation"
_VERSION = 2


def build_generator(output_dim: int, n_classes: int = 10, *, output_activation: str | None = "tanh"):
    """label, noise → ``(output_dim,)`` sample."""
    import keras
    from keras import layers

    label, noise = keras.Input((1,), dtype="int32", name="label"), keras.Input((NOISE_DIM,), name="noise")
    x = layers.Concatenate()([layers.Flatten()(layers.Embedding(n_classes, EMBED_DIM)(label)), noise])
    for units in GENERATOR_UNITS:
        x = layers.Dense(units, activation="relu")(x)
    out = layers.Dense(output_dim, activation=output_activation, dtype="float32", name="sample")(x)
    return keras.Model([noise, label], out, name="generator")


def build_discriminator(input_dim: int, n_classes: int = 10):
    """sample, label → probability that the sample is real."""
    import keras
    from keras import layers

    sample, label = keras.Input((input_dim,), name="sample"), keras.Input((1,), dtype="int32", name="label")
    x = layers.Concatenate()([sample, layers.Flatten()(layers.Embedding(n_classes, EMBED_DIM)(label))])
    for units in DISCRIMINATOR_UNITS:
        x = layers.LeakyReLU(0.2)(layers.Dense(units)(x))
    out = layers.Dense(1, activation="sigmoid", dtype="float32", name="real")(x)
    return keras.Model([sample, label], out, name="discriminator")


class CGAN:
    """A generator and a discriminator trained against each other (``train_on_batch``, any backend)."""

    def __init__(self, output_dim: int, n_classes: int = 10, *, output_activation: str | None = "tanh",
                 learning_rate: float = 2e-4, seed: int = 0):
        import keras

        keras.utils.set_random_seed(seed)
        self.n_classes, self.output_dim = int(n_classes), int(output_dim)
        self.generator = build_generator(output_dim, n_classes, output_activation=output_activation)
        self.discriminator = build_discriminator(output_dim, n_classes)
        self.discriminator.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5), loss="binary_crossentropy")
        noise, label = self.generator.inputs
        self.discriminator.trainable = False
        self.combined = keras.Model([noise, label], self.discriminator([self.generator([noise, label]), label]))
        self.combined.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5), loss="binary_crossentropy")
        self.rng = np.random.default_rng(seed)

    def count_params(self) -> int:
        return int(self.generator.count_params() + self.discriminator.count_params())

    def train_step(self, real: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """One discriminator step (real, then generated) and one generator step; ``(d_loss, g_loss)``."""
        n = len(real)
        labels = np.asarray(labels, dtype=np.int32).reshape(-1, 1)
        noise = self.rng.standard_normal((n, NOISE_DIM)).astype(np.float32)
        fake = np.asarray(self.generator.predict_on_batch([noise, labels]), dtype=np.float32)
        self.discriminator.trainable = True   # the flag is read when each model's step runs
        d_real = self.discriminator.train_on_batch([np.asarray(real, np.float32), labels], np.ones((n, 1), np.float32))
        d_fake = self.discriminator.train_on_batch([fake, labels], np.zeros((n, 1), np.float32))
        self.discriminator.trainable = False
        drawn = self.rng.integers(0, self.n_classes, size=(n, 1)).astype(np.int32)
        noise = self.rng.standard_normal((n, NOISE_DIM)).astype(np.float32)
        g_loss = self.combined.train_on_batch([noise, drawn], np.ones((n, 1), np.float32))
        return 0.5 * (float(np.mean(d_real)) + float(np.mean(d_fake))), float(np.mean(g_loss))

    def fit(self, real_batch, labels: np.ndarray, *, epochs: int, batch_size: int = 32) -> pd.DataFrame:
        """Train for ``epochs`` over ``labels``' rows; ``real_batch(indices)`` gives those rows' samples.

        Returns one row per epoch: mean discriminator and generator loss, seconds.
        """
        labels, rows = np.asarray(labels), []
        for epoch in range(1, epochs + 1):
            started, losses = time.perf_counter(), []
            order = self.rng.permutation(len(labels))
            for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
                picked = np.sort(order[start:start + batch_size])
                losses.append(self.train_step(real_batch(picked), labels[picked]))
            d, g = np.mean(losses, axis=0)
            rows.append({"epoch": epoch, "d_loss": d, "g_loss": g, "seconds": time.perf_counter() - started})
        return pd.DataFrame(rows)

    def sample(self, labels, *, batch_size: int = 256) -> np.ndarray:
        """``(len(labels), output_dim)`` generated samples of the given class codes."""
        labels = np.asarray(labels, dtype=np.int32).reshape(-1, 1)
        out = []
        for start in range(0, len(labels), batch_size):
            part = labels[start:start + batch_size]
            noise = self.rng.standard_normal((len(part), NOISE_DIM)).astype(np.float32)
            out.append(np.asarray(self.generator.predict_on_batch([noise, part]), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.output_dim), np.float32)


def waveform_cgan(segment_samples: int = 66150, n_classes: int = 10, *, seed: int = 0) -> CGAN:
    """The source's main CGAN: one segment's waveform out (``tanh``, about 200 M parameters at 3 s)."""
    return CGAN(segment_samples, n_classes, output_activation="tanh", seed=seed)


def feature_cgan(frames: int, n_features: int, n_classes: int = 10, *, seed: int = 0) -> CGAN:
    """The feature variant: one standardised feature sequence out, flattened (``frames × n_features``, linear)."""
    return CGAN(frames * n_features, n_classes, output_activation=None, seed=seed)


# ---------------------------------------------------------------- augmentation for Net6

@dataclass
class Augmentation:
    """Generated training rows: ``sequences`` ``(n, frames, features)``, their ``labels``, the
    CGAN's loss ``history``, its ``source`` ("features" or "waveforms") and cache ``key``."""

    sequences: np.ndarray
    labels: np.ndarray
    history: pd.DataFrame
    source: str
    key: str
    params: int
    seconds: float
    peak_rss_mb: float


def _peak_rss():
    from ..efficiency import PeakRSS

    return PeakRSS()


def _open(entry) -> Augmentation:
    meta = cache.read_meta(entry)
    return Augmentation(np.load(entry / "sequences.npy"), np.load(entry / "labels.npy"),
                        pd.read_csv(entry / "history.csv"), meta["source"], entry.name, meta["params"], meta["seconds"],
                        meta["peak_rss_mb"])


def feature_augmentation(sequences: np.ndarray, labels: np.ndarray, *, n_classes: int, epochs: int, seed: int,
                         data_key: dict, batch_size: int = 32) -> Augmentation:
    """Train the feature CGAN on ``(n, frames, features)`` real sequences; as many generated ones, same labels.

    The CGAN sees each feature standardised over the training rows; its samples are mapped
    back. Cached by ``data_key`` (what determines ``sequences``), the labels, epochs and seed.
    """
    x = np.asarray(sequences, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    key = cache.cache_key(f"cgan-features-v{_VERSION}", data_key, labels.tolist(), epochs, seed, batch_size,
                          cache.library_versions("keras"))

    def build(entry) -> dict:
        mean, std = x.mean(axis=(0, 1)), np.maximum(x.std(axis=(0, 1)), 1e-6)
        flat = ((x - mean) / std).reshape(len(x), -1)
        with _peak_rss() as memory:
            gan = feature_cgan(x.shape[1], x.shape[2], n_classes, seed=seed)
            started = time.perf_counter()
            history = gan.fit(lambda rows: flat[rows], labels, epochs=epochs, batch_size=batch_size)
            generated = gan.sample(labels).reshape(x.shape) * std + mean
        cache.save_array(entry / "sequences.npy", generated.astype(np.float32))
        cache.save_array(entry / "labels.npy", labels)
        cache.write_csv(entry / "history.csv", history)
        return {"source": "features", "params": gan.count_params(), "seconds": round(time.perf_counter() - started, 3),
                "peak_rss_mb": round(memory.peak_mb, 1)}

    return cache.open_or_build(_CACHE_KIND, key, open_entry=_open, build=build)


def waveform_augmentation(signal_set, segment_ids: np.ndarray, labels: np.ndarray, *, n_classes: int, epochs: int,
                          seed: int, sequence_params, batch_size: int = 32) -> Augmentation:
    """Train the waveform CGAN on the segments ``segment_ids`` of ``signal_set`` (read batch by batch
    from its memory map); its generated waveforms go through the feature step. ``paper`` profile only."""
    from ..signals.sequences import segment_sequences

    labels = np.asarray(labels, dtype=np.int64)
    ids = np.asarray(segment_ids)
    key = cache.cache_key(f"cgan-waveforms-v{_VERSION}", signal_set.key, ids.tolist(), labels.tolist(), epochs, seed,
                          batch_size, sequence_params.as_dict(), cache.library_versions("keras", "librosa"))

    def build(entry) -> dict:
        with _peak_rss() as memory:
            gan = waveform_cgan(signal_set.params.segment_samples, n_classes, seed=seed)
            started = time.perf_counter()
            history = gan.fit(lambda rows: np.stack([signal_set.segment(int(i)) for i in ids[rows]]), labels,
                              epochs=epochs, batch_size=batch_size)
            sequences = [segment_sequences(gan.sample(labels[s:s + 64]), sample_rate=signal_set.params.sample_rate,
                                           **sequence_params.as_dict()) for s in range(0, len(labels), 64)]
        cache.save_array(entry / "sequences.npy", np.concatenate(sequences))
        cache.save_array(entry / "labels.npy", labels)
        cache.write_csv(entry / "history.csv", history)
        return {"source": "waveforms", "params": gan.count_params(), "seconds": round(time.perf_counter() - started, 3),
                "peak_rss_mb": round(memory.peak_mb, 1)}

    return cache.open_or_build(_CACHE_KIND, key, open_entry=_open, build=build)
