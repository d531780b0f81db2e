"""Benchmarks in a checkout. The kernel, training and recurrent suites ship with the package
(tinygrad_lite/bench/; ``tinygrad-lite bench ...``); benchmarks.kernels, .training and .recurrent
are shims to them. The rest (overhead, runtime, distributed, ...) are dev-only scripts."""
