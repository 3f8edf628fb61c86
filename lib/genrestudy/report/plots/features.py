"""Figures of the features step: how the backbone's features spread the genres."""
from __future__ import annotations

import matplotlib.pyplot as plt

from ...extractors.features import FeatureSet, project_features


def plot_feature_projection(feature_set: FeatureSet, *, method: str = "pca", seed: int = 0) -> plt.Figure:
    """Scatter of a 2-D projection of the features, one colour per genre.

    ``method`` is ``"pca"`` or ``"tsne"`` (:func:`genrestudy.extractors.features.project_features`);
    the title names the backbone, its weights and the precision from the feature set's meta.
    """
    xy = project_features(feature_set.features, method=method, seed=seed)
    labels = feature_set.labels
    fig, ax = plt.subplots(figsize=(7, 5.5))
    cmap = plt.get_cmap("tab10" if len(feature_set.classes) <= 10 else "tab20")
    for code, genre in enumerate(feature_set.classes):
        mask = labels == code
        ax.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.7, color=cmap(code % cmap.N), label=genre)
    meta = feature_set.meta
    ax.set_title(f"{method.upper()} of {meta.get('backbone', '?')} features "
                 f"({meta.get('weights', '?')}, {meta.get('precision', '?')})", fontsize=10)
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.legend(markerscale=2, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig
