"""Puts nn_helpers on the import path (the torch fixture lives in tests/conftest.py)."""

import os
import sys


sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make nn_helpers importable
