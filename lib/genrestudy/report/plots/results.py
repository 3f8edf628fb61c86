"""Figures of Table 7: accuracy with its interval per method (forest plot), and the protocol effect."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

OURS = "this study (measured)"


def plot_forest(table: pd.DataFrame, *, level: str = "segment") -> plt.Figure:
    """Accuracy and its 95 % interval per method, one panel per protocol; the paper's points marked."""
    ours = table[(table["source"] == OURS) & (table["level"] == level)]
    paper = table[(table["source"] != OURS) & (table["level"] == "segment")].set_index("key")
    protocols = list(dict.fromkeys(ours["protocol"]))
    methods = list(dict.fromkeys(ours["method"]))
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.2 * len(protocols), 0.5 * len(methods) + 1.6),
                             sharex=True, sharey=True, squeeze=False)
    y = {name: i for i, name in enumerate(reversed(methods))}
    for ax, protocol in zip(axes[0], protocols):
        rows = ours[ours["protocol"] == protocol]
        pos = rows["method"].map(y).to_numpy()
        err = np.vstack([rows["accuracy"] - rows["accuracy_ci_low"], rows["accuracy_ci_high"] - rows["accuracy"]])
        ax.errorbar(rows["accuracy"], pos, xerr=err, fmt="o", color="tab:blue", capsize=3, label="this study, 95 % CI")
        if protocol == "paper":
            shown = rows[rows["key"].isin(paper.index)]
            ax.scatter(paper.loc[shown["key"], "accuracy"], shown["method"].map(y), marker="x", color="crimson",
                       zorder=3, label="paper (reported)")
        ax.set_title(f"protocol: {protocol}")
        ax.set_xlabel(f"{level}-level test accuracy (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(list(y.values()), list(y.keys()))
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Table 7 · test accuracy per method and protocol")
    fig.tight_layout()
    return fig


def plot_protocol_effect(table: pd.DataFrame, *, level: str = "segment") -> plt.Figure:
    """Each method's accuracy under every protocol, joined by a line (the protocols' test sets differ)."""
    ours = table[(table["source"] == OURS) & (table["level"] == level)]
    protocols = list(dict.fromkeys(ours["protocol"]))
    fig, ax = plt.subplots(figsize=(1.8 * len(protocols) + 4.5, 4.2))
    x = np.arange(len(protocols))
    for method, rows in ours.groupby("method", sort=False):
        rows = rows.set_index("protocol").reindex(protocols)
        err = np.vstack([rows["accuracy"] - rows["accuracy_ci_low"], rows["accuracy_ci_high"] - rows["accuracy"]])
        ax.errorbar(x, rows["accuracy"], yerr=err, marker="o", capsize=3, label=method)
    ax.set_xticks(x, protocols)
    ax.set_xlabel("split protocol")
    ax.set_ylabel(f"{level}-level test accuracy (%)")
    ax.set_title("The protocol effect: the same methods under each split")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig
