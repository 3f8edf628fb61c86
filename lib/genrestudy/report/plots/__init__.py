"""Figures of the study, drawing only (:func:`genrestudy.report.reports.save_fig` saves them).

One submodule per step of the data's path; every figure function is importable from here.
"""
from .images import mel_per_genre  # noqa: F401
from .evaluation import plot_confusion  # noqa: F401
from .lightgbm import plot_learning_curve, plot_search_trace  # noqa: F401
from .efficiency import plot_efficiency  # noqa: F401
from .networks import plot_sample_grid, plot_training_curves  # noqa: F401
from .features import plot_feature_projection  # noqa: F401
from .lightgbm import plot_grid_vs_random_per_seed  # noqa: F401
from .results import plot_forest, plot_protocol_effect  # noqa: F401
from .knn import plot_accuracy_vs_k, plot_ga_fitness  # noqa: F401
from .backbones import plot_f1_vs_cost, plot_f1_vs_input_size  # noqa: F401
from .smallnets import plot_cgan_losses, plot_generated_vs_real, plot_network_curves  # noqa: F401
