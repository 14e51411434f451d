"""``python -m podtrace``: the ``podtrace`` command, run with this interpreter."""

from __future__ import annotations

import sys

from podtrace._cli import main

if __name__ == "__main__":
    sys.exit(main())
