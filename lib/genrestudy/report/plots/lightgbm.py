"""Figures of the LightGBM searches: the search trace and the learning curve (Fig 6)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def plot_search_trace(results: dict, *, ax=None) -> plt.Figure:
    """Best validation accuracy so far vs number of fits, one line per search (thin lines per seed)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    else:
        fig = ax.figure
    for colour, (label, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], results.items()):
        runs = runs if isinstance(runs, list) else [runs]
        for k, run in enumerate(runs):
            best_so_far = run.trace["valid_accuracy"].cummax().to_numpy() * 100
            ax.step(run.trace["fit"], best_so_far, where="post", color=colour, alpha=0.9 if len(runs) == 1 else 0.6,
                    label=f"{label} ({run.mode})" if k == 0 else None)
    ax.set_xlabel("number of fits")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title("Grid vs Random Search")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_learning_curve(curve: pd.DataFrame, *, ax=None, title: str = "LightGBM multi-logloss") -> plt.Figure:
    """Train vs validation multi-logloss over boosting iterations (Fig 6)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    else:
        fig = ax.figure
    ax.plot(curve["iteration"], curve["train_logloss"], label="train")
    ax.plot(curve["iteration"], curve["valid_logloss"], label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("multi-logloss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_grid_vs_random_per_seed(per_seed: pd.DataFrame, *, metric: str = "test_accuracy") -> plt.Figure:
    """Grid and Random Search's winners per seed as paired points joined by a line (same seed, same data)."""
    wide = per_seed.pivot(index="seed", columns="method", values=metric) * 100
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    for seed, row in wide.iterrows():
        ax.plot([0, 1], [row["grid"], row["random"]], "-o", color="grey", alpha=0.7)
        ax.annotate(f"seed {seed}", (1.03, row["random"]), fontsize=7, va="center")
    ax.set_xticks([0, 1], ["Grid", "Random"])
    ax.set_xlim(-0.3, 1.4)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title("Grid vs Random Search, paired by seed")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
