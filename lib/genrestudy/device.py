"""Where the networks run and in what arithmetic: the device, and the study's one precision rule.

Every network of the study (frozen feature extractors, the end-to-end model, any small Keras
model a method adds) resolves its ``precision`` here, with one rule:

============  =====================  ==========================================
``"auto"``    inference              training
============  =====================  ==========================================
GPU           bfloat16               bfloat16
CPU           the faster of float32  float32
              and bfloat16, measured
              on this machine
============  =====================  ==========================================

Why measured and not read off the CPU flags: bf16 instructions do not make bfloat16 faster by
themselves (without AMX, ResNet-50 ran 1.4–1.6× slower in bfloat16 than in float32), so the
first "auto" inference on a CPU times both on a probe of the backbones' shape and the answer
is cached per machine (:mod:`genrestudy.precision_choice`). Notebooks 02 and 08, ``genrestudy
predict`` and the benchmarks all resolve "auto" here, so they follow the same answer.

Why bfloat16 and not float16 on a GPU: bfloat16 has float32's exponent range, so the large
activations of an ImageNet network fed Caffe-preprocessed 0–255 values cannot overflow as they
can in float16 (largest value 65504), training needs no loss scaling, and GPUs with bfloat16
tensor cores (NVIDIA Ampere and later) run it as fast as float16. float16 stays selectable
by name for inference, for older GPUs (T4, V100) that lack bfloat16 tensor cores; it is not
offered for training, which would need loss scaling.

Why a CPU trains in float32: the bf16 dot-product instructions speed up the forward pass of a
frozen network, while training adds backward passes and weight updates that gain little on a
CPU and lose precision; float32 also keeps the CPU-trained models already cached valid (the
resolved precision is part of their key).

Reduced precision is always *mixed* (:data:`POLICIES`): weights and network outputs stay float32.
Keras is imported only inside :func:`_backend_specific`, the one function that talks to the
backend's framework, so this module costs nothing to import.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: precisions a frozen network can run inference in ("auto": see the module docstring)
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: precisions a network can train in (float16 would need loss scaling, which the study does not use)
TRAINING_PRECISIONS = ("auto", "float32", "bfloat16")
#: Keras dtype policy of each resolved precision
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


#: environment settings that make a framework take GPU memory as it needs it instead of all of it at its
#: first GPU call (TensorFlow reads its variable when it initialises the GPU, JAX at import; torch allocates
#: lazily already)
MEMORY_GROWTH_ENV = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def _backend_specific(request: str):
    """THE PACKAGE'S ONE BACKEND-SPECIFIC FUNCTION: every question put to the Keras backend's
    framework (TensorFlow, JAX or torch) directly; nothing else in genrestudy calls one.

    ``request`` is ``"accelerator"`` (``"gpu"``/``"cpu"``), ``"memory_growth"`` (True when
    memory growth holds for this process: set before the framework took the GPU) or
    ``"gpu_peak_bytes"`` (the allocator's peak on the first GPU, None where not reported).
    """
    if request == "memory_growth":
        tf = sys.modules.get("tensorflow")  # not imported yet: MEMORY_GROWTH_ENV, set already, will do
        if tf is None or not hasattr(tf, "config"):
            return True
        try:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is initialised already: too late for this process
            return False
        return True
    import keras

    backend = keras.config.backend()
    if request == "accelerator":
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else "cpu"
        try:
            return "gpu" if keras.distribution.list_devices("gpu") else "cpu"
        except RuntimeError:  # jax raises when it has no GPU platform at all
            return "cpu"
    if request == "gpu_peak_bytes":
        if backend == "torch":
            import torch

            return float(torch.cuda.max_memory_allocated())
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            return float(stats["peak_bytes_in_use"]) if "peak_bytes_in_use" in stats else None
        import tensorflow as tf

        return float(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    raise ValueError(f"unknown backend request {request!r}")


_memory_growth: bool | None = None  # this process's answer, once asked


def enable_memory_growth() -> bool:
    """Let the framework take GPU memory as it needs it, not all of it at once. Call it before
    any model loads (notebook 08 does, and so does every step it measures in a fresh process).

    By default TensorFlow reserves all of a GPU's memory for the first process that uses
    it, so a notebook that loads a model before starting the processes it measures in would
    leave them no GPU. Harmless without a GPU. Returns False, with a warning, when this
    process took the GPU before the call (then it holds what it reserved).
    """
    global _memory_growth
    if _memory_growth is None:
        for name, value in MEMORY_GROWTH_ENV.items():
            os.environ.setdefault(name, value)
        _memory_growth = bool(_backend_specific("memory_growth"))
        if not _memory_growth:
            log.warning("GPU memory growth could not be enabled: this process initialised the GPU before "
                        "device.enable_memory_growth() was called")
    return _memory_growth


def accelerator() -> str:
    """``"gpu"`` when the Keras backend sees a GPU, else ``"cpu"``.

    Asking initialises the device, so memory growth is enabled first (:func:`enable_memory_growth`).
    """
    enable_memory_growth()
    return _backend_specific("accelerator")


def gpu_peak_mb() -> float | None:
    """Peak GPU memory this process's framework allocated (MB), under every Keras backend; None
    without a GPU or where the backend does not report it."""
    if accelerator() != "gpu":
        return None
    peak = _backend_specific("gpu_peak_bytes")
    return None if peak is None else peak / 1e6


def cpu_supports_bfloat16() -> bool:
    """Whether the CPU has bfloat16 dot-product instructions (x86 AVX512-BF16/AMX, Arm BF16).

    Reported, not used to choose: the "auto" precision is measured (:func:`cpu_inference_precision`).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: nothing cheap and reliable to ask, so assume no
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(precision: str = "auto", *, training: bool) -> str:
    """The precision a network computes in: ``precision`` itself, or what ``"auto"`` means here.

    Parameters
    ----------
    precision : str
        One of :data:`TRAINING_PRECISIONS` when ``training``, else of :data:`INFERENCE_PRECISIONS`.
    training : bool
        Whether the network is trained (the rule differs on a CPU; see the module docstring).

    Returns
    -------
    str
        ``"float32"``, ``"bfloat16"`` or (inference only, when asked for) ``"float16"``.

    Examples
    --------
    >>> resolve_precision("float32", training=True)
    'float32'
    """
    allowed = TRAINING_PRECISIONS if training else INFERENCE_PRECISIONS
    if precision not in allowed:
        use = "training" if training else "inference"
        raise ValueError(f"unknown precision {precision!r} for {use}; expected one of {', '.join(allowed)}")
    if precision != "auto":
        return precision
    if accelerator() == "gpu":
        return "bfloat16"
    return "float32" if training else cpu_inference_precision()


_cpu_choice: str | None = None  # this process's answer, once asked


def cpu_inference_precision() -> str:
    """The faster inference precision on this CPU, ``"float32"`` or ``"bfloat16"``: measured on the
    first call on a machine, then read from the study's cache (:mod:`genrestudy.precision_choice`)."""
    global _cpu_choice
    if _cpu_choice is None:
        from . import precision_choice

        _cpu_choice = precision_choice.fastest(POLICIES)["choice"]
    return _cpu_choice


def runnable_precision(precision: str) -> str:
    """A stored inference precision, or float32 where this machine cannot run it usefully.

    A model file records the arithmetic its features were computed in; on a machine where it is
    not the faster (float16 off a GPU, bfloat16 on a CPU where float32 measured faster:
    :func:`cpu_inference_precision`) the float32 network gives the same numbers to rounding, faster.
    """
    device = accelerator()
    if precision == "float16" and device != "gpu":
        return "float32"
    if precision == "bfloat16" and device != "gpu":
        return cpu_inference_precision()
    return precision
