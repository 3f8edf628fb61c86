"""The plan of a profile's run: the work each notebook will do, and about how long it takes.

``./run_all.sh --profile paper --plan`` (``python -m genrestudy.run.plan paper [--cores N] [--gpu]
[--workers N] [-p NAME VALUE ...]``) prints what the profile runs and leaves out, then per notebook
the work its parameters ask for (:mod:`genrestudy.run.plan_work`) — LightGBM fits and boosting rounds,
end-to-end epochs × images, images to build and to extract with every compared backbone, the six
networks' grids, both CGANs, the dense heads, the KNN's evaluations — and an estimate of its
duration from per-unit costs measured here in about a minute (:mod:`genrestudy.run.plan_costs`).
``--cores N --gpu`` answers for another machine (this machine's cost per core; ResNet-50's
published GPU throughput, stated as such), ``--workers N`` for N such machines as Dask workers (the
searches' fits and the independent method fits spread over them). ``--costs FILE`` answers for a
machine from unit costs measured there (:mod:`genrestudy.run.plan_machine`), nothing scaled. It ends with the part that
dominates, and the rounds and duration of the exhaustive search that the profile's halving replaces.

It imports no notebook's code, so it runs before GTZAN or the weights are in place; without GTZAN
in ``data/gtzan`` it assumes GTZAN's 1,000 clips and says so. The estimate is an upper bound for
the LightGBM searches (every fit is counted at its full rounds; early stopping ends many sooner)
and a rough one for the rest. ``GENRESTUDY_PLAN_MEASURE=0`` skips the measurement (work only).
"""
from __future__ import annotations

import os
import sys

from . import plan_costs, plan_machine, profiles
from .plan_costs import Machine, part_of
from .plan_searches import FEWER_ROUNDS_FACTOR, STUDY_FACTOR, SearchLedger, n_candidates, search_rounds  # noqa: F401
from .plan_time import NotebookWork, duration as _duration, wave_seconds  # noqa: F401
from .plan_work import GTZAN_CLIPS, TRAIN_SHARE, StudySize, measure_unit_costs, plan  # noqa: F401


def _cost_lines(costs: dict, machine: Machine) -> list[str]:
    where = machine.measured or f"this machine ({os.cpu_count() or 1} cores)"
    out = [f"unit costs measured on {where}, per core for the CPU units:"]
    out += [f"  {plan_costs.UNITS.get(u, u)}: {c * 1000:.3g} ms" for u, c in costs.items()]
    if machine.measured:
        out.append(f"answering for {machine.describe()}: from its own costs (LightGBM timed with every core busy), "
                   f"the compared backbones relative to its ResNet-50 by {plan_costs.KERAS_TABLE_SOURCE}; "
                   "Table 7's method runs over the workers, each whole on one, longest first")
        return out
    if machine.gpu:
        out += [f"GPU figures (published, not measured here): {plan_costs.PUBLISHED_GPU['source']}; compared "
                f"backbones relative to ResNet-50 from {plan_costs.KERAS_TABLE_SOURCE}; the small CNNs and the waveform "
                "CGAN (about 200 M dense weights) are assumed to gain what ResNet-50's training gains, the MLP, LSTMs, "
                "feature CGAN and dense heads to gain nothing"]
    if machine.cores != (os.cpu_count() or 1) or machine.workers > 1:
        runs = (f"Table 7's method runs and their tasks over {machine.workers} machines of {machine.slots} worker "
                f"processes ({plan_costs.PROCESS_THREADS} threads each, one training at a time in each), each whole on "
                "one, longest first, a machine's GPU jobs taking its GPU in turn; a Keras step off the GPU, measured "
                f"here on {os.cpu_count() or 1} cores, as slow in a process's {plan_costs.PROCESS_THREADS} threads or "
                "slower in proportion; the notebooks of a wave at once (run_all.sh --scheduler)" if machine.slots > 1 else
                f"Table 7's method runs over {machine.workers} worker(s), each whole on one, longest first")
        out.append(f"answering for {machine.describe()}: each core as fast as one here; LightGBM fits and images "
                   f"spread over all {machine.cores * machine.workers} cores; {runs}; a notebook's own work on one "
                   "machine (no transfer or scheduling overhead counted)")
    return out


def _rounds_lines(works: list[NotebookWork], ledger: SearchLedger) -> list[str]:
    rounds = int(sum(w.units.get("boosting_round", 0) for w in works))
    other = rounds - ledger.run_rounds   # refits, retrains, Table 8's fit
    out = [f"boosting rounds in all: at most {rounds:,} ({len(ledger.seen)} distinct searches {ledger.run_rounds:,}, "
           f"refits and retrains {other:,}); {ledger.asked_rounds + other:,} if every notebook ran its own searches"]
    if ledger.fewer_rounds != ledger.run_rounds:
        out.append(f"  not this run's setting: halving with factor {FEWER_ROUNDS_FACTOR} instead of {STUDY_FACTOR} would "
                   f"train at most {ledger.fewer_rounds + other:,} ({(ledger.fewer_rounds + other) / (ledger.asked_rounds + other):.0%}"
                   f" of {ledger.asked_rounds + other:,}); bench/tune.py measures its halving gap")
    return out


def format_plan(profile: str, size: StudySize, works: list[NotebookWork], ledger: SearchLedger,
                costs: dict | None, machine: Machine) -> str:
    """The plan as printed: what the profile runs, each notebook's work and time, what dominates, the exhaustive search."""
    out = profiles.describe(profile)
    out.append(f"plan of the {profile} profile: {size.clips:,} clips ({size.segments:,} segments)"
               + (" — ASSUMED: GTZAN's 1,000 clips (data/gtzan is absent or empty)" if size.assumed else ""))
    scaled = plan_costs.machine_costs(costs, machine) if costs else None
    if costs:
        out += _cost_lines(costs, machine)
    timed = [w for w in works if scaled and w.known and w.units]
    per_unit = {w.notebook: w.seconds_by_unit(scaled, machine) for w in timed}
    for work in works:
        estimate = f" — about {_duration(sum(per_unit[work.notebook].values()))}" if work in timed else ""
        out.append(f"{work.notebook}{estimate}")
        out += [f"  {line}" for line in work.lines]
    total, by_part = 0.0, {}
    for group, seconds, line in wave_seconds(timed, scaled, machine) if scaled else ():
        alone = sum(sum(per_unit[w.notebook].values()) for w in group)
        for work in group:   # a wave's time shared among its notebooks' units as their time alone
            for unit, unit_seconds in per_unit[work.notebook].items():
                by_part[part_of(unit)] = by_part.get(part_of(unit), 0.0) + unit_seconds * seconds / (alone or 1)
        total += seconds
        out += [line] if line else []
    out += _rounds_lines(works, ledger)
    if scaled:
        out.append(f"estimated duration on {machine.describe()}: about {_duration(total)}")
        ranked = sorted(by_part.items(), key=lambda kv: -kv[1])
        out.append("dominated by " + "; ".join(f"{part} {_duration(sec)} ({sec / total:.0%})"
                                              for part, sec in ranked[:3] if total))
        round_seconds = plan_costs.machine_costs(costs, machine)["boosting_round"] / (machine.cores * machine.workers)
        if ledger.exhaustive_rounds != ledger.run_rounds:
            out.append(f"the exhaustive search instead of halving (every candidate to its full rounds, as the source): "
                       f"{ledger.exhaustive_rounds:,} rounds for the searches instead of {ledger.run_rounds:,}, about "
                       f"{_duration(ledger.exhaustive_rounds * round_seconds)} of LightGBM on {machine.describe()}")
    elif ledger.exhaustive_rounds != ledger.run_rounds:
        out.append(f"the exhaustive search instead of halving: {ledger.exhaustive_rounds:,} rounds for the searches "
                   f"instead of {ledger.run_rounds:,}")
    return "\n".join(out)


def parse_machine(args: list[str]) -> tuple[Machine, list[str], dict | None]:
    """``--cores N``, ``--gpu``, ``--workers N`` and ``--costs FILE`` from ``args`` (default: this machine),
    the rest, and the costs measured on the machine when ``--costs`` names a file (:mod:`genrestudy.run.plan_machine`)."""
    here = os.cpu_count() or 1
    cores, gpu, workers, costs_file, rest = None, False, 1, None, []
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in ("--cores", "--workers"):
            if not args or not args[0].isdigit() or int(args[0]) < 1:
                raise profiles.ProfileError(f"{arg} needs a whole number of at least 1")
            value = int(args.pop(0))
            cores, workers = (value, workers) if arg == "--cores" else (cores, value)
        elif arg == "--gpu":
            gpu = True
        elif arg == "--costs":
            if not args:
                raise profiles.ProfileError("--costs needs a file written by python -m genrestudy.run.plan_machine")
            costs_file = args.pop(0)
        else:
            rest.append(arg)
    if costs_file is None:
        cores = cores or here
        return Machine(cores, gpu, workers, here=(cores == here and not gpu and workers == 1)), rest, None
    if cores is not None or gpu:
        raise profiles.ProfileError("--costs names the machine measured; --cores and --gpu go without it")
    try:
        content = plan_machine.load(costs_file)
    except plan_machine.CostsFileError as exc:
        raise profiles.ProfileError(str(exc)) from None
    machine = Machine(content["machine"]["cores"], bool(content["machine"].get("gpu")), workers, here=False,
                      measured=plan_machine.label(content))
    return machine, rest, content["costs"]


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python -m genrestudy.run.plan PROFILE [--cores N] [--gpu | --costs FILE] [--workers N] [-p NAME VALUE ...]",
              file=sys.stderr)
        return 2
    try:
        machine, rest, costs = parse_machine(args[1:])
        overrides = profiles.parse_overrides(rest)
        profiles.check_overrides(overrides)
        size, works, ledger = plan(args[0], overrides)
    except profiles.ProfileError as exc:
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 1
    if costs is None and os.environ.get("GENRESTUDY_PLAN_MEASURE", "1") != "0":
        print("measuring unit costs (about a minute) ...", file=sys.stderr, flush=True)
        costs = measure_unit_costs(size, args[0])
    print(format_plan(args[0], size, works, ledger, costs, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
