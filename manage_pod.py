#!/usr/bin/env python3
"""Cron entry point of the watchdog: one pass, or --shutdown, --dry-run, ... .

Runs from any directory: it finds its package beside itself. All work is in podmgr.cli.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from podmgr.cli import main

if __name__ == "__main__":
    sys.exit(main(["watchdog", *sys.argv[1:]]))
