"""Figures of neighbouring study 2: training curves per network, generated vs real examples of the CGAN."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator


def plot_network_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Training and validation accuracy per epoch of each network's chosen configuration.

    ``histories``: network name → history (``epoch``, ``accuracy``, ``val_accuracy``, ``best``).
    """
    n = max(len(histories), 1)
    cols = min(3, n)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(4.2 * cols, 3.0 * -(-n // cols)), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, history) in zip(axes.flat, histories.items()):
        ax.plot(history["epoch"], history["accuracy"], "o-", label="train")
        ax.plot(history["epoch"], history["val_accuracy"], "s-", label="validation")
        for epoch in history.loc[history["best"].astype(bool), "epoch"]:
            ax.axvline(epoch, color="tab:green", ls=":", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle("Six networks: accuracy per epoch of each chosen configuration (dotted: the epoch kept)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_generated_vs_real(real: np.ndarray, generated: np.ndarray, real_labels, generated_labels, *,
                           classes, feature_names, features=("mfcc_1", "centroid", "chroma_0")) -> plt.Figure:
    """A real and a generated feature sequence of one genre as images (feature × frame), and the
    distributions over segments of a few features' means, real vs generated."""
    real_labels, generated_labels = np.asarray(real_labels), np.asarray(generated_labels)
    genre = int(real_labels[0])
    fig, axes = plt.subplots(2, max(2, len(features)), figsize=(4.2 * max(2, len(features)), 6.4))
    picks = (("real", real[real_labels == genre][0]), ("generated", generated[generated_labels == genre][0]))
    scale = np.abs(real).reshape(-1, real.shape[-1]).max(axis=0) + 1e-9
    for ax, (what, sequence) in zip(axes[0], picks):
        ax.imshow((sequence / scale).T, aspect="auto", origin="lower", cmap="magma", vmin=-1, vmax=1)
        ax.set_title(f"{what} {classes[genre]} segment (each feature / its largest real value)", fontsize=8)
        ax.set_xlabel("frame")
        ax.set_ylabel("feature (MFCC, contrast, centroid, chroma)")
    for ax in axes[0, 2:]:
        ax.axis("off")
    for ax, feature in zip(axes[1], features):
        i = list(feature_names).index(feature)
        values = [real[..., i].mean(axis=1), generated[..., i].mean(axis=1)]
        bins = np.histogram_bin_edges(np.concatenate(values), bins=30)
        for v, label in zip(values, ("real", "generated")):
            ax.hist(v, bins=bins, alpha=0.55, label=label, density=True)
        ax.set_title(f"{feature}: mean over a segment's frames", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Feature CGAN: generated vs real training segments", fontsize=10)
    fig.tight_layout()
    return fig


def plot_cgan_losses(history: pd.DataFrame, *, title: str = "Feature CGAN") -> plt.Figure:
    """Discriminator and generator loss per epoch."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(history["epoch"], history["d_loss"], "o-", label="discriminator")
    ax.plot(history["epoch"], history["g_loss"], "s-", label="generator")
    ax.set_xlabel("epoch")
    ax.set_ylabel("binary cross-entropy")
    ax.set_title(f"{title}: losses per epoch", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig
