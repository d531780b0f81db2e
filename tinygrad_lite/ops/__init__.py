"""Every differentiable op, one module per family (elementwise, reduce, movement, nn).

Importing this package registers all ops in ``autograd.REGISTRY``.
"""

from . import elementwise, movement, nn, reduce  # noqa: F401
