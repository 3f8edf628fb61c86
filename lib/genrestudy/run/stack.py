"""The software stack the study installs, and the device it will run on.

On Linux, the ``tensorflow`` wheel is CPU-only unless the CUDA libraries are installed; its
``and-cuda`` extra brings them. ``./run_all.sh`` asks :func:`install_extras` (as
``python lib/genrestudy/run/stack.py extras``, before the package is installed) which extras of
``pyproject.toml`` to install:

* ``gpu`` (``tensorflow[and-cuda]``) on a Linux machine where ``nvidia-smi`` answers with a GPU;
* nothing more elsewhere (macOS and Windows wheels have no CUDA variant; a machine without an
  NVIDIA GPU gains nothing from 3 GB of CUDA libraries).

``GENRESTUDY_STACK=cpu`` or ``=gpu`` overrides the decision. Another Keras backend is a
documented choice too: ``KERAS_BACKEND=jax`` or ``=torch`` with that framework installed
(the package makes no TensorFlow call outside :mod:`genrestudy.device`).

``python -m genrestudy.run.stack device [PROFILE]`` prints the device the study will use, in one
line, and under the paper profile on a CPU warns, with a measured estimate, before ResNet-50
is trained end to end there. This module imports nothing outside the standard library at
module level, so the set-up can run it with any Python 3.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time

#: ``GENRESTUDY_STACK``'s values: which stack to install whatever the hardware says
STACK_CHOICES = ("auto", "cpu", "gpu")


def nvidia_gpu(timeout: float = 20) -> str | None:
    """Name of the first NVIDIA GPU ``nvidia-smi`` reports, or None when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return names[0] if done.returncode == 0 and names else None


def install_extras(gpu: str | None, *, system: str | None = None, choice: str | None = None) -> list[str]:
    """The optional extras of ``pyproject.toml`` to install besides ``test``.

    Parameters
    ----------
    gpu : str or None
        :func:`nvidia_gpu`'s answer.
    system : str, optional
        ``platform.system()`` (default: this machine's).
    choice : {"auto", "cpu", "gpu"}, optional
        ``GENRESTUDY_STACK`` (default: the environment's, else ``"auto"``).
    """
    system = platform.system() if system is None else system
    choice = (os.environ.get("GENRESTUDY_STACK") or "auto") if choice is None else choice
    if choice not in STACK_CHOICES:
        raise ValueError(f"GENRESTUDY_STACK={choice!r}; expected one of {', '.join(STACK_CHOICES)}")
    if choice == "gpu" or (choice == "auto" and gpu is not None and system == "Linux"):
        return ["gpu"]
    return []


def device_line(gpu: str | None, backend_sees_gpu: bool | None) -> str:
    """One line saying which device the study will use and why."""
    if gpu is None:
        return "device: CPU (no NVIDIA GPU: nvidia-smi is absent or reports none)"
    if backend_sees_gpu:
        return f"device: GPU ({gpu})"
    return (f"device: CPU, although nvidia-smi reports {gpu}: the Keras backend sees no GPU "
            "(a CPU-only stack? remove .venv/.genrestudy-installed and rerun ./run_all.sh to install the GPU stack)")


def train_step_seconds_per_image(batch: int = 4) -> float:
    """Seconds per image of one ResNet-50 training step (forward + backward) here, at 224 px."""
    import keras
    import numpy as np

    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
    y = np.arange(batch) % 10
    model.train_on_batch(x, y)  # the first step builds and compiles
    start = time.perf_counter()
    model.train_on_batch(x, y)
    return (time.perf_counter() - start) / batch


def end_to_end_cpu_warning(n_images: int, epochs: int, seconds_per_image: float) -> str:
    """The warning the paper profile prints before training ResNet-50 end to end on a CPU."""
    hours = n_images * epochs * seconds_per_image / 3600
    return (f"WARNING: no GPU: the paper profile trains ResNet-50 end to end on this CPU; one training of "
            f"notebook 04 ({epochs} epochs × at most {n_images:,} images × {seconds_per_image:.2f} s per image, "
            f"measured now) takes up to {hours:.1f} h, and notebooks 08 and 09 train it again "
            "(./run_all.sh --profile paper --plan estimates the whole run)")


def paper_end_to_end_size() -> tuple[int, int] | None:
    """(segments of the data set in data/gtzan, epochs) of the paper profile's end-to-end training
    at this run's scale, or None where it does not train at the paper's settings (``--scale smoke``)."""
    from genrestudy import paths
    from genrestudy.run import profiles
    from genrestudy.networks.endtoend import training_settings
    from genrestudy.run.study import StudyInputs

    given = profiles.notebook_parameters("paper", "04_finetune_resnet50")
    if given.get("profile") != "paper":
        return None
    settings = training_settings("paper")
    clips = sum(1 for p in (paths.data_dir() / "gtzan").rglob("*") if p.suffix.lower() in (".wav", ".au"))
    return clips * given.get("n_segments", StudyInputs().n_segments), settings.head_epochs + settings.finetune_epochs


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["extras"]:
        print(",".join(["test", *install_extras(nvidia_gpu())]))
        return 0
    if args and args[0] == "device" and len(args) <= 2:
        gpu = nvidia_gpu()
        sees = None
        if gpu is not None:
            from genrestudy import device

            sees = device.accelerator() == "gpu"
        print(device_line(gpu, sees), flush=True)
        size = paper_end_to_end_size() if args[1:] in (["paper"], ["audit"]) and not sees else None
        if size is not None:
            print(end_to_end_cpu_warning(*size, train_step_seconds_per_image()), file=sys.stderr)
        return 0
    print("usage: python -m genrestudy.run.stack extras | device [PROFILE]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
