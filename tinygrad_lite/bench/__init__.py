"""Benchmarks shipped with the package (``tinygrad-lite bench kernels|training|compare``).

* ``kernels``: the kernel matrix (GEMM, conv2d, pooling) against NumPy/OpenBLAS and PyTorch,
  with the machine measured first (``machine``: FMA peak and STREAM-triad bandwidth);
* ``training``: framework overhead, fit(), predict, jit, a CNN step, LSTM/GRU (``recurrent``);
* ``compare``: two ``kernels --json`` files side by side, regressions beyond the noise band.

Nothing here is imported by ``import tinygrad_lite``; torch, jax and matplotlib are optional.
"""
