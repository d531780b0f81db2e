"""Data tools: clean and scale arrays, split them, batch them, and the datasets to start with.

    raw arrays -> clean / scalers (preprocessing) -> train_test_split (split)
      -> TensorDataset + DataLoader (batches of Tensors) -> model

Everything here needs only NumPy; names follow scikit-learn (preprocessing, split) and PyTorch
(Dataset, DataLoader).

Examples
--------
>>> from tinygrad_lite.data import load_digits, train_test_split, MinMaxScaler
>>> X, y = load_digits(return_X_y=True)
>>> X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, seed=0)
>>> scaler = MinMaxScaler().fit(X_tr)
>>> X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
"""

from .dataset import Dataset, GeneratorDataset, IterableDataset, TensorDataset
from .datasets import (
    Bunch,
    IDXFormatError,
    load_digits,
    load_mnist,
    make_moons,
    make_regression,
    make_spirals,
    make_xor,
    read_idx,
)
from .loader import DataLoader, default_collate, numpy_collate
from .workers import get_worker_info
from .preprocessing import (
    CleanReport,
    LabelEncoder,
    MinMaxScaler,
    OneHotEncoder,
    Pipeline,
    SimpleImputer,
    StandardScaler,
    clean,
    from_state_dict,
    merge_state,
    one_hot,
    split_state,
)
from .split import train_test_split, train_val_test_split
from .transforms import compose, random_flip, random_shift

__all__ = [  # noqa: RUF022  (grouped by topic, not sorted)
    "Dataset", "TensorDataset", "IterableDataset", "GeneratorDataset", "DataLoader",
    "default_collate", "numpy_collate", "get_worker_info",
    "clean", "CleanReport", "SimpleImputer", "MinMaxScaler", "StandardScaler", "LabelEncoder",
    "OneHotEncoder", "one_hot", "Pipeline", "from_state_dict", "split_state", "merge_state",
    "train_test_split", "train_val_test_split",
    "random_shift", "random_flip", "compose",
    "load_digits", "load_mnist", "read_idx", "IDXFormatError", "Bunch",
    "make_moons", "make_spirals", "make_xor", "make_regression",
]
