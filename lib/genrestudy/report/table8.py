"""Table 8: training time, memory and prediction latency of both pipelines, measured, beside the paper's.

Every number of ours is measured by notebook 08 in the run that writes the table
(:mod:`genrestudy.efficiency`); the paper's numbers are constants below, restated from
``docs/PAPER.md`` (Table 8 and Table 4 of the main paper), in columns of their own.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Table 8 of the paper; its prediction time does not state a batch size, nor how anything was measured
PAPER_TABLE8 = {
    "training_seconds": {"end_to_end": 65.8529, "hybrid": 0.9373},
    "peak_ram_mb": {"end_to_end": 1000.60, "hybrid": 45.49},
    "extraction_peak_ram_mb": {"hybrid": 1145.52},
    "predict_seconds_per_sample": {"end_to_end": 0.004406, "hybrid": 0.005330},
}

#: the paper's LightGBM rounds (Fig 6: up to 2000 iterations); fewer in Table 8's fit is a reduced measurement
PAPER_LIGHTGBM_ROUNDS = 2000

#: Table 4 of the paper: its Grid Search winner (the LightGBM configuration Table 8 times here)
PAPER_TABLE4_PARAMS = {"num_leaves": 16, "max_depth": 6, "learning_rate": 0.03, "min_child_samples": 20,
                       "reg_alpha": 4.0, "reg_lambda": 6.0, "bagging_fraction": 0.8, "feature_fraction": 0.8}


def efficiency_table(*, end_to_end_fit: dict, lightgbm_fit: dict, extraction: dict, latencies: dict,
                     settings: dict, hardware: str) -> pd.DataFrame:
    """Table 8 from measurements, with the paper's numbers in columns of their own.

    Parameters
    ----------
    end_to_end_fit, lightgbm_fit, extraction : dict
        :func:`genrestudy.efficiency.measure_step` reports of the three steps
        (:mod:`genrestudy.report.efficiency_steps`); ``result["seconds"]`` is the step alone.
    latencies : dict
        ``{(pipeline, kind): latency report}`` with pipeline ``"end_to_end"``/``"hybrid"`` and
        kind ``"batch1"``, ``"batched"`` or ``"file"`` (:func:`genrestudy.efficiency.latency`).
    settings : dict
        ``{"end_to_end_fit", "lightgbm_fit", "extraction", "latency"}``: one line each on what
        was measured (sizes, epochs, reductions; :func:`measurement_notes`). A step whose line
        says ``REDUCED`` is flagged in the ``end_to_end_reduced`` / ``hybrid_reduced`` columns
        of every row it measured (and Fig 12 marks its bars); the latency rows time the
        end-to-end network the fit trained, so they carry its flag. A latency line saying
        ``UNLIKE`` (the two pipelines' networks ran at different input sizes) and a training
        time whose fits saw different numbers of training samples are comparisons of unlike
        work: their rows say so in ``how``, ``like_for_like`` is False, and they get no ratio.
    hardware : str
        :func:`genrestudy.efficiency.hardware`.
    """
    need = {(p, k) for p in ("end_to_end", "hybrid") for k in ("batch1", "batched", "file")}
    if set(latencies) != need:
        raise ValueError(f"latencies must have the keys {sorted(need)}, got {sorted(latencies)}")
    e2e, lgb, ext = end_to_end_fit, lightgbm_fit, extraction
    paper = PAPER_TABLE8
    nan = float("nan")
    reduced = {step: "REDUCED" in settings[step] for step in ("end_to_end_fit", "lightgbm_fit", "extraction")}
    fits, ext_only = (reduced["end_to_end_fit"], reduced["lightgbm_fit"]), (False, reduced["extraction"])
    imports = "; ".join(f"{name}: {', '.join(report.get('imported') or ['nothing declared'])}"
                        for name, report in (("end-to-end", e2e), ("LightGBM", lgb)))
    samples = (e2e["result"].get("train_images"), lgb["result"].get("train_rows"))
    unlike_fits = None not in samples and samples[0] != samples[1]
    unlike = {"training time (fit alone)": unlike_fits}
    rows = [
        ("training time (fit alone)", "s", e2e["result"]["seconds"], lgb["result"]["seconds"],
         paper["training_seconds"]["end_to_end"], paper["training_seconds"]["hybrid"],
         (f"UNLIKE, no ratio: the end-to-end fit saw {samples[0]} training images, the LightGBM fit "
          f"{samples[1]} rows; " if unlike_fits else "")
         + f"end-to-end: {settings['end_to_end_fit']}; hybrid: {settings['lightgbm_fit']}", fits),
        ("feature extraction time (the hybrid needs it too)", "s", nan, ext["result"]["seconds"], nan, nan,
         settings["extraction"], ext_only),
        ("peak RAM of the step's process (RSS)", "MB", e2e["peak_rss_mb"], lgb["peak_rss_mb"],
         paper["peak_ram_mb"]["end_to_end"], paper["peak_ram_mb"]["hybrid"],
         "fresh subprocess importing only what its step needs (frameworks in the LightGBM fit's process: "
         f"{', '.join(lgb['result'].get('frameworks') or ['not reported'])}), RSS sampled by memory-profiler "
         "every 20 ms (and the process's own VmHWM peak), imports included", fits),
        ("peak RAM above the imports", "MB", e2e["step_rss_mb"], lgb["step_rss_mb"], nan, nan,
         f"peak RSS minus RSS after the step's own imports ({imports}), before the step", fits),
        ("feature extraction peak RAM (RSS)", "MB", nan, ext["peak_rss_mb"], nan,
         paper["extraction_peak_ram_mb"]["hybrid"], settings["extraction"], ext_only),
    ]
    gpu = {name: r["result"].get("gpu_peak_mb") for name, r in (("fit", e2e), ("extraction", ext))}
    if gpu["fit"] is not None:
        rows.append(("peak GPU memory of the fit", "MB", gpu["fit"], nan, nan, nan,
                     "the Keras backend's allocator peak in the step's process (LightGBM runs on the CPU)", fits))
    if gpu["extraction"] is not None:
        rows.append(("feature extraction peak GPU memory", "MB", nan, gpu["extraction"], nan, nan,
                     "the Keras backend's allocator peak in the step's process", ext_only))
    latency_rows, latency_unlike = _latency_rows(latencies, settings, flags=(reduced["end_to_end_fit"], False))
    rows += latency_rows
    unlike.update(latency_unlike)
    frame = pd.DataFrame([row[:-1] + row[-1] for row in rows],
                         columns=["measure", "unit", "end_to_end", "hybrid", "paper_end_to_end", "paper_hybrid",
                                  "how", "end_to_end_reduced", "hybrid_reduced"])
    # a ratio of two spreads means nothing, nor one of unlike work: those rows get none
    spread = frame["measure"].str.contains("interquartile")
    like = ~frame["measure"].map(unlike).fillna(False).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame.insert(4, "ratio", (frame["end_to_end"] / frame["hybrid"]).where(~spread & like))
        frame.insert(7, "paper_ratio", frame["paper_end_to_end"] / frame["paper_hybrid"])
    frame["like_for_like"] = like
    frame["hardware"] = hardware
    return frame


def _latency_rows(latencies: dict, settings: dict, *, flags: tuple) -> tuple[list, dict]:
    """Table 8's latency rows (median and interquartile range per kind), and which compare unlike
    networks (the latency line says ``UNLIKE``). ``flags``: the rows' reduced flags (the end-to-end
    network timed is the one the fit trained)."""
    paper, nan = PAPER_TABLE8, float("nan")
    unlike_sizes = "UNLIKE" in settings["latency"]
    rows, unlike = [], {}
    labels = {"batch1": "prediction time per sample, batch of 1", "batched": "prediction time per sample, batched",
              "file": "audio file to genre, per file"}
    for kind, label in labels.items():
        a, b = latencies[("end_to_end", kind)], latencies[("hybrid", kind)]
        how = (f"{settings['latency']}; batch of {a['batch_size']}, {a['repeats']} timed repeats after warm-up"
               if kind != "file" else f"decode, mel images, predict, vote; {a['repeats']} timed repeats after warm-up"
               + ("; UNLIKE, no ratio: " + settings["latency"] if unlike_sizes else ""))
        paper_e2e = paper["predict_seconds_per_sample"]["end_to_end"] if kind == "batched" else nan
        paper_hyb = paper["predict_seconds_per_sample"]["hybrid"] if kind == "batched" else nan
        rows.append((f"{label} (median)", "s", a["median_s"], b["median_s"], paper_e2e, paper_hyb,
                     how + ("; the paper does not state its batch size" if kind == "batched" else ""), flags))
        rows.append((f"{label} (interquartile range)", "s", a["iqr_s"], b["iqr_s"], nan, nan, how, flags))
        unlike.update({f"{label} (median)": unlike_sizes, f"{label} (interquartile range)": unlike_sizes})
    return rows, unlike


def measurement_notes(measured: dict, *, settings, n_images: int, lightgbm_rounds: int, extract_batch_size: int,
                      latency_images: int, hybrid_input_size: int, reduced_fit: bool) -> dict:
    """One line per measured step saying what was measured (sizes, epochs) and whether it was a
    REDUCED demo measurement: the ``settings`` of :func:`efficiency_table`.

    ``measured`` holds the :func:`genrestudy.efficiency.measure_step` reports of
    ``end_to_end_fit``, ``lightgbm_fit`` and ``extraction``; ``settings`` is the end-to-end
    model's :class:`~genrestudy.networks.endtoend.TrainSettings`.
    """
    e2e, lgb, ext = (measured[k]["result"] for k in ("end_to_end_fit", "lightgbm_fit", "extraction"))
    reduced = " (REDUCED demo measurement)"
    return {
        "end_to_end_fit": f"{e2e['epochs']} epoch(s) on {e2e['train_images']} training images at "
                          f"{settings.input_size} px, {settings.weights or 'random init'}, {e2e['device']}"
                          + (reduced if reduced_fit else ""),
        "lightgbm_fit": f"{lgb['best_iteration']} rounds (max {lightgbm_rounds}) on {lgb['train_rows']} rows, "
                        "Table 4's configuration, binning included"
                        + (f"{reduced[:-1]}: the paper's up to {PAPER_LIGHTGBM_ROUNDS} rounds)"
                           if lightgbm_rounds < PAPER_LIGHTGBM_ROUNDS else ""),
        "extraction": f"{ext['images']} of {n_images} images, batch {extract_batch_size}, {ext['precision']}, "
                      "network build included" + (reduced if ext["images"] < n_images else ""),
        "latency": (f"{latency_images} test images; end-to-end network at {settings.input_size} px, "
                    f"hybrid backbone at {hybrid_input_size} px"
                    + (" (UNLIKE input sizes)" if int(settings.input_size) != int(hybrid_input_size) else "")),
    }
