"""The plan's unit costs: measured on this machine, and scaled to another (``--cores N --gpu``).

:func:`measure_unit_costs` times one small piece of each kind of work the study does (a mel
image, a ResNet-50 forward and training pass, a LightGBM boosting round, a training step of each
small network and of the feature CGAN, a KNN evaluation) in about a minute. :func:`machine_costs`
turns them into seconds on a named machine: the CPU units keep this machine's cost per core and
spread over ``cores``; with ``gpu`` ResNet-50 runs at its **published** throughput on one NVIDIA
A100 (:data:`PUBLISHED_GPU`), a compared backbone at Keras's published cost relative to ResNet-50
(:data:`KERAS_INFERENCE_MS`). Figures that are not measured here are labelled so in the plan's output.
:func:`unit_cost` and :func:`job_cost` give a unit's seconds there, alone or in a job on a Dask worker
process (:data:`PROCESS_THREADS` threads, a machine's GPU shared by its processes: :func:`on_gpu`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: the width of the frozen ResNet-50 features LightGBM trains on
FEATURE_WIDTH = 2048
N_GENRES = 10
#: what each unit of work is, for the printed cost table
UNITS = {
    "mel_image": "mel image built from audio (one 3 s segment)",
    "forward_image": "ResNet-50 forward pass at 224 px, one image (extraction, frozen-head epochs, validation)",
    "train_image": "ResNet-50 forward + backward at 224 px, one image (fine-tuning epochs)",
    "boosting_round": "LightGBM boosting round on the paper-sized training features, one thread",
    "smallnet_row:net1": "Net1 MLP, one training row of one epoch",
    "smallnet_row:net2": "Net2 CNN at the grid's image size, one training row of one epoch",
    "smallnet_row:net3": "Net3/Net4 CNN + batch norm at the grid's image size, one training row of one epoch",
    "smallnet_row:net5": "Net5/Net6 LSTM, one training row of one epoch",
    "cgan_feature_row": "feature CGAN (Net6's augmentation), one training row of one epoch",
    "cgan_waveform_row": "waveform CGAN, one training row of one epoch (NOT measured: the feature CGAN's cost "
                         "times the ratio of their dense weights)",
    "head_row": "dense softmax head on frozen features, one training row of one epoch",
    "knn_evaluation": "KNN fit and score on the 12 spectral-shape statistics of the training rows",
}
#: on a GPU these are assumed to gain what ResNet-50's training gains there: the small convolutional networks, and
#: the waveform CGAN, whose step is dense products of 32 rows by layers of up to 2,048 × 66,150 weights (about
#: 200 M weights, a few GFLOP per row: the arithmetic a GPU runs at its peak, where ResNet-50's convolutions do
#: not). The other dense and recurrent networks (MLP, LSTMs, the feature CGAN, heads: small batches of small
#: layers) are assumed to gain nothing. Assumptions, on the slow side; a costs file measured there replaces them.
GPU_TRAINING_GAIN_UNITS = ("smallnet_row:net2", "smallnet_row:net3", "cgan_waveform_row")

#: ResNet-50 v1.5 images per second on ONE NVIDIA A100 40GB, TF32 (the study computes in float32, which an
#: A100 runs as TF32): training 909 img/s (TF32 + XLA, batch 256), inference 1,911.96 img/s (TF32, batch
#: 256). Published by NVIDIA, DeepLearningExamples, TensorFlow/Classification/ConvNets/resnet50v1.5/README.md
#: ("Training performance: NVIDIA DGX A100 (8x A100 40GB)", "Inference performance: NVIDIA DGX A100 (1x A100
#: 40GB)"; TensorFlow 20.06 NGC container). Not measured here.
PUBLISHED_GPU = {"train_images_per_second": 909.0, "forward_images_per_second": 1911.96,
                 "source": "NVIDIA DeepLearningExamples resnet50v1.5 README (TensorFlow, 1x A100 40GB, TF32): "
                           "909 img/s training, 1,912 img/s inference; published, not measured here"}
#: Keras's own table of its applications (keras.io/api/applications: "Time (ms) per inference step", batch 32,
#: CPU: AMD EPYC 92 cores, GPU: Tesla A100), (CPU ms, GPU ms) at each network's own input size: how much more
#: a compared backbone costs than ResNet-50 (58.2 / 4.6 ms). Published, not measured here.
KERAS_INFERENCE_MS = {"ResNet50": (58.2, 4.6), "DenseNet201": (127.2, 6.7), "EfficientNetB0": (46.0, 4.9),
                      "EfficientNetB6": (958.1, 40.4), "EfficientNetB7": (1578.9, 61.6), "Xception": (109.4, 8.1),
                      "MobileNetV2": (25.9, 3.8)}
KERAS_TABLE_SOURCE = "keras.io/api/applications, time per inference step (published, not measured here)"


#: the threads of a Dask worker process in the README's layout (``--nworkers $(nproc)/2 --nthreads 2``), each
#: process taking one training at a time (:func:`genrestudy.run.cluster.one_at_a_time`)
PROCESS_THREADS = 2


@dataclass(frozen=True)
class Machine:
    """A machine the plan answers for: ``cores`` CPU cores (each as fast as one of this machine's), one GPU
    or none, and ``workers`` such machines (a Dask cluster; 1: one machine)."""

    cores: int
    gpu: bool = False
    workers: int = 1
    here: bool = True
    #: the machine in words when its costs were measured there (:mod:`genrestudy.run.plan_machine`): then no
    #: cost is scaled or taken from a publication
    measured: str | None = None

    @property
    def slots(self) -> int:
        """Trainings that run at once on one machine: one with no cluster (the notebook's process) or with costs
        measured there (its Keras units measured on all its cores), else a worker process per
        :data:`PROCESS_THREADS` cores."""
        if self.workers == 1 or self.measured:
            return 1
        return max(1, self.cores // PROCESS_THREADS)

    def describe(self) -> str:
        if self.measured:
            one = f"one machine of {self.measured}"
            return f"{self.workers} Dask workers, each {one[4:]}" if self.workers > 1 else one
        if self.here and not self.gpu and self.workers == 1:
            return f"this machine ({self.cores} cores, no GPU)"
        one = f"{self.cores} cores" + (" + one A100-class GPU" if self.gpu else ", no GPU")
        return (f"{self.workers} Dask workers of {one} each" if self.workers > 1 else f"one machine of {one}")


def backbone_forward_factor(backbone: str, input_size: int, *, gpu: bool) -> float:
    """A compared backbone's forward pass at ``input_size`` over ResNet-50's at 224 px: Keras's published
    per-step times at each network's own size, scaled by the pixels to ``input_size``."""
    from ..extractors.backbones import backbone_spec

    spec = backbone_spec(backbone)
    column = 1 if gpu else 0
    own = KERAS_INFERENCE_MS[backbone][column] / KERAS_INFERENCE_MS["ResNet50"][column]
    return own * (int(input_size) / spec.input_size) ** 2


def waveform_to_feature_cgan(frames: int, n_features: int, segment_samples: int) -> float:
    """The waveform CGAN's dense weights over the feature CGAN's (a dense network's step costs about its weights)."""
    from ..networks import cgan

    def weights(output_dim: int) -> int:
        g = [cgan.NOISE_DIM + cgan.EMBED_DIM, *cgan.GENERATOR_UNITS, output_dim]
        d = [output_dim + cgan.EMBED_DIM, *cgan.DISCRIMINATOR_UNITS, 1]
        return sum(a * b for a, b in zip(g, g[1:])) + sum(a * b for a, b in zip(d, d[1:]))

    return weights(segment_samples) / weights(frames * n_features)


def waveform_ratio() -> float:
    """:func:`waveform_to_feature_cgan` at the study's segment and feature-sequence sizes."""
    from ..signals import sequences
    from ..signals.images import ImageParams

    samples = ImageParams().segment_samples
    return waveform_to_feature_cgan(sequences.SequenceParams().frames(samples), len(sequences.FEATURE_NAMES), samples)


# ---------------------------------------------------------------- a unit's seconds in a plan

#: the units a job runs over every core of its worker (a method's searches run on its worker's threads)
WORKER_CORES_UNITS = ("boosting_round",)
#: the units timed on one thread (CPU time), as fast in a worker process of any size
SINGLE_THREAD_UNITS = ("mel_image", "signal_features", "boosting_round", "knn_evaluation")
#: the units that run on a machine's GPU when it has one (besides the compared extractors)
GPU_UNITS = ("forward_image", "train_image", *GPU_TRAINING_GAIN_UNITS)
#: the parts the plan names when it says what dominates
PARTS = {"boosting_round": "LightGBM (searches, refits, retrains)", "forward_image": "ResNet-50 forward passes",
         "train_image": "ResNet-50 fine-tuning", "mel_image": "mel images and spectral/sequence features",
         "knn_evaluation": "KNN and its genetic algorithm", "head_row": "dense heads", "cgan": "the CGANs",
         "smallnet_row": "the six small networks", "backbone": "the compared backbones' extraction"}


def on_gpu(unit: str, machine: Machine) -> bool:
    """Whether ``unit`` runs on ``machine``'s GPU (the end-to-end network, the extractors, the small CNNs and the
    waveform CGAN: :data:`GPU_TRAINING_GAIN_UNITS`)."""
    return machine.gpu and (unit in GPU_UNITS or unit.split(":")[0] in ("backbone", "musicnn"))


def job_cost(unit: str, costs: dict, machine: Machine) -> float:
    """Seconds of one ``unit`` in a job on a worker: a refit's boosting round over its machine's cores; a Keras
    unit off the GPU, measured here on all of this machine's cores, in a worker process's
    :data:`PROCESS_THREADS` threads (as fast where this machine has no more cores,
    slower in proportion where it has)."""
    seconds = unit_cost(unit, costs, machine)
    if unit in WORKER_CORES_UNITS:
        return seconds / machine.cores
    if machine.slots > 1 and unit not in SINGLE_THREAD_UNITS and not on_gpu(unit, machine):
        return seconds * max(1.0, (os.cpu_count() or 1) / PROCESS_THREADS)
    return seconds


def unit_cost(unit: str, costs: dict, machine: Machine) -> float:
    """Seconds of one ``unit`` on ``machine``: its measured cost, or one derived from a measured unit (each says how)."""
    if unit in costs:
        return costs[unit]
    kind, _, what = unit.partition(":")
    if kind == "backbone":   # "backbone:EfficientNetB7@500": Keras's published cost relative to ResNet-50's
        name, size = what.split("@")
        return costs["forward_image"] * backbone_forward_factor(name, int(size), gpu=machine.gpu)
    if kind == "musicnn":     # a music tagger's forward pass: not measured, taken as MobileNetV2's at 224 px
        return costs["forward_image"] * backbone_forward_factor("MobileNetV2", 224, gpu=machine.gpu)
    if unit in ("smallnet_row:net4", "smallnet_row:net6"):   # Net4 is Net3 with RMSprop, Net6 is Net5
        return costs[{"smallnet_row:net4": "smallnet_row:net3", "smallnet_row:net6": "smallnet_row:net5"}[unit]]
    if unit == "cgan_waveform_row":   # a costs file measured elsewhere may lack it: as measure_small_networks derives it
        return costs["cgan_feature_row"] * waveform_ratio()
    if unit == "signal_features":     # spectral shape or feature sequences of one segment: one STFT, as a mel image
        return costs["mel_image"]
    raise KeyError(f"no cost for the unit {unit!r}")


def part_of(unit: str) -> str:
    """The named part of the study (:data:`PARTS`) a unit belongs to."""
    kind = unit.split(":")[0]
    if kind.startswith("cgan"):
        return PARTS["cgan"]
    if kind in ("backbone", "musicnn"):
        return PARTS["backbone"]
    return PARTS.get(kind, PARTS["mel_image"] if unit == "signal_features" else kind)


# ---------------------------------------------------------------- measured here

def _timed(step, repeats: int = 2, *, clock=time.perf_counter) -> float:
    step()   # the first call builds and compiles
    start = clock()
    for _ in range(repeats):
        step()
    return (clock() - start) / repeats


#: the clock of the single-threaded CPU units (mel images, boosting rounds, KNN): the process's CPU time, so
#: that other programs on a loaded machine do not inflate a cost per core (Keras's multi-threaded steps: wall time)
CPU_CLOCK = time.process_time


def measure_mel_image() -> float:
    import numpy as np

    from ..signals.images import ImageParams, segment_images

    params = ImageParams()
    signal = np.random.default_rng(0).standard_normal((10, params.segment_samples)).astype(np.float32)
    return _timed(lambda: segment_images(signal, params), repeats=1, clock=CPU_CLOCK) / 10


def measure_boosting_round(train_rows: int, *, rounds: int = 8, repeats: int = 3) -> float:
    """CPU seconds of one boosting round on ``train_rows`` rows, one thread: the median of ``repeats`` fits
    after an untimed warm-up fit (one fit alone varied by about 20 % between runs within an hour, on a quiet
    machine, across the 3 h target of issue 22)."""
    import numpy as np

    from ..models.classifiers import TrainingData, fit_lightgbm

    rows = min(train_rows, 8000)   # larger sets scale linearly in rows (histograms dominate)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows + 200, FEATURE_WIDTH), dtype=np.float32)
    y = rng.integers(0, N_GENRES, rows + 200)
    X[:, :64] += y[:, None] * 0.3
    data = TrainingData(X[:rows], y[:rows], X[rows:], y[rows:], num_class=N_GENRES)
    data.datasets()
    params = {"num_leaves": 24, "max_depth": 5, "min_child_samples": 30, "learning_rate": 0.02,
              "reg_alpha": 5.0, "reg_lambda": 8.0, "bagging_fraction": 0.7, "feature_fraction": 0.7}
    fit_lightgbm(data, params, num_boost_round=2, early_stopping_rounds=None, num_threads=1)  # warm-up
    per_round = []
    for _ in range(repeats):
        start = CPU_CLOCK()
        fit_lightgbm(data, params, num_boost_round=rounds, early_stopping_rounds=None, num_threads=1)
        per_round.append((CPU_CLOCK() - start) / rounds)
    return float(np.median(per_round)) * train_rows / rows


def _train_step_seconds(model, inputs, batch: int) -> float:
    import numpy as np

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = np.arange(batch) % N_GENRES
    return _timed(lambda: model.train_on_batch(inputs, y)) / batch


def measure_resnet50(batch: int = 4) -> tuple[float, float]:
    import keras
    import numpy as np

    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=N_GENRES)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    forward = _timed(lambda: model.predict_on_batch(x), repeats=1) / batch
    return forward, _train_step_seconds(model, x, batch)


#: the batch the study trains its small networks and both CGANs at (``smallnets.GRIDS[...].batch_size``, the CGAN's
#: ``fit``), and the smallest of the dense heads' searched batches (``heads.SOURCE_GRID``)
SMALL_BATCH = 32


def measure_small_networks(image_size: int, frames: int, n_features: int, *, batch: int = SMALL_BATCH) -> dict[str, float]:
    """Seconds per training row of Net1, Net2, Net3 (Net4 is Net3 with RMSprop), Net5 (Net6 is Net5), the
    feature CGAN and a dense head on 2048 features, at this run's sizes."""
    import numpy as np

    from ..networks import cgan, heads, smallnets

    rng = np.random.default_rng(0)
    sequences = rng.standard_normal((batch, frames, n_features)).astype(np.float32)
    summary = rng.standard_normal((batch, 2 * n_features)).astype(np.float32)
    images = rng.uniform(0, 255, (batch, image_size, image_size, 3)).astype(np.float32)
    out = {}
    for net, x in (("net1", summary), ("net2", images), ("net3", images), ("net5", sequences)):
        model = smallnets.build_network(net, x, n_classes=N_GENRES, image_size=image_size)
        out[f"smallnet_row:{net}"] = _train_step_seconds(model, x, batch)
    features = rng.standard_normal((batch, FEATURE_WIDTH)).astype(np.float32)
    out["head_row"] = _train_step_seconds(heads.build_head(features, N_GENRES), features, batch)
    gan = cgan.feature_cgan(frames, n_features, N_GENRES)
    flat, labels = sequences.reshape(batch, -1), np.arange(batch) % N_GENRES
    out["cgan_feature_row"] = _timed(lambda: gan.train_step(flat, labels)) / batch
    out["cgan_waveform_row"] = out["cgan_feature_row"] * waveform_ratio()   # derived: about 200 M weights
    return out


def measure_knn_evaluation(train_rows: int) -> float:
    import numpy as np

    from ..signals import spectral
    from ..models import knn

    rng = np.random.default_rng(0)
    width = len(spectral.FEATURE_NAMES)
    X, y = rng.standard_normal((train_rows, width)), rng.integers(0, N_GENRES, train_rows)
    test = rng.standard_normal((max(train_rows // 8, 1), width))
    return _timed(lambda: knn.knn_pipeline(5).fit(X, y).predict(test), repeats=1, clock=CPU_CLOCK)


def measure_unit_costs(train_rows: int, *, image_size: int, frames: int, n_features: int,
                       batch: int | None = None) -> dict[str, float]:
    """Seconds per unit of work (:data:`UNITS`) on this machine, measured in about a minute (the single-threaded
    CPU units in CPU time, :data:`CPU_CLOCK`). The small networks, CGANs and heads run at the study's own batch
    (:data:`SMALL_BATCH`): their step is mostly fixed overhead, so a cost per row measured at 16 rows was about
    twice the study's at 32. ``batch``: ResNet-50's batch (default 4 images, which keeps a CPU's measurement
    short; a GPU's cost per image is only meaningful at the study's own batch,
    :data:`genrestudy.run.plan_machine.STUDY_BATCH`)."""
    forward, train = measure_resnet50(*([batch] if batch else []))
    costs = {"mel_image": measure_mel_image(), "forward_image": forward, "train_image": train,
             "boosting_round": measure_boosting_round(train_rows), "knn_evaluation": measure_knn_evaluation(train_rows)}
    costs.update(measure_small_networks(image_size, frames, n_features, batch=batch or SMALL_BATCH))
    return costs


# ---------------------------------------------------------------- another machine

def machine_costs(costs: dict[str, float], machine: Machine) -> dict[str, float]:
    """Seconds per unit on ``machine``, per core for the CPU units (the plan divides parallel work by the
    cores). With a GPU, ResNet-50 runs at its published A100 throughput (:data:`PUBLISHED_GPU`), the small
    CNNs and the waveform CGAN gain what ResNet-50 gains over its cost measured here, and the other Keras units stay at their
    cost here (:data:`GPU_TRAINING_GAIN_UNITS`: an assumption, on the slow side)."""
    out = dict(costs)
    if not machine.gpu or machine.measured:   # measured on that machine: nothing to scale
        return out
    gpu_forward = 1.0 / PUBLISHED_GPU["forward_images_per_second"]
    gpu_train = 1.0 / PUBLISHED_GPU["train_images_per_second"]
    out["forward_image"], out["train_image"] = gpu_forward, gpu_train
    for unit in GPU_TRAINING_GAIN_UNITS:
        if unit in costs:
            out[unit] = costs[unit] * gpu_train / costs["train_image"]
    return out
