"""Progress on the loops a person waits for: bars where someone watches, one line per step in executed copies.

A console and JupyterLab get tqdm's bars (``tqdm.auto``: a widget in a notebook). A notebook
executed by ``./run_all.sh`` (papermill) is kept as a document, and a bar there is hundreds of
redraws saved as text: run_all.sh sets ``TQDM_DISABLE=1`` for those runs, but tqdm reads that
variable only as the *default* of ``disable``, which every ``tqdm(..., disable=not progress)``
overrides. :func:`progress_bar` asks the variable itself: where it is set, the loop prints one
line when it ends (what it did, how many, how long) instead of a bar.
"""
from __future__ import annotations

import os
import time
from typing import Iterable

#: the variable that marks a run without bars (run_all.sh sets it for executed notebooks)
NO_BARS_ENV = "TQDM_DISABLE"


def bars_wanted() -> bool:
    """False where ``TQDM_DISABLE`` is set to a true value (an executed copy), else True."""
    return os.environ.get(NO_BARS_ENV, "").strip().lower() in ("", "0", "false", "no")


class OneLineProgress:
    """A stand-in for a tqdm bar that prints one line when its loop ends (``desc: n/total in s``)."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None,
                 announce: bool = True):
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
