"""Figures of the study, drawing only (:func:`genrestudy.reports.save_fig` saves them).

One submodule per step of the data's path; every figure function is importable from here.
"""
from .images import mel_per_genre  # noqa: F401
