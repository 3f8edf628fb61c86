"""Progress on the loops a person waits for: bars where someone watches, one line per step in executed copies.

A console and JupyterLab get tqdm's bars (``tqdm.auto``: a widget in a notebook). A notebook
executed to be kept as a document (papermill, nbconvert, nbval; by ``./run_all.sh`` or by
hand as the README shows) would keep each bar as a frozen widget ("0/60") or hundreds of
redraws, so there the loop prints one line when it ends (what it did, how many, how long)
instead (:func:`bars_wanted`). Two signals say so:

* ``TQDM_DISABLE`` set to a true value (run_all.sh sets it; tqdm itself reads it only as the
  *default* of ``disable``, which every ``tqdm(..., disable=not progress)`` overrides);
* a Jupyter kernel whose current cell was sent with ``allow_stdin`` off: the clients that run
  notebooks unattended (nbclient, under papermill and nbconvert, and nbval) all send it off,
  because nobody is there to answer ``input()``, while JupyterLab, Notebook and VS Code send
  it on. It is read per cell, so the same kernel shows bars again when a person runs a cell.
"""
from __future__ import annotations

import os
import time
from typing import Iterable

#: the variable that marks a run without bars (run_all.sh sets it for executed notebooks)
NO_BARS_ENV = "TQDM_DISABLE"


def bars_wanted() -> bool:
    """False in an executed copy: ``TQDM_DISABLE`` set to a true value, or an unattended kernel
    (:func:`unattended_kernel`); else True."""
    if os.environ.get(NO_BARS_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return False
    return not unattended_kernel()


def unattended_kernel() -> bool:
    """True inside a Jupyter kernel running a cell that no person can answer ``input()`` for
    (sent with ``allow_stdin`` off, as nbclient, papermill, nbconvert and nbval send every cell)."""
    import sys

    if "ipykernel" not in sys.modules:  # not in a kernel (a console, a script, pytest): cheap answer
        return False
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
    except ImportError:
        return False
    # ipykernel keeps the current request's allow_stdin (what its raw_input checks before asking)
    return kernel is not None and not bool(getattr(kernel, "_allow_stdin", True))


class OneLineProgress:
    """A stand-in for a tqdm bar that prints one line when its loop ends (``desc: n/total in s``)."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None,
                 announce: bool = True):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # as tqdm does: "3/3", not "3"
        self.iterable, self.desc, self.total, self.announce = iterable, desc or "done", total, announce
        self.n, self._started, self._closed = 0, time.perf_counter(), False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args, **kwargs) -> None:
        """Bars only: nothing to redraw here."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.announce:
            of = f"/{self.total}" if self.total is not None else ""
            print(f"{self.desc}: {self.n}{of} in {time.perf_counter() - self._started:.1f} s", flush=True)


def progress_bar(iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None,
                 enabled: bool = True, **tqdm_kw):
    """A tqdm bar over ``iterable`` where bars are wanted (:func:`bars_wanted`), else a
    :class:`OneLineProgress`; ``enabled=False`` shows nothing at all.

    Examples
    --------
    >>> for _ in progress_bar(range(3), desc="fits", enabled=False):
    ...     pass
    """
    if not enabled:
        return OneLineProgress(iterable, desc=desc, total=total, announce=False)
    if not bars_wanted():
        return OneLineProgress(iterable, desc=desc, total=total)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, **tqdm_kw)
