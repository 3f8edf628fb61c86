"""Table 7: every registered method of the study under each split protocol, with the paper's rows.

Every number of ours is computed in the run that writes the table, at segment level (as the
paper) and track level, each with an interval over test tracks (exact for accuracy). The paper's numbers
come from the methods that have them (``Method.paper``, restated from ``docs/PAPER.md``) and
appear in rows of their own, labelled with that source, never mixed with ours.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ..run import cluster
from .evaluation import METRICS, score_with_ci  # noqa: F401  (Table 7's metrics, scored with intervals)
from ..methods import StudyData, is_cached, method_of, registered, run_method
from ..progress import progress_bar
from .reports import restated_source

PAPER_SOURCE = restated_source("paper", "docs/PAPER.md")
OUR_SOURCE = "this study (measured)"

#: which methods a Table 7 holds (notebook 09's ``table7_methods``)
METHOD_SETS = ("all", "paper")


def chosen_methods(inputs, which: str = "all") -> list:
    """The registered methods that apply to ``inputs``: ``"all"`` of them, or ``"paper"``: the paper's own
    (those that carry the paper's Table 7 numbers), for a Table 7 that is the paper's and nothing else."""
    if which not in METHOD_SETS:
        raise ValueError(f"table7_methods={which!r}; expected one of {', '.join(METHOD_SETS)}")
    return [m for m in registered(inputs) if which == "all" or m.paper]


def run_methods(data: StudyData, split, methods=None, *, scheduler_address: str | None = None,
                progress: bool = True) -> dict:
    """``{key: MethodRun}`` of every method (default: every registered one that applies to the data's
    inputs) under ``split``: each trained on its train/valid parts or read from its cache
    (:func:`genrestudy.methods.run_method`); on a Dask cluster when one is given (:func:`run_protocols`)."""
    methods = list(methods) if methods is not None else registered(data.inputs)
    if cluster.scheduler_address(scheduler_address) is not None:
        return run_protocols(data, {"split": split}, methods, scheduler_address=scheduler_address,
                             progress=progress)["split"]
    runs = {}
    for method in progress_bar(methods, desc="methods", enabled=progress, leave=False):
        run = run_method(method, data, split)
        runs[run.key] = run
    return runs


def _run_on_worker(data: StudyData, method, split):
    return run_method(method, data, split)


def _run_task(function, args):
    function(*args)


def _run_stages(stages: list[list], address: str, progress: bool) -> None:
    for i, stage in enumerate(stages):
        cluster.map_ordered(_run_task, stage, address, desc=f"method tasks, stage {i + 1}", progress=progress,
                            training=True)


def _prepare(data: StudyData, splits: dict, todo: list, address: str, *, progress: bool) -> None:
    """What the methods of ``todo`` (``(protocol, method)``) build before their runs: their
    :meth:`~genrestudy.methods.Method.tasks` on the cluster, stage after stage, every method's tasks of a
    stage at once, while each one's :meth:`~genrestudy.methods.Method.prepare` runs here alongside (its
    search's fits go to the same cluster and fill what the tasks leave idle)."""
    prepares, stages = [], []
    for protocol, method in todo:
        instance = method_of(method)(data.inputs)
        train, valid = data.part(splits[protocol], "train"), data.part(splits[protocol], "valid")
        prepares.append((instance, train, valid))
        for i, stage in enumerate(instance.tasks(train, valid)):
            stages.extend([] for _ in range(i + 1 - len(stages)))
            stages[i].extend(stage)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="method-tasks") as pool:
        tasks = pool.submit(_run_stages, stages, address, progress)
        for instance, train, valid in prepares:
            instance.prepare(train, valid)
        tasks.result()


def run_protocols(data: StudyData, splits: dict, methods=None, *, scheduler_address: str | None = None,
                  progress: bool = True) -> dict:
    """``{protocol: {key: MethodRun}}``: :func:`run_methods` under every split of ``splits``
    (``{protocol: split}``).

    With a Dask scheduler (``scheduler_address``, else ``$GENRESTUDY_SCHEDULER``;
    :func:`genrestudy.run.cluster.scheduler_address`) every method run not yet cached is a task on
    the cluster, all protocols at once; the inputs they need are built here first, and the
    workers read them from the shared cache (:mod:`genrestudy.run.cluster`). What a method prepares
    (:meth:`genrestudy.methods.Method.prepare`: its searches) is built here first too, its fits spread
    over every worker, once for the methods that share it. The runs are the same wherever they ran:
    the same cached entries, keyed by the same inputs.
    """
    methods = list(methods) if methods is not None else registered(data.inputs)
    address = cluster.scheduler_address(scheduler_address)
    done = {}
    if address is not None:
        todo = [(p, m) for p, split in splits.items() for m in methods if not is_cached(m, data, split)]
        _prepare(data, splits, todo, address, progress=progress)
        if todo:
            remote = cluster.map_ordered(_run_on_worker, [(method_of(m), splits[p]) for p, m in todo], address,
                                         shared=(data,), desc="method runs", progress=progress,
                                         training=True)
            done = dict(zip(todo, remote))
    out = {}
    for protocol, split in splits.items():
        runs = {}
        for method in methods:
            run = done[(protocol, method)] if (protocol, method) in done else run_method(method, data, split)
            runs[run.key] = run
        out[protocol] = runs
    return out


def protocol_rows(data: StudyData, split, *, protocol: str, methods=None, runs: dict | None = None,
                  n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 7's rows of every method under one split, and what each method reported.

    Parameters
    ----------
    data : StudyData
        The images (and features) of the study's inputs.
    split : array-like
        ``train``/``valid``/``test`` per image.
    protocol : str
        The protocol's name, for the table.
    methods : list, optional
        Registered keys or classes (default: every registered method, in registration order).
        Each is trained on the split, or read from its cache (:func:`genrestudy.methods.run_method`).
    runs : dict, optional
        :func:`run_methods`'s result for this split, when the caller already has it.

    Returns
    -------
    (rows, details)
        ``rows``: two per method (segment and track level). ``details``: one per method, its
        :meth:`~genrestudy.methods.base.Method.report` (training time, seed, hyperparameters, ...).
    """
    runs = runs if runs is not None else run_methods(data, split, methods, progress=progress)
    out, details = [], []
    for run in runs.values():
        y_test, tracks = data.labels[run.rows], data.track_ids[run.rows]
        for row in score_with_ci(run.proba, y_test, tracks, n_resamples=n_resamples, confidence=confidence,
                                 seed=seed):
            out.append({"protocol": protocol, "key": run.key, "method": run.name, "source": OUR_SOURCE, **row})
        details.append({"protocol": protocol, "key": run.key, "method": run.name,
                        **{k: (v if np.isscalar(v) or v is None else str(v)) for k, v in run.report.items()}})
    return pd.DataFrame(out), pd.DataFrame(details)


def paper_table7(methods=None) -> pd.DataFrame:
    """The paper's Table 7 rows of the methods that have them (segment level, its own split)."""
    methods = list(methods) if methods is not None else registered()
    return pd.DataFrame([{"protocol": "paper", "key": m.key, "method": m.name, "source": PAPER_SOURCE,
                          "level": "segment", **m.paper} for m in methods if m.paper])


def table07(ours: list[pd.DataFrame], methods=None) -> pd.DataFrame:
    """Table 7: our rows of every protocol, and the paper's rows (labelled by ``source``) after each
    of the paper-protocol rows they compare with."""
    if not ours:
        raise ValueError("no rows of ours to tabulate")
    methods = list(methods) if methods is not None else registered()
    frame = pd.concat([*ours, paper_table7(methods)], ignore_index=True)
    order = {m.key: i for i, m in enumerate(methods)}
    protocols = list(dict.fromkeys(frame["protocol"]))
    frame = frame.assign(_p=frame["protocol"].map(protocols.index), _l=frame["level"].map({"segment": 0, "track": 1}),
                         _m=frame["key"].map(order).fillna(len(order)),
                         _s=(frame["source"] == PAPER_SOURCE).astype(int))
    frame = frame.sort_values(["_p", "_l", "_m", "_s"], kind="stable").drop(columns=["_p", "_l", "_m", "_s"])
    columns = ["protocol", "level", "key", "method", "source", "n", "n_tracks"]
    for metric in METRICS:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    return frame.reindex(columns=columns).reset_index(drop=True)


def with_interval(row: pd.Series, metric: str) -> str:
    """``81.2 [78.1, 84.0]``, or the point alone where the metric has no interval (NaN ends)."""
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if pd.isna(row.get(metric)):
        return ""
    if pd.isna(low) or pd.isna(high):
        return f"{row[metric]:.1f}"
    return f"{row[metric]:.1f} [{low:.1f}, {high:.1f}]"


def compact(table: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Table 7 of one protocol as the paper printed it: one row per method (ours, then the paper's
    when it has one), segment-level accuracy, precision, recall, F1 (weighted) and macro F1, each
    ``81.2 [78.1, 84.0]`` (the point alone where the metric has no interval), and track-level
    accuracy in one more column. ``source`` is the long table's label, so the paper's rows stay
    marked as restated (:func:`genrestudy.report.reports.is_restated`) wherever the table is saved."""
    part = table[table["protocol"] == protocol]
    if part.empty:
        raise ValueError(f"Table 7 has no rows for protocol {protocol!r}")
    segment = part[part["level"] == "segment"]
    track = part[(part["level"] == "track") & (part["source"] == OUR_SOURCE)].set_index("key")
    rows = []
    for _, row in segment.iterrows():
        ours = row["source"] == OUR_SOURCE
        rows.append({"method": row["method"], "source": row["source"],
                     **{name: with_interval(row, metric) for name, metric in
                        (("accuracy", "accuracy"), ("precision", "precision_weighted"),
                         ("recall", "recall_weighted"), ("F1", "f1_weighted"), ("macro F1", "f1_macro"))},
                     "track accuracy": with_interval(track.loc[row["key"]], "accuracy")
                     if ours and row["key"] in track.index else ""})
    return pd.DataFrame(rows)
