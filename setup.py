"""Build the Cython CPU kernels (tinygrad_lite._cpu). Everything else lives in pyproject.toml.

Flags: baseline x86-64 (each ISA kernel carries its own target attribute and is picked at import),
-O3, OpenMP in both compile and link args. Never -march=native (a wheel would SIGILL elsewhere)
and never -ffast-math (it would turn on flush-to-zero for the whole process at import).

The extension is optional -- without a compiler the package falls back to the NumPy backend and
the build prints a notice saying so and how to fix it -- unless TINYGRAD_LITE_REQUIRE_KERNELS=1
(CI), where a failed compile fails the build. The library is linked with -s (stripped).
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

REQUIRE = os.environ.get("TINYGRAD_LITE_REQUIRE_KERNELS", "") == "1"

NOTICE = """
********************************************************************************
tinygrad_lite: the Cython CPU kernels were NOT built ({reason}).
The package still works, on the NumPy backend (slower matmul, conv and pooling).
To build them, install a C compiler (gcc or clang) and Cython>=3, then reinstall:
    pip install --force-reinstall --no-cache-dir tinygrad_lite   (an installed copy)
    python setup.py build_ext --inplace                          (a source checkout)
********************************************************************************
"""


def notice(reason):
    """The one install-time message (pip shows build output with -v; the runtime warning of
    every process then says the same)."""
    sys.stderr.write(NOTICE.format(reason=reason))
    sys.stderr.flush()


class BuildExtWithNotice(build_ext):
    """build_ext that says, visibly, when the optional extension could not be compiled."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            if not REQUIRE:
                notice(f"{type(e).__name__}: {str(e).strip()[:200]}")
            raise


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE:
            raise
        notice("Cython>=3 is not installed")
        return []
    if sys.platform == "win32":
        compile_args, link_args = ["/O2", "/openmp"], []
    elif sys.platform == "darwin":
        compile_args, link_args = ["-O3"], []  # Apple clang has no -fopenmp: runs single-threaded
    else:
        # -s: ship the library stripped (the debug info Python's -g adds is most of its size)
        compile_args, link_args = ["-O3", "-fopenmp"], ["-fopenmp", "-s"]
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
    except Exception as e:   # e.g. sources missing from a trimmed sdist: fall back unless required
        if REQUIRE:
            raise
        notice(f"cythonize failed: {type(e).__name__}: {e}")
        return []
    # cythonize() drops Extension(optional=...): set it on what it returns.
    for e in exts:
        e.optional = not REQUIRE
    return exts


class BuildPyWithCudaSources(build_py):
    """Ship the CUDA kernel sources (kernels/cuda/*.cu) as package data in
    tinygrad_lite/kernels_cuda/, where an installed package loads them with cupy.RawModule
    (tinygrad_lite.cuda.kernel_dir finds them there, or in kernels/cuda of a checkout)."""

    def run(self):
        super().run()
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "cuda")
        if not os.path.isdir(src):   # an sdist without them: the CPU package still works
            return
        dst = os.path.join(self.build_lib, "tinygrad_lite", "kernels_cuda")
        self.mkpath(dst)
        for name in sorted(os.listdir(src)):
            if name.endswith(".cu"):
                self.copy_file(os.path.join(src, name), os.path.join(dst, name))


setup(ext_modules=extensions(),
      cmdclass={"build_ext": BuildExtWithNotice, "build_py": BuildPyWithCudaSources})
