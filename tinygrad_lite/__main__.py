"""``python -m tinygrad_lite`` runs the ``tinygrad-lite`` command line (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
