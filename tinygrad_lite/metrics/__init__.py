"""Metrics with scikit-learn's names: classification, regression, and plots of a run.

Plots need matplotlib (``pip install tinygrad_lite[plot]``), imported only when a plot is drawn.

Examples
--------
>>> from tinygrad_lite.metrics import accuracy_score, confusion_matrix
>>> accuracy_score([0, 1, 1], [0, 1, 0])
0.6666666666666666
>>> confusion_matrix([0, 1, 1], [0, 1, 0]).tolist()
[[1, 0], [1, 1]]
"""

from .classification import (
    UndefinedMetricWarning,
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    fbeta_score,
    log_loss,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)
from .plots import plot_confusion_matrix, plot_history, plot_misclassified
from .regression import mean_absolute_error, mean_squared_error, r2_score, root_mean_squared_error

__all__ = [  # noqa: RUF022  (grouped by topic, not sorted)
    "accuracy_score", "precision_score", "recall_score", "f1_score", "fbeta_score",
    "precision_recall_fscore_support", "confusion_matrix", "classification_report",
    "top_k_accuracy_score", "log_loss", "UndefinedMetricWarning",
    "mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
    "plot_confusion_matrix", "plot_history", "plot_misclassified",
]
