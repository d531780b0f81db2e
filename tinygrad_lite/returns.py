"""Named results of ops that return more than one tensor, as PyTorch's ``torch.return_types``.

``max/min/sort/topk/kthvalue/median/cummax/cummin`` called PyTorch-style (a positional ``dim`` or
``dim=``) return ``ValuesIndices(values, indices)``: it unpacks like a tuple (``v, i = t.max(1)``)
and indexes like one (``t.max(1)[1]``). Called NumPy-style (``axis=``) they return the values alone.
"""

from collections import namedtuple

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
