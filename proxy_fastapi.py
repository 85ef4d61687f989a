#!/usr/bin/env python3
"""Entry point of the caching OpenAI proxy: same flags as `podmgr proxy`.

Runs from any directory: it finds its package beside itself. All work is in podmgr.cli.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from podmgr.cli import main

if __name__ == "__main__":
    sys.exit(main(["proxy", *sys.argv[1:]]))
