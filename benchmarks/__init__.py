"""Benchmarks: kernel matrix (benchmarks.kernels) and end-to-end training runs."""
