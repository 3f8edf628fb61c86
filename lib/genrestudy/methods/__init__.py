"""The methods of the study, compared under one protocol in Table 7.

A method is one module here with one ``@register``-ed :class:`~genrestudy.methods.base.Method`
subclass; importing this package registers the study's own methods:

* :mod:`~genrestudy.methods.hybrid`: the paper's hybrid, frozen-backbone features + LightGBM
  (Grid and Random Search winners, and their retrained variants);
* :mod:`~genrestudy.methods.end_to_end`: the end-to-end ResNet-50;
* :mod:`~genrestudy.methods.knn`: neighbouring study 1, spectral features + KNN (k enumerated, or
  chosen by a genetic algorithm).
* :mod:`~genrestudy.methods.six_networks`: neighbouring study 2, six small networks trained from
  scratch (MLP, CNNs, LSTMs; Net6 with conditional-GAN augmentation), each at its best configuration.
* :mod:`~genrestudy.methods.frozen_backbones`: neighbouring study 3, per frozen backbone a dense
  softmax head (the source's grid) and LightGBM on its features; in Table 7 for the inputs'
  ``compared_backbones``.
* :mod:`~genrestudy.methods.musicnn`: musicnn's published music-trained taggers (MSD, MTT) as frozen
  extractors, their embeddings to LightGBM and to a dense head; only where the weights were fetched.

:func:`~genrestudy.methods.run.run_method` trains a method on a split (or reads it from the
cache) and predicts its test part; :mod:`genrestudy.report.table7` scores every registered method.
"""
from .base import INPUTS, REGISTRY, Method, Part, StudyData, register, registered, starting_weights, unregister  # noqa: F401
from .run import MethodRun, is_cached, method_of, run_method  # noqa: F401
from . import hybrid, end_to_end  # noqa: F401,E402  (registration, in Table 7's row order)
from . import knn  # noqa: F401,E402  (neighbouring study 1, after the paper's five)
from . import six_networks  # noqa: F401,E402  (neighbouring study 2: six small networks, CGAN augmentation)
from . import frozen_backbones  # noqa: F401,E402  (neighbouring study 3: per backbone, dense head and LightGBM)
from . import musicnn  # noqa: F401,E402  (the music-trained frozen extractor: LightGBM and dense head)
