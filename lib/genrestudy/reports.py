"""Figures and tables: one place that names and saves every output of the study."""
from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in {"module://matplotlib_inline.backend_inline", "inline"}:
    # headless runs (papermill, CI, scripts) must never need a display
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from . import cache, paths  # noqa: E402

SYNTHETIC_NOTE = "SYNTHETIC demo data, not GTZAN"


def save_fig(fig_id: str, fig: plt.Figure | None = None, *, synthetic: bool = False,
             formats: tuple[str, ...] = ("png", "svg"), dpi: int = 120) -> Path:
    """Save a figure as ``figures/<fig_id>.png`` (and ``.svg``); returns the PNG path.

    ``synthetic=True`` stamps the figure so that nobody mistakes demo results for GTZAN ones.
    """
    fig = fig or plt.gcf()
    if synthetic:
        fig.text(0.995, 0.005, SYNTHETIC_NOTE, ha="right", va="bottom", fontsize=8,
                 color="crimson", alpha=0.9)
    out_dir = paths.figures_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    first = None
    for fmt in formats:
        target = out_dir / f"{fig_id}.{fmt}"
        with cache.atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        first = first or target
    return first


def save_table(table_id: str, frame: pd.DataFrame, *, synthetic: bool = False,
               index: bool = False, float_format: str = "{:.4g}") -> Path:
    """Save a table as ``results/<table_id>.csv`` and ``.md``; returns the CSV path.

    ``synthetic=True`` adds a ``data`` column saying so to the CSV and a heading line to the Markdown.
    """
    out_dir = paths.results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = frame.reset_index() if index else frame.copy()
    if synthetic:
        frame.insert(len(frame.columns), "data", SYNTHETIC_NOTE)
    csv_path = out_dir / f"{table_id}.csv"
    cache.write_csv(csv_path, frame)
    shown = frame.map(lambda v: float_format.format(v) if isinstance(v, float) else v)
    heading = f"# {table_id}\n\n" + (f"**{SYNTHETIC_NOTE}.**\n\n" if synthetic else "")
    with cache.atomic_path(out_dir / f"{table_id}.md") as tmp:
        tmp.write_text(heading + _markdown(shown) + "\n")
    return csv_path


def _markdown(frame: pd.DataFrame) -> str:
    # pandas' to_markdown needs the optional 'tabulate'; a pipe table is simple enough to write
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)
