"""Issue 22's time targets by the plan, over repeated measurements of its unit costs on this machine.

``./run_all.sh --profile P --plan ...`` measures its unit costs once, in about a minute, and this
machine's speed moves by about 20 % from one minute to the next. This script measures the costs
``--repeats`` times and answers, from each measurement, for the two machines issue 22 names:

* ``--profile paper`` on one machine of 16 cores + one A100-class GPU (target: at most 3 h);
* ``--profile audit`` on 8 Dask workers of such machines (target: at most 4 h);

the same figures as ``./run_all.sh --profile paper --plan --cores 16 --gpu`` and
``--profile audit --plan --workers 8 --cores 16 --gpu`` (:func:`genrestudy.run.plan_time.wave_seconds`),
with the paper profile's boosting rounds (target: at most 0.6 M). The GPU figures are published,
not measured here (:data:`genrestudy.run.plan_costs.PUBLISHED_GPU`); the plan says which units it
assumes gain nothing on a GPU.

Usage::

    nice python bench/plan_targets.py               # 3 measurements, about 5 minutes on 2 cores
    python bench/plan_targets.py --repeats 1        # one

The last line is ``paper <lo>-<hi> h (target 3 h), audit <lo>-<hi> h (target 4 h) over <n> measurements``.
Each run writes its report to ``bench/reports/plan_targets.md`` (``--report PATH``; see ``bench/report.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/report.py
from report import add_report_option, bench_report, size_statement  # noqa: E402

#: issue 22's targets, hours
TARGETS = {"paper": 3.0, "audit": 4.0}
ROUNDS_TARGET = 600_000


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from genrestudy.run import plan_costs, plan_work
    from genrestudy.run.plan_costs import Machine
    from genrestudy.run.plan_time import total_seconds

    machines = {"paper": Machine(16, gpu=True, here=False), "audit": Machine(16, gpu=True, workers=8, here=False)}
    plans = {profile: plan_work.plan(profile) for profile in machines}
    paper_rounds = int(sum(w.units.get("boosting_round", 0) for w in plans["paper"][1]))
    print(f"paper profile: {paper_rounds:,} boosting rounds at most (target {ROUNDS_TARGET:,})")
    hours = {profile: [] for profile in machines}
    for repeat in range(args.repeats):
        size = plans["paper"][0]
        costs = plan_work.measure_unit_costs(size, "paper")   # the audit's units are measured at the same sizes
        line = [f"measurement {repeat + 1}: round {costs['boosting_round'] * 1000:.0f} ms, feature CGAN row "
                f"{costs['cgan_feature_row'] * 1000:.2f} ms, LSTM row {costs['smallnet_row:net5'] * 1000:.2f} ms"]
        for profile, machine in machines.items():
            seconds = total_seconds(plans[profile][1], plan_costs.machine_costs(costs, machine), machine)
            hours[profile].append(seconds / 3600)
            line.append(f"{profile} on {machine.describe()}: {seconds / 3600:.2f} h")
        print("; ".join(line), flush=True)
    for profile, values in hours.items():
        met = "within" if max(values) <= TARGETS[profile] else "NOT within"
        print(f"{profile}: {min(values):.2f}-{max(values):.2f} h over {len(values)} measurements, {met} the "
              f"{TARGETS[profile]:.0f} h target at every one")
    print(f"paper {min(hours['paper']):.1f}-{max(hours['paper']):.1f} h (target 3 h), audit "
          f"{min(hours['audit']):.1f}-{max(hours['audit']):.1f} h (target 4 h) over {args.repeats} measurements")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="measurements of the unit costs")
    add_report_option(parser, "plan_targets")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    size = size_statement(parser, args, ["repeats"])
    with bench_report("plan_targets", args.report, argv=argv, size=size, libraries=("lightgbm", "keras")):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
