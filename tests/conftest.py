"""Shared test setup: Hypothesis profiles and the backend fixture.

Profiles (select with HYPOTHESIS_PROFILE): ``dev`` (fast, default locally), ``ci`` (derandomized,
no deadline; what .ci/run uses), ``thorough`` (many examples, for a long local run).
"""

import os
import warnings

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=10, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

warnings.filterwarnings("ignore", message="tinygrad_lite: Cython kernels not built")


def pytest_collection_modifyitems(config, items):
    """``full``-marked tests (minutes long, e.g. the tiny GPT trained to its loss bound) run only
    with TINYGRAD_LITE_FULL_TESTS=1; CI does not set it."""
    if os.environ.get("TINYGRAD_LITE_FULL_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="full-length run (minutes): set TINYGRAD_LITE_FULL_TESTS=1 "
                                   "to run it")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


def _backend_names():
    from tinygrad_lite import backends

    return [n for n in backends.names() if backends.get(n).xp.__name__ == "numpy"]


@pytest.fixture(scope="session", params=_backend_names())
def backend(request):
    """Every available CPU backend, active for the test (session-scoped: Hypothesis-safe)."""
    from tinygrad_lite import backends

    with backends.use(request.param) as b:
        yield b


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the optional comparison peer: tests using it skip (saying why) without it."""
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed (optional comparison peer): pip install torch==2.13.0")
    return torch
