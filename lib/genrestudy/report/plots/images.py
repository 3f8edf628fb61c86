"""Figures of the study (drawing only; :func:`genrestudy.report.reports.save_fig` saves them)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...signals.images import ImageSet


def mel_per_genre(image_set: ImageSet, *, segment: int = 0, seed: int = 0) -> plt.Figure:
    """Fig 2: one mel-spectrogram image per genre (a random track's ``segment``-th segment)."""
    rng = np.random.default_rng(seed)
    classes = image_set.classes
    cols = min(5, len(classes))
    rows = int(np.ceil(len(classes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    segs = image_set.segments
    params = image_set.meta.get("params", {})
    for ax, genre in zip(axes.flat, classes):
        tracks = segs.loc[segs["label"] == genre, "track_id"].unique()
        track = tracks[rng.integers(len(tracks))]
        rows_of_track = segs[(segs["track_id"] == track)]
        row = rows_of_track.iloc[min(segment, len(rows_of_track) - 1)]
        ax.imshow(image_set.images[int(row["segment_id"])], cmap="magma", aspect="auto", vmin=0, vmax=255)
        ax.set_title(f"{genre}\n{track} #{int(row['segment'])}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    fig.suptitle(f"Mel-spectrogram images ({params.get('segment_seconds', '?')} s segments, "
                 f"{params.get('n_mels', '?')} mel bands, {params.get('image_size', '?')} px; "
                 "time →, frequency ↑)", fontsize=10)
    fig.tight_layout()
    return fig
