"""How long a notebook's work takes on a machine, and notebooks that run at once on a cluster.

:class:`NotebookWork` holds a notebook's counted work (:mod:`genrestudy.run.plan_work`) by how it spreads, and
turns it into seconds on a :class:`~genrestudy.run.plan_costs.Machine`: work over every core, jobs scheduled on
the workers' processes (:func:`genrestudy.run.cluster.schedule`), stage after stage, prepared searches alongside
the tasks. :func:`wave_seconds` puts notebooks that run at once on a cluster together.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .cluster import schedule, waves
from .plan_costs import Machine, job_cost, on_gpu, unit_cost

#: how a unit of work outside a job spreads: over every core of every worker (the searches' fits, images), the
#: same alongside the method tasks on a cluster (a method's prepared search: :func:`genrestudy.report.table7._prepare`),
#: over the cores of the notebook's machine (a winner's refit), or not at all (one model's epochs, a notebook's own work)
SPREADS = ("cores", "prepared", "machine", "one")
#: the stage of a job that is a method run: after every task the methods run before (:meth:`NotebookWork.add_job`)
RUNS_STAGE = 1_000


@dataclass
class NotebookWork:
    """What one notebook will do: printable lines and counts of work units, by how they spread."""

    notebook: str
    lines: list[str] = field(default_factory=list)
    units: dict[str, float] = field(default_factory=dict)
    parts: dict[tuple[str, str], float] = field(default_factory=dict)
    jobs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    known: bool = True

    def add(self, unit: str, count: float, *, spread: str = "one") -> None:
        if spread not in SPREADS:
            raise ValueError(f"spread={spread!r}; expected one of {SPREADS}")
        self.units[unit] = self.units.get(unit, 0.0) + count
        self.parts[unit, spread] = self.parts.get((unit, spread), 0.0) + count

    def add_job(self, units: dict[str, float], *, stage: int = RUNS_STAGE) -> None:
        """One task that a Dask worker takes whole, ``{unit: count}``: a method run (the last stage), or a task
        a method runs before (``stage`` 0, 1, ...: :meth:`genrestudy.methods.Method.tasks`)."""
        for unit, count in units.items():
            self.units[unit] = self.units.get(unit, 0.0) + count
        self.jobs.append((stage, dict(units)))

    def seconds_by_unit(self, costs: dict, machine: Machine) -> dict[str, float]:
        """Seconds per unit of this notebook on ``machine`` (``costs``: :func:`genrestudy.run.plan_costs.machine_costs`):
        a stage of jobs lasts its schedule over the workers' processes (:func:`genrestudy.run.cluster.schedule`),
        shared among its units in proportion to their seconds. On a cluster the prepared searches' fits run
        alongside the tasks before the method runs, on the cores the tasks leave: together they last the longer
        of the tasks' stages and the fits plus the tasks' work spread over every process."""
        out: dict[str, float] = {}
        prepared: dict[str, float] = {}
        for (unit, spread), seconds in self._spread_seconds(costs, machine).items():
            into = prepared if spread == "prepared" else out
            into[unit] = into.get(unit, 0.0) + seconds
        tasks: dict[str, float] = {}
        tasks_busy = 0.0
        for stage in sorted({stage for stage, _ in self.jobs}):   # stage after stage, each spread longest first
            jobs = [{unit: count * job_cost(unit, costs, machine) for unit, count in job.items()}
                    for at, job in self.jobs if at == stage]
            busy = sum(sum(job.values()) for job in jobs)
            span = schedule([(sum(job.values()), any(on_gpu(unit, machine) for unit in job)) for job in jobs],
                            machine.workers, machine.slots)
            into = tasks if stage < RUNS_STAGE else out
            tasks_busy += busy if stage < RUNS_STAGE else 0.0
            for job in jobs if busy else ():
                for unit, seconds in job.items():
                    into[unit] = into.get(unit, 0.0) + seconds * span / busy
        apart = sum(prepared.values()) + sum(tasks.values())
        together = apart
        if machine.workers > 1 and prepared and tasks:
            together = max(sum(tasks.values()), sum(prepared.values()) + tasks_busy / (machine.workers * machine.slots))
        for unit, seconds in [*prepared.items(), *tasks.items()]:
            out[unit] = out.get(unit, 0.0) + (seconds * together / apart if apart else 0.0)
        return out

    def seconds(self, costs: dict, machine: Machine) -> float:
        return sum(self.seconds_by_unit(costs, machine).values())

    def load(self, costs: dict, machine: Machine) -> tuple[float, float]:
        """``(cluster, here)``: seconds of this notebook's work were it alone on the cluster's cores and
        processes (its work spread over every core, its jobs' over every worker process), and on the notebook's
        own machine (its own work), for notebooks that share them (:func:`genrestudy.run.plan.wave_seconds`)."""
        cluster = here = 0.0
        for (_, spread), seconds in self._spread_seconds(costs, machine).items():
            if spread in ("machine", "one"):
                here += seconds
            else:
                cluster += seconds
        jobs = sum(count * job_cost(unit, costs, machine) for _, job in self.jobs for unit, count in job.items())
        return cluster + jobs / (machine.workers * machine.slots), here

    def _spread_seconds(self, costs: dict, machine: Machine) -> dict[tuple[str, str], float]:
        """``{(unit, spread): seconds}`` of the work outside jobs: over every core of every worker (``cores``,
        ``prepared``), over the notebook machine's cores (``machine``), or on one (``one``)."""
        share = {"machine": machine.cores, "one": 1}
        return {(unit, spread): count * unit_cost(unit, costs, machine) / share.get(spread, machine.cores * machine.workers)
                for (unit, spread), count in self.parts.items()}


def duration(seconds: float) -> str:
    """Seconds in words: ``"42 s"``, ``"17 min"``, ``"2.8 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def wave_seconds(works: list[NotebookWork], costs: dict, machine: Machine) -> list[tuple[list, float, str]]:
    """``(notebooks, seconds, line)`` per wave: one notebook after another, or on a cluster the notebooks of a wave
    at once (:func:`genrestudy.run.cluster.waves`, as ``run_all.sh --scheduler`` runs them). Then a wave lasts
    the longest of: its longest notebook alone, their work on the cluster together, their own work on the
    notebook's machine together (the cluster interleaves their tasks; no overhead counted)."""
    by_name = {w.notebook: w for w in works}
    groups = waves(list(by_name)) if machine.workers > 1 else [[name] for name in by_name]
    out = []
    for names in groups:
        group = [by_name[n] for n in names]
        alone = [w.seconds(costs, machine) for w in group]
        if len(group) == 1:
            out.append((group, alone[0], ""))
            continue
        loads = [w.load(costs, machine) for w in group]
        on_cluster, here = sum(c for c, _ in loads), sum(h for _, h in loads)
        seconds = max(max(alone), on_cluster, here)
        out.append((group, seconds, f"notebooks {names[0][:2]}-{names[-1][:2]} at once on the cluster: about "
                    f"{duration(seconds)} (one after another: {duration(sum(alone))}; the longest alone "
                    f"{duration(max(alone))}, their work on the cluster together {duration(on_cluster)}, on the "
                    f"notebook's machine {duration(here)})"))
    return out


def total_seconds(works: list[NotebookWork], costs: dict, machine: Machine) -> float:
    """The plan's estimate for ``works`` on ``machine`` (``costs`` already for that machine): its waves, added."""
    return sum(seconds for _, seconds, _ in wave_seconds([w for w in works if w.known and w.units], costs, machine))
