"""Figures of neighbouring study 1 (spectral features + KNN): accuracy against k, and the GA's fitness."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator


def plot_accuracy_vs_k(curve: pd.DataFrame, *, plain_k: int | None = None, ga_k=None, title: str = "",
                       ax=None) -> plt.Figure:
    """Validation and test accuracy of every k (:func:`genrestudy.models.knn.accuracy_by_k`),
    with the plain choice and the GA's choices (one k or several, one per run) marked.

    The test curve is drawn for the reader only: both choices are made on validation.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.0, 4.2))
    else:
        fig = ax.figure
    ax.plot(curve["k"], 100 * curve["valid_accuracy"], "o-", label="validation")
    if "test_accuracy" in curve:
        ax.plot(curve["k"], 100 * curve["test_accuracy"], "s--", alpha=0.8, label="test (not used to choose)")
    if plain_k is not None:
        ax.axvline(plain_k, color="tab:green", lw=2, alpha=0.6, label=f"plain choice k = {plain_k}")
    ga = sorted({int(k) for k in ([ga_k] if isinstance(ga_k, int) else (ga_k or []))})
    ga_label = f"GA choice{'s' if len(ga) > 1 else ''} k = {', '.join(map(str, ga))}"
    for i, k in enumerate(ga):
        ax.axvline(k, color="tab:red", ls=":", lw=2, label=ga_label if i == 0 else None)
    ax.set_xticks(list(curve["k"]))
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "KNN on spectral features: accuracy against k")
    fig.tight_layout()
    return fig


def plot_ga_fitness(histories: dict[str, list[pd.DataFrame]], *, title: str = "", ncols: int = 3) -> plt.Figure:
    """The GA's best and mean fitness per generation, one panel per setting, one line pair per seed.

    The mean counts an infeasible individual (the spare code 0000) as fitness 0, so a
    generation holding one dips.

    ``histories`` maps a setting's label to its runs' histories (``generation``, ``best``,
    ``mean``: :attr:`genrestudy.models.knn.KChoice.history`).
    """
    n = max(len(histories), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False, sharey=True)
    for ax, (label, runs) in zip(axes.flat, histories.items()):
        for i, history in enumerate(runs):
            color = f"C{i % 10}"
            ax.plot(history["generation"], 100 * history["best"], color=color, lw=1.8,
                    label="best" if i == 0 else None)
            ax.plot(history["generation"], 100 * history["mean"], color=color, lw=1.0, ls="--",
                    label="mean" if i == 0 else None)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("fitness: validation accuracy (%)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, title="one colour per seed", title_fontsize=7)
    fig.suptitle(title or "GA fitness per generation (best: solid, population mean: dashed)", fontsize=10)
    fig.tight_layout()
    return fig
