"""Figure of Table 8: training time, memory and prediction time of both pipelines (Fig 12)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_efficiency(table: pd.DataFrame) -> plt.Figure:
    """Fig 12: training time, peak RAM and per-sample prediction time of both pipelines, ours
    (measured) beside the paper's, on log scales."""
    panels = [("training time (fit alone)", "training time (s)"),
              ("peak RAM of the step's process (RSS)", "peak RAM (MB)"),
              ("prediction time per sample, batched (median)", "prediction time per sample (s)")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    width = 0.38
    for ax, (measure, ylabel) in zip(axes, panels):
        row = table[table["measure"] == measure]
        if row.empty:
            raise ValueError(f"Table 8 has no row {measure!r}")
        row = row.iloc[0]
        x = np.arange(2)
        ours = [row["end_to_end"], row["hybrid"]]
        theirs = [row["paper_end_to_end"], row["paper_hybrid"]]
        ax.bar(x - width / 2, ours, width, label="this study (measured)", color="tab:blue")
        ax.bar(x + width / 2, theirs, width, label="paper (reported)", color="tab:gray")
        ax.set_xticks(x, ["end-to-end", "ResNet-50 + LightGBM"])
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel.split(" (")[0])
    axes[0].legend(fontsize=8)
    fig.suptitle("Fig 12 · Efficiency: end-to-end ResNet-50 vs ResNet-50 features + LightGBM")
    fig.tight_layout()
    return fig
