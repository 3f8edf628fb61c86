"""Where the networks run and in what arithmetic: the device, and the study's one precision rule.

Every network of the study (frozen feature extractors, the end-to-end model, any small Keras
model a method adds) resolves its ``precision`` here, with one rule:

============  =====================  ==========================================
``"auto"``    inference              training
============  =====================  ==========================================
GPU           bfloat16               bfloat16
CPU           bfloat16 if the CPU    float32
              has bf16 instructions,
              else float32
============  =====================  ==========================================

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
Keras is imported only inside :func:`accelerator`, so this module costs nothing to import.
"""
from __future__ import annotations

from pathlib import Path

#: precisions a frozen network can run inference in ("auto": see the module docstring)
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: precisions a network can train in (float16 would need loss scaling, which the study does not use)
TRAINING_PRECISIONS = ("auto", "float32", "bfloat16")
#: Keras dtype policy of each resolved precision
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def accelerator() -> str:
    """``"gpu"`` when the Keras backend sees a GPU, else ``"cpu"``.

    The package's one backend-specific function: each Keras backend reports its devices its
    own way, and nothing else in genrestudy asks the backend's framework directly.
    """
    import keras

    if keras.config.backend() == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    try:
        return "gpu" if keras.distribution.list_devices("gpu") else "cpu"
    except RuntimeError:  # jax raises when it has no GPU platform at all
        return "cpu"


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
    return "bfloat16" if not training and cpu_supports_bfloat16() else "float32"


def runnable_precision(precision: str) -> str:
    """A stored inference precision, or float32 where this machine cannot run it usefully.

    A model file records the arithmetic its features were computed in; on a machine without
    fast support for it (float16 off a GPU, bfloat16 on a CPU without bf16 instructions) the
    float32 network gives the same numbers to rounding, much faster.
    """
    device = accelerator()
    if precision == "float16" and device != "gpu":
        return "float32"
    if precision == "bfloat16" and device != "gpu" and not cpu_supports_bfloat16():
        return "float32"
    return precision
