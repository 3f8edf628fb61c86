"""The conditional GAN of neighbouring study 2: the waveform CGAN at full size, the feature CGAN, augmentation."""
from __future__ import annotations

import numpy as np

from genrestudy.signals import sequences
from genrestudy.networks import cgan


def _dense_units(model) -> list[int]:
    return [layer.units for layer in model.layers if type(layer).__name__ == "Dense"]


def test_the_feature_cgan_has_the_sources_layers_and_shapes():
    gan = cgan.feature_cgan(17, 40, n_classes=10, seed=0)
    assert _dense_units(gan.generator) == [512, 1024, 2048, 17 * 40]
    assert _dense_units(gan.discriminator) == [1024, 512, 1]
    assert [type(layer).__name__ for layer in gan.discriminator.layers].count("LeakyReLU") == 2
    labels = np.array([0, 3, 9, 3])
    noise = np.zeros((4, cgan.NOISE_DIM), np.float32)
    assert tuple(gan.generator.predict_on_batch([noise, labels.reshape(-1, 1)]).shape) == (4, 680)
    real = np.random.default_rng(0).normal(size=(4, 680)).astype(np.float32)
    assert tuple(gan.discriminator.predict_on_batch([real, labels.reshape(-1, 1)]).shape) == (4, 1)
    d_loss, g_loss = gan.train_step(real, labels)
    assert np.isfinite([d_loss, g_loss]).all()
    assert gan.sample([1, 2, 2]).shape == (3, 680)


def test_training_moves_the_discriminator_and_the_generator_but_each_only_in_its_own_step():
    gan = cgan.feature_cgan(2, 5, n_classes=3, seed=1)
    before_g = [w.copy() for w in gan.generator.get_weights()]
    before_d = [w.copy() for w in gan.discriminator.get_weights()]
    real = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32)
    gan.train_step(real, np.arange(6) % 3)
    assert any(not np.array_equal(a, b) for a, b in zip(before_g, gan.generator.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(before_d, gan.discriminator.get_weights()))
    frozen = [w.copy() for w in gan.discriminator.get_weights()]
    gan.discriminator.trainable = False
    gan.combined.train_on_batch([np.zeros((6, cgan.NOISE_DIM), np.float32), np.zeros((6, 1), np.int32)], np.ones((6, 1)))
    assert all(np.array_equal(a, b) for a, b in zip(frozen, gan.discriminator.get_weights()))


def test_the_waveform_cgan_at_full_size_trains_one_step_and_its_samples_pass_the_feature_step():
    """The source's main CGAN: 66,150 samples out (3 s at 22050 Hz), about 200 million parameters."""
    gan = cgan.waveform_cgan(66150, n_classes=10, seed=0)
    n = 66150
    generator = (10 * 10) + (110 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 2048 + 2048) + (2048 * n + n)
    discriminator = (10 * 10) + ((n + 10) * 1024 + 1024) + (1024 * 512 + 512) + (512 + 1)
    assert gan.generator.count_params() == generator and gan.discriminator.count_params() == discriminator
    assert 195e6 < gan.count_params() < 215e6
    real = (0.1 * np.random.default_rng(0).standard_normal((2, n))).astype(np.float32)
    d_loss, g_loss = gan.train_step(real, np.array([1, 7]))
    assert np.isfinite([d_loss, g_loss]).all()
    waves = gan.sample([0, 5])
    assert waves.shape == (2, n) and np.abs(waves).max() <= 1.0  # tanh: a waveform's range
    features = sequences.segment_sequences(waves, sample_rate=22050, **sequences.SequenceParams().as_dict())
    assert features.shape == (2, 17, 40) and np.isfinite(features).all()


def test_feature_augmentation_is_cached_and_keeps_shapes_and_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("GENRESTUDY_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    labels = np.arange(12) % 3
    real = (rng.normal(size=(12, 4, 5)) + labels[:, None, None]).astype(np.float32) * 10 + 100
    first = cgan.feature_augmentation(real, labels, n_classes=3, epochs=2, seed=0, data_key={"test": 1}, batch_size=4)
    assert first.sequences.shape == real.shape and first.labels.tolist() == labels.tolist()
    assert first.source == "features" and len(first.history) == 2 and first.params > 0
    assert abs(float(first.sequences.mean()) - float(real.mean())) < 5 * float(real.std())  # mapped back to the data's scale
    again = cgan.feature_augmentation(real, labels, n_classes=3, epochs=2, seed=0, data_key={"test": 1}, batch_size=4)
    assert again.key == first.key and np.array_equal(again.sequences, first.sequences)
    other = cgan.feature_augmentation(real, labels, n_classes=3, epochs=1, seed=0, data_key={"test": 1}, batch_size=4)
    assert other.key != first.key
