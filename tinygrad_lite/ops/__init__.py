"""Every differentiable op, one module per family (elementwise, pointwise math, reduce, scan,
movement, indexing, nn).

Importing this package registers all ops in ``autograd.REGISTRY``.
"""

from . import elementwise, indexing, movement, nn, pointwise, reduce, scan  # noqa: F401
