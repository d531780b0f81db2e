"""Neural-network building blocks: Parameter, Module, layers, losses, init."""

from . import functional  # noqa: F401
from .parameter import Parameter

__all__ = ["Parameter", "functional"]
