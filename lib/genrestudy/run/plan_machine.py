"""Unit costs measured on the machine the plan answers for, kept in a file.

``--plan --cores N --gpu`` answers for another machine by scaling this machine's unit costs: each
core as fast as one here, ResNet-50 at a published GPU throughput, the dense and recurrent networks
as slow as here. This module replaces those assumptions with a measurement made there:

    python -m genrestudy.run.plan_machine --profile paper --out costs.json     # on the machine to plan for
    ./run_all.sh --profile paper --plan --costs costs.json [--workers N]   # anywhere

On the machine measured, the Keras units run at the study's own batch (:data:`STUDY_BATCH`) in the
precision the study resolves there (:func:`genrestudy.device.resolve_precision`), and the LightGBM
round is timed with every core busy (one single-threaded fit per core at once, each fit's CPU time),
which is how the searches use a machine. The file says what the machine was, when, and under which
Keras backend; the plan prints that beside every figure it derives. A file is checked before use
(format, known units, positive finite costs, the machine's cores); anything else is refused in one line.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from . import plan_costs

FORMAT = 1
#: the batch of the study's Keras training (end-to-end ResNet-50, small networks, CGANs, dense heads)
STUDY_BATCH = 32
#: a costs file is small; anything larger is not one
MAX_FILE_BYTES = 1 << 20
#: the units a measured file must give (the plan derives the rest from them)
REQUIRED_UNITS = tuple(u for u in plan_costs.UNITS if u != "cgan_waveform_row")


class CostsFileError(ValueError):
    """A costs file that cannot be used, with the one-line reason."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    """The first GPU's name from ``nvidia-smi`` (no framework call), None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip() if out else None


def describe_this_machine(precision: str) -> dict:
    import keras

    from .. import device

    gpu = device.accelerator() == "gpu"
    return {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "gpu": (_gpu_name() or "a GPU") if gpu else None,
            "keras_backend": keras.config.backend(), "precision": precision,
            "python": platform.python_version(), "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}



def measure_boosting_round_busy(train_rows: int, processes: int) -> float:
    """CPU seconds per boosting round of one single-threaded fit while ``processes`` such fits run at once
    (the median over them): a core's cost when every core is busy, as in the searches."""
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        per_fit = sorted(pool.map(plan_costs.measure_boosting_round, [train_rows] * processes))
    return per_fit[len(per_fit) // 2]


def measure(profile: str = "paper") -> dict:
    """The plan's unit costs on this machine at ``profile``'s sizes, as a costs file's content."""
    import keras

    from .. import device
    from ..signals import sequences
    from ..networks import smallnets
    from . import plan_work
    from ..signals.images import ImageParams

    precision = device.resolve_precision("auto", training=True)
    keras.config.set_dtype_policy(device.POLICIES[precision])
    size = plan_work.plan(profile)[0]
    train_rows = int(size.segments * plan_work.TRAIN_SHARE)
    grid = smallnets.GRIDS["paper" if profile != "demo" else "demo"]
    frames = sequences.SequenceParams().frames(ImageParams().segment_samples)
    costs = plan_costs.measure_unit_costs(train_rows, image_size=grid.image_size, frames=frames,
                                          n_features=len(sequences.FEATURE_NAMES), batch=STUDY_BATCH)
    cores = os.cpu_count() or 1
    costs["boosting_round"] = measure_boosting_round_busy(train_rows, cores)
    return {"format": FORMAT, "profile": profile, "batch": STUDY_BATCH, "machine": describe_this_machine(precision),
            "costs": costs}


def _checked(content) -> dict:
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CostsFileError(f"not a costs file of format {FORMAT} (write one with python -m genrestudy.run.plan_machine)")
    machine, costs = content.get("machine"), content.get("costs")
    if not isinstance(machine, dict) or not isinstance(costs, dict):
        raise CostsFileError("a costs file needs a 'machine' and a 'costs' object")
    cores = machine.get("cores")
    if not isinstance(cores, int) or isinstance(cores, bool) or not 1 <= cores <= 4096:
        raise CostsFileError(f"machine.cores must be a whole number from 1 to 4096, got {cores!r}")
    if machine.get("gpu") is not None and not isinstance(machine.get("gpu"), str):
        raise CostsFileError("machine.gpu must be the GPU's name or null")
    unknown = sorted(set(costs) - set(plan_costs.UNITS))
    missing = [u for u in REQUIRED_UNITS if u not in costs]
    if unknown or missing:
        raise CostsFileError(f"costs: unknown units {unknown}, missing units {missing}")
    bad = [u for u, c in costs.items() if isinstance(c, bool) or not isinstance(c, (int, float))
           or not math.isfinite(c) or c <= 0]
    if bad:
        raise CostsFileError(f"costs must be positive finite seconds; not so for {bad}")
    return content


def load(path) -> dict:
    """A costs file's content, checked (:class:`CostsFileError` with the reason otherwise)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CostsFileError(f"{path.name}: {path.stat().st_size:,} bytes is too large for a costs file")
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CostsFileError(f"cannot read the costs file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CostsFileError(f"{path.name} is not JSON: {exc}") from None
    return _checked(content)


def label(content: dict) -> str:
    """The measured machine in words, for the plan's lines."""
    m = content["machine"]
    gpu = f" + one {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (f"{m['cores']} cores ({m.get('cpu', 'unknown CPU')}){gpu}, measured there on {m.get('measured_at', '?')} "
            f"(Keras {m.get('keras_backend', '?')} backend, {m.get('precision', '?')})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genrestudy.run.plan_machine",
                                     description="Measure the plan's unit costs on this machine and write them.")
    parser.add_argument("--profile", default="paper", help="the profile whose sizes to measure at (default paper)")
    parser.add_argument("--out", required=True, help="the costs file to write (JSON)")
    args = parser.parse_args(argv)
    content = measure(args.profile)
    Path(args.out).write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {label(content)}")
    for unit, seconds in content["costs"].items():
        print(f"  {plan_costs.UNITS.get(unit, unit)}: {seconds * 1000:.3g} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
