"""Containers and blocks: Sequential, ModuleList, ModuleDict, Residual, BasicBlock.

Next: activation.py.
"""

from collections import OrderedDict

from .. import plan as _plan
from ..autograd import is_grad_enabled
from ..tensor import Tensor
from . import functional as F
from .activation import ReLU
from .conv import Conv2d
from .linear import Linear
from .module import Module
from .normalization import BatchNorm2d


class Sequential(Module):
    """Apply modules in order; children are named "0", "1", ... (or by an OrderedDict's keys),
    so state_dict keys read ``"0.weight"`` as in PyTorch.

    >>> model = Sequential(Linear(2, 8), ReLU(), Linear(8, 1))
    >>> model(Tensor(np.zeros((4, 2), "f"))).shape
    (4, 1)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            if _linear_then_relu(m, mods[i + 1] if i + 1 < len(mods) else None):
                x = F.linear_relu(x, m.weight, m.bias)   # one fused Function, the same values
                i += 2
                continue
            x = m(x)
            i += 1
        return x

    def __call__(self, *args, **kwargs):
        # Eval mode under no_grad: the compiled path (tinygrad_lite/plan.py) runs the chain as
        # kernel calls on preallocated buffers; it returns None for what it cannot run.
        if (not self.training and len(args) == 1 and not kwargs and not self._hooked()
                and not is_grad_enabled() and type(args[0]) is Tensor):
            y = _plan.run(self, self._modules.values(), args[0].data)
            if y is not None:
                return Tensor._wrap(y, False)
        return Module.__call__(self, *args, **kwargs)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return mods[i]


def _linear_then_relu(m, nxt):
    """True for a Linear (with bias) followed by a ReLU, neither with forward hooks."""
    return (type(m) is Linear and type(nxt) is ReLU and m.bias is not None
            and not m._hooked() and not nxt._hooked())


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        mods = list(self._modules.values())
        return ModuleList(mods[i]) if isinstance(i, slice) else mods[i]

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward; iterate over it in yours")


class ModuleDict(Module):
    """A dict of modules whose parameters are registered."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        self.add_module(name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()


class Residual(Module):
    """y = module(x) + shortcut(x) (shortcut: identity unless given).

    The identity path adds 1 to the Jacobian dy/dx = d module/dx + I, so the gradient reaching
    early layers of a deep stack does not shrink multiplicatively with depth (He et al., 2016).
    """

    def __init__(self, module, shortcut=None):
        super().__init__()
        self.module = module
        if shortcut is not None:
            self.shortcut = shortcut

    def forward(self, x):
        s = self.shortcut(x) if "shortcut" in self._modules else x
        return self.module(x) + s


class BasicBlock(Module):
    """The ResNet-18/34 block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), with 3x3
    convolutions (the first with ``stride``) and, when the shape changes, a 1x1-conv + BatchNorm
    ``downsample`` shortcut. Names match torchvision's ``BasicBlock`` (conv1, bn1, conv2, bn2,
    downsample.0, downsample.1), so its state dict loads there and back.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        if downsample is None and (stride != 1 or inplanes != planes):
            downsample = Sequential(
                Conv2d(inplanes, planes, 1, stride=stride, bias=False), BatchNorm2d(planes)
            )
        if downsample is not None:
            self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if "downsample" in self._modules else x
        return self.relu(out + identity)
