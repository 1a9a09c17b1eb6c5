#!/usr/bin/env python3
"""Benchmark golden against the C of the same spec and the Qualia layers (all in golden/bench.py).

    python tools/bench.py --quick                               # N in 64..65536, T = 100
    python tools/bench.py --json bench.json --markdown bench.md  # the full grid
    golden bench ...                                             # the same command
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.bench import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
