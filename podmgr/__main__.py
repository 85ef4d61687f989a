"""`python -m podmgr ...` is the `podmgr` console script (used to start detached processes)."""

import sys

from podmgr.cli import main

sys.exit(main())
