"""Figure of Table 8: training time, memory and prediction time of both pipelines (Fig 12)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: Fig 12's panels: Table 8's row and the axis label. The memory is the whole process of each
#: fit, which imports only what its step needs (the LightGBM fit: no Keras, no TensorFlow).
PANELS = [("training time (fit alone)", "training time (s)"),
          ("peak RAM of the step's process (RSS)", "peak RAM of the fit's process (MB)"),
          ("prediction time per sample, batched (median)", "prediction time per sample (s)")]


def plot_efficiency(table: pd.DataFrame) -> plt.Figure:
    """Fig 12: training time, peak RAM and per-sample prediction time of both pipelines, ours
    (measured) beside the paper's, on log scales. A bar of a REDUCED demo measurement (Table 8's
    ``*_reduced`` columns) is hatched and labelled so."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    width = 0.38
    for ax, (measure, ylabel) in zip(axes, PANELS):
        row = table[table["measure"] == measure]
        if row.empty:
            raise ValueError(f"Table 8 has no row {measure!r}")
        row = row.iloc[0]
        x = np.arange(2)
        ours = [row["end_to_end"], row["hybrid"]]
        theirs = [row["paper_end_to_end"], row["paper_hybrid"]]
        reduced = [bool(row.get("end_to_end_reduced", False)), bool(row.get("hybrid_reduced", False))]
        bars = ax.bar(x - width / 2, ours, width, label="this study (measured)", color="tab:blue")
        for bar, is_reduced in zip(bars, reduced):
            if is_reduced:
                bar.set_hatch("//")
                ax.annotate("REDUCED", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=7, color="tab:red")
        ax.bar(x + width / 2, theirs, width, label="paper (reported)", color="tab:gray")
        ax.set_xticks(x, ["end-to-end", "ResNet-50 + LightGBM"])
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel.split(" (")[0].replace(" of the fit's process", ""))
    axes[0].legend(fontsize=8)
    any_reduced = any(table[c].any() for c in ("end_to_end_reduced", "hybrid_reduced") if c in table)
    note = " (hatched: REDUCED demo measurement)" if any_reduced else ""
    fig.suptitle("Fig 12 · Efficiency: end-to-end ResNet-50 vs ResNet-50 features + LightGBM" + note)
    fig.tight_layout()
    return fig
