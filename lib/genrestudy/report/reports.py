"""Figures and tables: one place that names and saves every output of the study."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in {"module://matplotlib_inline.backend_inline", "inline"}:
    # headless runs (papermill, CI, scripts) must never need a display
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .. import cache, paths

log = logging.getLogger(__name__)

SYNTHETIC_NOTE = "SYNTHETIC demo data, not GTZAN"
REPORTED_NOTE = "as reported by its source (not measured here)"
#: the words that mark a ``source`` as restated from a publication: :func:`restated_source` writes
#: them, :func:`is_restated` (and so :func:`save_table`'s stamp) reads them; one notion for both
RESTATED_MARK = "as reported"


def restated_source(who: str, where: str) -> str:
    """The ``source`` label of numbers restated from a publication, e.g. ``paper (as reported; docs/PAPER.md)``."""
    return f"{who} ({RESTATED_MARK}; {where})"


def is_restated(sources) -> pd.Series:
    """Whether each ``source`` label (a Series, or anything a Series takes) marks numbers restated from a
    publication rather than measured here."""
    return pd.Series(sources, dtype=object).astype(str).str.contains(RESTATED_MARK, regex=False)


#: the environment variables ``./run_all.sh`` sets: the profile and scale of the run that makes a table
PROFILE_ENV, SCALE_ENV = "GENRESTUDY_PROFILE", "GENRESTUDY_SCALE"
MADE_BY_PREFIX = "Made by"


def made_by() -> str:
    """Which run makes the tables now: ``./run_all.sh``'s profile and scale, or a notebook run on its own."""
    profile = os.environ.get(PROFILE_ENV)
    if not profile:
        return f"{MADE_BY_PREFIX} a notebook run on its own (no ./run_all.sh profile: the notebook's parameters)"
    scale = os.environ.get(SCALE_ENV) or "full"
    return f"{MADE_BY_PREFIX} the `{profile}` profile of ./run_all.sh" + (f" at scale {scale}" if scale != "full" else "")


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

    ``synthetic=True`` adds a ``data`` column saying so to the CSV and a heading line to the Markdown;
    rows restated from a publication (:func:`is_restated` ``source``) are not ours, and their
    ``data`` says that instead. Absolute paths in the cells are written relative to the study's
    roots (:func:`genrestudy.paths.shown`): a published table does not carry the machine's layout.
    """
    out_dir = paths.results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = frame.reset_index() if index else frame.copy()
    frame = frame.map(lambda v: paths.shown(v) if isinstance(v, str) and Path(v).is_absolute() else v)
    if synthetic:
        reported = (is_restated(frame["source"]).set_axis(frame.index) if "source" in frame
                    else pd.Series(False, index=frame.index))
        frame.insert(len(frame.columns), "data", reported.map({True: REPORTED_NOTE, False: SYNTHETIC_NOTE}))
    csv_path = out_dir / f"{table_id}.csv"
    cache.write_csv(csv_path, frame)
    shown = frame.map(lambda v: float_format.format(v) if isinstance(v, float) else v)
    heading = (f"# {table_id}\n\n" + (f"**{SYNTHETIC_NOTE}.**\n\n" if synthetic else "")
               + f"{made_by()}.\n\n")
    with cache.atomic_path(out_dir / f"{table_id}.md") as tmp:
        tmp.write_text(heading + markdown_table(shown) + "\n")
    return csv_path


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown pipe table of ``frame`` (cells as ``str`` gives them)."""
    # pandas' to_markdown needs the optional 'tabulate'; a pipe table is simple enough to write
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _made_by_line(table_md: Path) -> str:
    """The "Made by ..." line of a saved table (tables saved before tables said it: unknown)."""
    for line in table_md.read_text().splitlines():
        if line.startswith(MADE_BY_PREFIX):
            return line[len(MADE_BY_PREFIX):].strip().rstrip(".")
    return "unknown run (saved before tables named their profile)"


def write_results_index(*, findings_text: str | None = None, scope_text: str | None = None,
                        results_dir: Path | None = None) -> Path:
    """Write ``results/README.md``: what the run can and cannot show (``scope_text``, first), every
    table in ``results/`` (its Markdown, with links), and Table 7's findings when given."""
    folder = Path(results_dir) if results_dir is not None else paths.results_dir()
    tables = sorted(p for p in folder.glob("*.md") if p.name != "README.md")
    if not tables:
        raise FileNotFoundError(f"no tables (*.md) in {folder}; run the notebooks first")
    lines = ["# results/", ""] + ([scope_text, ""] if scope_text else [])
    lines += ["Every table of the study, regenerated by the notebooks (`./run_all.sh`); each is also a CSV "
              "file of the same name. Tables made from the synthetic demo data say so.", ""]
    if findings_text:
        lines += ["## Findings (Table 7)", "", findings_text, ""]
    notebooks = sorted((paths.project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if notebooks:
        lines += ["## The executed notebooks, to read in a browser", "",
                  "Rendered by `./run_all.sh` into `build/html/` (figures inline):", "",
                  *[f"- [{nb.stem}](../build/html/{nb.stem}.html)" for nb in notebooks], ""]
    versions = cache.library_versions("numpy", "pandas", "scikit-learn", "scipy", "lightgbm", "keras", "tensorflow",
                                      "librosa", "soundfile")
    lines += ["## Made with", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    lines += ["## Contents", "", "Each table names the run that made it (a table of an earlier run with another "
              "profile stays until that notebook runs again)."]
    lines += [f"- [{p.stem}]({p.name}): {_made_by_line(p)}" for p in tables] + [""]
    for p in tables:
        body = p.read_text().strip().splitlines()
        if body and body[0].startswith("# "):
            body = body[1:]
        csv = f" · [CSV]({p.stem}.csv)" if (folder / f"{p.stem}.csv").is_file() else ""
        lines += [f"## {p.stem}", "", f"[Markdown]({p.name}){csv}", "", *body, ""]
    target = folder / "README.md"
    with cache.atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n")
    log.info("results index: %d tables in %s", len(tables), target)
    return target
