"""``python -m golden``: the same as the ``golden`` command."""

import sys

from .cli import main

sys.exit(main())
