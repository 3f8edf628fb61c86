"""The methods of the study, compared under one protocol in Table 7.

A method is one module here with one ``@register``-ed :class:`~genrestudy.methods.base.Method`
subclass; importing this package registers the study's own methods:

* :mod:`~genrestudy.methods.hybrid`: the paper's hybrid, frozen-backbone features + LightGBM
  (Grid and Random Search winners, and their retrained variants);
* :mod:`~genrestudy.methods.end_to_end`: the end-to-end ResNet-50;
* :mod:`~genrestudy.methods.knn`: neighbouring study 1, spectral features + KNN (k enumerated, or
  chosen by a genetic algorithm).

:func:`~genrestudy.methods.run.run_method` trains a method on a split (or reads it from the
cache) and predicts its test part; :mod:`genrestudy.table7` scores every registered method.
"""
from .base import INPUTS, REGISTRY, Method, Part, StudyData, register, registered, unregister  # noqa: F401
from .run import MethodRun, method_of, run_method  # noqa: F401
from . import hybrid, end_to_end  # noqa: F401,E402  (registration, in Table 7's row order)
from . import knn  # noqa: F401,E402  (neighbouring study 1, after the paper's five)
