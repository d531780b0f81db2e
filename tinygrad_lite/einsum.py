"""``einsum``: Einstein summation built from ops we already have.

Each step is a differentiable op, so einsum needs no backward of its own:
  1. ``...`` becomes letters; a letter repeated inside one operand takes that diagonal;
  2. a letter that appears in one operand only and not in the output is summed out;
  3. operands are contracted pairwise, left to right, each pair as ONE batched matmul:
     A -> (batch, m, k), B -> (batch, k, n), where k collects the summed letters;
  4. the result is permuted into the output order.
"""

import string

import numpy as np

from .errors import ShapeError

_LETTERS = string.ascii_letters


def _parse(equation, shapes):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(shapes):
        raise ShapeError(f"einsum: the equation has {len(subs)} operands, got {len(shapes)} "
                         f"tensors ({equation!r})")
    used = set(c for c in eq if c.isalpha())
    spare = [c for c in _LETTERS if c not in used]
    n_ell = max((len(s) - len(sub.replace("...", "")) for sub, s in zip(subs, shapes)
                 if "..." in sub), default=0)
    ell = "".join(spare[:n_ell])
    out_subs = []
    for sub, shape in zip(subs, shapes):
        if "..." in sub:
            k = len(shape) - len(sub.replace("...", ""))
            sub = sub.replace("...", ell[n_ell - k:] if k else "")
        if len(sub) != len(shape) or not all(c.isalpha() for c in sub):
            raise ShapeError(f"einsum: subscripts {sub!r} do not fit an operand of shape "
                             f"{shape} ({equation!r})")
        out_subs.append(sub)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {}
        for s in out_subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    if len(set(out)) != len(out) or any(c not in "".join(out_subs) for c in out):
        raise ShapeError(f"einsum: bad output subscripts {out!r} ({equation!r})")
    return out_subs, out


def einsum(equation, *operands):
    """Einstein summation, e.g. ``einsum('bij,bjk->bik', a, b)`` (a batched matmul).

    Supports ``...``, implicit output (``'ij,jk'``), repeated letters (``'ii->i'``: a diagonal,
    ``'ii'``: the trace) and broadcasting of size-1 dims. Contractions go through matmul.
    """
    from .tensor import Tensor

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in operands]
    subs, out = _parse(equation, [t.shape for t in ts])
    sizes = {}
    for sub, t in zip(subs, ts):
        for c, n in zip(sub, t.shape):
            if sizes.get(c, 1) != 1 and n not in (1, sizes[c]):
                raise ShapeError(f"einsum: letter {c!r} has sizes {sizes[c]} and {n} "
                                 f"({equation!r})")
            sizes[c] = max(sizes.get(c, 1), n)
    items = []
    for sub, t in zip(subs, ts):
        while len(set(sub)) != len(sub):              # 'ii' -> the diagonal, moved last
            c = next(c for c in sub if sub.count(c) > 1)
            i = sub.index(c)
            j = sub.index(c, i + 1)
            t = t.diagonal(0, i, j)
            sub = sub[:i] + sub[i + 1:j] + sub[j + 1:] + c
        target = tuple(sizes[c] for c in sub)
        if t.shape != target:
            t = t.expand(target)
        items.append((sub, t))
    # sum out letters that only one operand has and the output does not keep
    for k, (sub, t) in enumerate(items):
        others = out + "".join(s for i, (s, _) in enumerate(items) if i != k)
        lone = [i for i, c in enumerate(sub) if c not in others]
        if lone:
            t = t.sum(axis=tuple(lone))
            sub = "".join(c for c in sub if c not in (sub[i] for i in lone))
        items[k] = (sub, t)
    sub, t = items[0]
    for k in range(1, len(items)):
        keep = out + "".join(s for s, _ in items[k + 1:])
        sub, t = _contract(sub, t, *items[k], keep, sizes)
    lone = tuple(i for i, c in enumerate(sub) if c not in out)
    if lone:
        t = t.sum(axis=lone)
        sub = "".join(c for c in sub if c in out)
    return t.permute([sub.index(c) for c in out]) if sub != out else t


def _contract(sa, a, sb, b, keep, sizes):
    """One pairwise contraction as a batched matmul (batch, m, k) @ (batch, k, n)."""
    batch = [c for c in sa if c in sb and c in keep]
    summed = [c for c in sa if c in sb and c not in keep]
    a_only = [c for c in sa if c not in sb]
    b_only = [c for c in sb if c not in sa]
    size = (lambda cs: int(np.prod([sizes[c] for c in cs])) if cs else 1)
    am = a.permute([sa.index(c) for c in batch + a_only + summed])
    bm = b.permute([sb.index(c) for c in batch + summed + b_only])
    am = am.reshape(size(batch), size(a_only), size(summed))
    bm = bm.reshape(size(batch), size(summed), size(b_only))
    y = (am @ bm).reshape(tuple(sizes[c] for c in batch + a_only + b_only))
    return "".join(batch + a_only + b_only), y
