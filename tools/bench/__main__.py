"""``python tools/bench [options]``: the same as ``golden bench`` (golden/cli/bench.py), from this checkout.

    python tools/bench --quick                                # N in 64..65536, T = 100
    python tools/bench --json bench.json --markdown bench.md  # the full grid
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from golden.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
