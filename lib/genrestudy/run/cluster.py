"""The study's work on an existing Dask cluster: where its scheduler is, and how work spreads.

Given a ``dask.distributed`` scheduler address (``./run_all.sh --scheduler tcp://host:8786``,
which sets :data:`SCHEDULER_ENV`; or a notebook's ``scheduler_address`` parameter), the
study fans out its two kinds of independent work:

* the fits of a LightGBM search (a rung of successive halving at a time; notebooks 03, 07, 09;
  :func:`genrestudy.models.search.evaluate_candidates`), through joblib's Dask backend;
* the method runs of Table 7, every registered method under every protocol at once
  (:func:`genrestudy.report.table7.run_protocols`; notebook 09), as Dask futures.

Without an address everything runs on this machine as before. Where a task runs changes no
result: a fit's seed, data and parameters travel with it, and a LightGBM score does not depend
on the number of threads (:func:`genrestudy.models.classifiers.multi_logloss`).

What each worker needs (README, "Running the audit on a Dask cluster"): the project installed
in its Python (``pip install -e .`` of the same commit: it imports ``genrestudy``), and the
same cache folder as the client, at the same path: a shared file system (NFS or the like, with
working ``flock``) mounted at the same place on every machine, ``GENRESTUDY_CACHE`` set alike
where the default ``data/cache`` of each checkout is not that place (:func:`check` refuses a
worker that sees another path). Method runs open the study's images and features from the
cache by path (never copied through the scheduler) and write their results there, under the
cache's file locks.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterable, Iterator

from ..progress import progress_bar

#: the environment variable that names the scheduler (``./run_all.sh --scheduler ADDRESS`` sets it)
SCHEDULER_ENV = "GENRESTUDY_SCHEDULER"
#: seconds to wait for the scheduler before saying it cannot be reached
CONNECT_TIMEOUT_S = 30


class ClusterError(RuntimeError):
    """The cluster cannot be used as asked; ``str(err)`` is one line."""


def inside_worker() -> bool:
    """Whether this code runs in a task on a Dask worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def scheduler_address(given: str | None = None) -> str | None:
    """The scheduler to use: ``given``, else ``$GENRESTUDY_SCHEDULER``, else None (this machine).

    Inside a task already running on a worker it is None: the task's own work (a method's
    search) runs on that worker's threads rather than queueing behind the task that waits for it.
    """
    address = (given or os.environ.get(SCHEDULER_ENV) or "").strip()
    if not address or inside_worker():
        return None
    if "://" not in address:
        raise ClusterError(f"scheduler address {address!r} lacks a protocol; expected e.g. tcp://host:8786 "
                           f"(from {'the scheduler_address parameter' if given else SCHEDULER_ENV})")
    return address


@contextlib.contextmanager
def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> Iterator:
    """A ``distributed.Client`` of the scheduler at ``address``, closed on exit; one line when it cannot be reached."""
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); start one "
                           f"with `dask scheduler`, or unset {SCHEDULER_ENV} to run here") from None
    try:
        yield client
    finally:
        client.close()


#: the worker resource that admits one model-training task at a time (``dask worker --resources keras=1``)
KERAS_RESOURCE = "keras"
#: one model-training task at a time in a worker process: Keras's seed (``keras.utils.set_random_seed``) and
#: its session are the process's, so two trainings in two threads of one worker would draw each other's numbers
_ONE_TRAINING = threading.RLock()


def one_at_a_time(function: Callable, *args):
    """``function(*args)`` while no other task of this process trains (:data:`_ONE_TRAINING`)."""
    with _ONE_TRAINING:
        return function(*args)


def _worker_resources(client) -> dict[str, dict]:
    """``{worker: its declared resources}`` (``dask worker --resources``)."""
    return {w: info.get("resources") or {} for w, info in client.scheduler_info().get("workers", {}).items()}


def _declared(client, resource: str) -> bool:
    return any(resource in declared for declared in _worker_resources(client).values())


def map_ordered(function: Callable, arguments: list[tuple], address: str, *, shared: tuple = (),
                desc: str = "tasks", progress: bool = True, training: bool = False) -> list:
    """``[function(*shared, *a) for a in arguments]``, each call a task on the cluster at
    ``address``, results in order; ``shared`` is sent to the cluster once, not with every task.

    ``training``: each task trains a model (a method run, a network's configuration, a CGAN), so one
    runs at a time in a worker process (:func:`one_at_a_time`); where the workers declare the
    :data:`KERAS_RESOURCE` the scheduler sends each worker process one such task at a time, else they
    queue inside the process. A task that fails raises its error here (in one line of
    ``ClusterError`` when the worker cannot import the project).
    """
    from distributed import as_completed

    with connect(address) as client:
        common = [client.scatter(value, hash=False) for value in shared]
        extra = {"resources": {KERAS_RESOURCE: 1}} if training and _declared(client, KERAS_RESOURCE) else {}
        head = (one_at_a_time, function) if training else (function,)
        futures = [client.submit(*head, *common, *args, pure=False, **extra) for args in arguments]
        finished = as_completed(futures, loop=client.loop)
        for future in progress_bar(finished, total=len(futures), desc=desc, enabled=progress, leave=False):
            if future.status == "error":
                error = future.exception()
                if isinstance(error, ModuleNotFoundError) and "genrestudy" in str(error):
                    raise ClusterError(f"a worker of {address} cannot import genrestudy: install the project "
                                       "in every worker's Python (README, 'Running the audit on a Dask cluster')")
                raise error
        return [future.result() for future in futures]


def makespan(task_seconds: Iterable[float], n_workers: int) -> float:
    """Wall time of independent tasks of the given durations spread over ``n_workers`` equal
    workers, each task whole on one worker, longest first (what the scheduler does in effect):
    :func:`schedule` with one process per worker and no GPU job. A lower bound is
    ``max(sum / n_workers, longest task)``; greedy longest-first is within 4/3 of the best.

    >>> makespan([4, 3, 3, 2], 2), makespan([10, 1, 1], 8)
    (6.0, 10.0)
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    return schedule(((seconds, False) for seconds in task_seconds), n_workers)


def schedule(jobs: Iterable[tuple[float, bool]], n_machines: int, slots: int = 1) -> float:
    """Wall time of independent jobs ``(seconds, on_gpu)`` on ``n_machines`` machines of ``slots`` worker
    processes each (one training at a time per process, :func:`one_at_a_time`) and one GPU each: longest first,
    each job to the machine where it can start soonest; a GPU job also waits for its machine's GPU (its
    jobs take the GPU in turn). A schedule these jobs can keep, so an upper bound of the best one.

    >>> schedule([(4, False), (3, False), (3, False), (2, False)], 2), schedule([(4, True), (4, True)], 1, slots=2)
    (6.0, 8.0)
    >>> schedule([(6, False), (4, True), (4, True)], 2, slots=2)
    6.0
    """
    if n_machines < 1 or slots < 1:
        raise ValueError(f"need at least one machine and one slot, got {n_machines} and {slots}")
    loads = [[0.0] * int(slots) for _ in range(int(n_machines))]
    gpu_free = [0.0] * int(n_machines)
    for seconds, on_gpu in sorted(((float(s), bool(g)) for s, g in jobs), reverse=True):
        starts = [max(min(load), gpu_free[m]) if on_gpu else min(load) for m, load in enumerate(loads)]
        m = starts.index(min(starts))
        slot = loads[m].index(min(loads[m]))
        loads[m][slot] = starts[m] + seconds
        if on_gpu:
            gpu_free[m] = loads[m][slot]
    return max(max(load) for load in loads)


def cores_by_host(client) -> dict[str, int]:
    """``{host: cores}`` of the cluster's machines: several worker processes of one machine share its cores."""
    cores = client.run(os.cpu_count)   # {worker address: cores of its machine}
    hosts = {w: info.get("host") or w for w, info in client.scheduler_info().get("workers", {}).items()}
    return {hosts.get(w, w): int(c or 1) for w, c in cores.items()}


def _worker_facts() -> dict:
    import genrestudy

    from .. import paths

    return {"genrestudy": getattr(genrestudy, "__version__", "?"), "cache": str(paths.cache_dir()),
            "cores": os.cpu_count()}


def check(address: str) -> list[str]:
    """One line per worker of the cluster at ``address`` (threads, its cache folder, its keras resource), after
    checking that each imports genrestudy and sees the client's cache folder; ClusterError if not."""
    from .. import paths

    with connect(address) as client:
        threads = client.nthreads()
        if not threads:
            raise ClusterError(f"the Dask scheduler at {address} has no workers; start some with "
                               f"`dask worker {address}`")
        try:
            facts = client.run(_worker_facts)
        except Exception as exc:  # a worker without the project cannot even unpickle the probe
            raise ClusterError(f"a worker of {address} cannot run genrestudy ({type(exc).__name__}: {exc}); "
                               "install the project in every worker's Python") from None
        resources = _worker_resources(client)
    here = str(paths.cache_dir())
    elsewhere = sorted(w for w, f in facts.items() if f["cache"] != here)
    if elsewhere:
        raise ClusterError(f"workers {', '.join(elsewhere)} use another cache folder than {here}; "
                           "mount the shared cache at the same path or set GENRESTUDY_CACHE")
    lines = [f"{w}: {threads[w]} threads, genrestudy {facts[w]['genrestudy']}, cache {facts[w]['cache']}, "
             f"{KERAS_RESOURCE}={resources.get(w, {}).get(KERAS_RESOURCE, 'not declared')}" for w in sorted(threads)]
    if not any(KERAS_RESOURCE in r for r in resources.values()):
        lines.append(f"no worker declares {KERAS_RESOURCE}=1: model trainings queue one at a time inside each worker "
                     f"process (start workers with --resources {KERAS_RESOURCE}=1, README)")
    return lines


#: the notebooks that run at once with a cluster (``run_all.sh --scheduler``), wave after wave: 03-07 each read
#: only what 01 and 02 built (images, signals, ResNet-50 features; anything else they build under the cache's
#: locks) and send their searches and trainings to the same cluster, which interleaves them; 08 measures time
#: and memory, so it runs alone; 09 reads them all
NOTEBOOK_WAVES = (("01",), ("02",), ("03", "04", "05", "06", "07"), ("08",), ("09",))


def waves(notebooks: list[str]) -> list[list[str]]:
    """``notebooks`` (paths or names starting with their number) grouped into :data:`NOTEBOOK_WAVES`, in order;
    a notebook no wave names runs alone, after the waves before its number."""
    from pathlib import Path

    out: list[tuple[str, list[str]]] = []
    for notebook in sorted(notebooks, key=lambda n: Path(n).name):
        number = Path(notebook).name[:2]
        wave = next((w for w in NOTEBOOK_WAVES if number in w), (number,))
        if out and out[-1][0] == wave[0]:
            out[-1][1].append(notebook)
        else:
            out.append((wave[0], [notebook]))
    return [group for _, group in out]


def main(argv=None) -> int:
    """``python -m genrestudy.run.cluster check [ADDRESS]`` (default ``$GENRESTUDY_SCHEDULER``), as
    ``run_all.sh --scheduler`` calls it; ``... waves NOTEBOOK...``: one line per wave (:func:`waves`)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["waves"]:
        for wave in waves(args[1:]):
            print(" ".join(wave))
        return 0
    if not args or args[0] != "check" or len(args) > 2:
        print("usage: python -m genrestudy.run.cluster check [tcp://host:8786] | waves NOTEBOOK...", file=sys.stderr)
        return 2
    try:
        address = scheduler_address(args[1] if len(args) == 2 else None)
        if address is None:
            raise ClusterError(f"no scheduler address given and {SCHEDULER_ENV} is not set")
        for line in check(address):
            print(line)
    except ClusterError as exc:
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
