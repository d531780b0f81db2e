"""Public testing tools: gradient checks and Hypothesis strategies, to test your own ops the way
tinygrad_lite tests its own.

``strategies`` needs Hypothesis (``pip install tinygrad_lite[test]``); import it explicitly:
``from tinygrad_lite.testing import strategies``.
"""

from .gradcheck import GradcheckError, assert_gradients_close, gradcheck, gradgradcheck

__all__ = ["gradcheck", "gradgradcheck", "assert_gradients_close", "GradcheckError"]
