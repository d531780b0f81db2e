"""Optimizers and learning-rate schedulers (PyTorch names, signatures and defaults).

>>> from tinygrad_lite import optim                                      # doctest: +SKIP
>>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)          # doctest: +SKIP
>>> sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)    # doctest: +SKIP
>>> for epoch in range(30):                                            # doctest: +SKIP
...     opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
...     sched.step()

Reading order: optimizer.py (groups, state, checkpoints) -> sgd.py -> adam.py -> rmsprop.py ->
adagrad.py -> lr_scheduler.py.
"""

from tinygrad_lite.optim import lr_scheduler
from tinygrad_lite.optim.adagrad import Adagrad
from tinygrad_lite.optim.adam import Adam, AdamW
from tinygrad_lite.optim.optimizer import Optimizer
from tinygrad_lite.optim.rmsprop import RMSprop
from tinygrad_lite.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
