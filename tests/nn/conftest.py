"""The optional torch peer for weight-transfer tests; puts nn_helpers on the import path."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make nn_helpers importable


@pytest.fixture(scope="session")
def torch():
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed (optional comparison peer): pip install torch==2.13.0")
    return torch
