"""``python -m golden.cli``: the same as the ``golden`` command."""

import sys

from . import main

sys.exit(main())
