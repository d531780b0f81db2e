"""Build the Cython CPU kernels (tinygrad_lite._cpu). Everything else lives in pyproject.toml.

Flags: baseline x86-64 (each ISA kernel carries its own target attribute and is picked at import),
-O3, OpenMP in both compile and link args. Never -march=native (a wheel would SIGILL elsewhere)
and never -ffast-math (it would turn on flush-to-zero for the whole process at import).

The extension is optional -- without a compiler the package falls back to the NumPy backend --
unless TINYGRAD_LITE_REQUIRE_KERNELS=1 (CI), where a failed compile fails the build.
"""

import os
import sys

from setuptools import Extension, setup

REQUIRE = os.environ.get("TINYGRAD_LITE_REQUIRE_KERNELS", "") == "1"


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE:
            raise
        return []
    if sys.platform == "win32":
        compile_args, link_args = ["/O2", "/openmp"], []
    elif sys.platform == "darwin":
        compile_args, link_args = ["-O3"], []  # Apple clang has no -fopenmp: runs single-threaded
    else:
        compile_args, link_args = ["-O3", "-fopenmp"], ["-fopenmp"]
    ext = Extension(
        "tinygrad_lite._cpu",
        sources=["kernels/cpu/_cpu.pyx"],
        include_dirs=["kernels/cpu"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    try:
        exts = cythonize([ext], compiler_directives={"language_level": "3"},
                         include_path=["kernels/cpu"])
    except Exception:   # e.g. sources missing from a trimmed sdist: fall back unless required
        if REQUIRE:
            raise
        return []
    # cythonize() drops Extension(optional=...): set it on what it returns.
    for e in exts:
        e.optional = not REQUIRE
    return exts


setup(ext_modules=extensions())
