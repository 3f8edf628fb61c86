"""Figures of trained networks: training curves (Fig 5) and labelled sample grids (Figs 7/8)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...signals.images import ImageSet


def plot_training_curves(history: pd.DataFrame, *, title: str = "End-to-end ResNet-50") -> plt.Figure:
    """Fig 5: accuracy and loss per epoch, training vs validation, the phase change marked.

    ``history`` is a trained model's (:func:`genrestudy.networks.training.fit_phase` columns: ``epoch``,
    ``phase``, ``accuracy``, ``loss``, ``val_accuracy``, ``val_loss``, ``best``).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(history["epoch"], history[metric], "o-", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], "s-", label="validation")
        finetune = history.loc[history["phase"] == "finetune", "epoch"]
        if len(finetune) and len(finetune) < len(history):
            ax.axvline(finetune.iloc[0] - 0.5, color="grey", ls="--", lw=1)
            ax.text(finetune.iloc[0] - 0.45, ax.get_ylim()[1], " fine-tuning", va="top", fontsize=8, color="grey")
        for epoch in history.loc[history["best"].astype(bool), "epoch"]:
            ax.axvline(epoch, color="tab:green", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xticks(history["epoch"])
        ax.legend()
    fig.suptitle(f"{title}: training curves (dotted: best validation epoch of a phase)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_sample_grid(image_set: ImageSet, rows, y_true, y_pred, *, classes, title: str,
                     columns: int = 4) -> plt.Figure:
    """Figs 7/8: a grid of spectrogram images labelled with their true and predicted genres.

    ``rows`` are image rows of ``image_set`` (e.g. picked by
    :func:`genrestudy.networks.endtoend.pick_samples`), ``y_true``/``y_pred`` their class codes.
    """
    rows = np.asarray(rows)
    n = max(len(rows), 1)
    cols = min(columns, n)
    lines = -(-n // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(2.6 * cols, 2.8 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not len(rows):
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    for ax, row, t, p in zip(axes.flat, rows, y_true, y_pred):
        ax.imshow(image_set.images[int(row)], cmap="magma", aspect="auto", vmin=0, vmax=255)
        track = image_set.segments["track_id"].iloc[int(row)]
        ax.set_title(f"True: {classes[int(t)]}\nPred: {classes[int(p)]}", fontsize=9,
                     color="black" if t == p else "crimson")
        ax.text(0.02, 0.02, track, transform=ax.transAxes, fontsize=6, color="white")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
