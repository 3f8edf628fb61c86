"""Figures of scores: confusion matrices (Figs 9-11)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_confusion(matrix: pd.DataFrame, *, title: str = "", ax=None, cmap: str = "Blues") -> plt.Figure:
    """Heat map of a :func:`confusion` matrix, each cell annotated (Figs 9-11)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 5.6))
    else:
        fig = ax.figure
    values = matrix.to_numpy()
    image = ax.imshow(values, cmap=cmap)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(matrix.columns))
    ax.set_xticks(ticks, matrix.columns, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(matrix.index)), matrix.index)
    integer = np.allclose(values, np.round(values))
    threshold = values.max() / 2 if values.size else 0
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{int(v)}" if integer else f"{v:.2f}", ha="center", va="center", fontsize=8,
                color="white" if v > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
