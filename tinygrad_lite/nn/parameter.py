"""Parameter: a Tensor that a Module registers as trainable."""

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor with ``requires_grad=True`` that ``Module`` collects in ``parameters()``.

    >>> w = Parameter(np.zeros((3, 2), dtype=np.float32))
    """

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data)
        self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
