"""Figures of neighbouring study 3 (frozen backbones): macro F1 against extraction cost, and against input size."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import ScalarFormatter

OURS = "this study (measured)"
MARKERS = {"head": "o", "lightgbm": "s"}


def _stamp(fig: plt.Figure, stamp: str) -> None:
    """Say on the figure what its backbones ran with when that matters (e.g. random initialisation)."""
    if stamp:
        fig.text(0.005, 0.005, stamp, ha="left", va="bottom", fontsize=8, color="darkorange")


def plot_f1_vs_cost(table: pd.DataFrame, *, stamp: str = "", title: str = "") -> plt.Figure:
    """Test macro F1 (and its 95 % interval, a bar) of each backbone and way against its extraction cost
    (milliseconds per image, log scale), from :func:`genrestudy.report.backbone_comparison.comparison_table`.

    ``stamp``: a note printed on the figure (such as that the backbones were randomly initialised).
    """
    ours = table[table["source"] == OURS]
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    ways = list(dict.fromkeys(ours["way"]))
    for i, way in enumerate(ways):
        rows = ours[ours["way"] == way]
        # the ways of one backbone share its cost; dodged apart a little so both stay visible
        cost = 1000.0 / rows["images_per_second"].astype(float) * 1.02 ** (i - (len(ways) - 1) / 2)
        # the interval as a bar of its own (none drawn where Table 7 reports none)
        bars = ax.vlines(cost, rows["f1_macro_ci_low"], rows["f1_macro_ci_high"], color=f"C{i}", alpha=0.6)
        ax.plot(cost, rows["f1_macro"], list(MARKERS.values())[i % 2], color=bars.get_color()[0], label=way)
        for x, y, name in zip(cost, rows["f1_macro"], rows["backbone"]):
            if i == 0:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("extraction cost (ms per image, this machine)")
    ax.set_ylabel("test macro F1 (%), segment level")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Frozen backbones: macro F1 against extraction cost")
    fig.tight_layout()
    _stamp(fig, stamp)
    return fig


def plot_f1_vs_input_size(curve: pd.DataFrame, *, stamp: str = "", title: str = "") -> plt.Figure:
    """The dense-head grid's best validation macro F1 at each input size, one line per backbone
    (:func:`genrestudy.report.backbone_comparison.f1_by_input_size`)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for backbone, rows in curve.groupby("backbone", sort=False):
        rows = rows.sort_values("input_size")
        ax.plot(rows["input_size"], rows["valid_f1_macro"], "o-", label=backbone)
    ax.set_xticks(sorted(curve["input_size"].unique()))
    ax.set_xlabel("input size (px; the cached images are resized to it inside the network)")
    ax.set_ylabel("best validation macro F1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Dense head: macro F1 against input size")
    fig.tight_layout()
    _stamp(fig, stamp)
    return fig
