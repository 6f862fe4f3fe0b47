"""``python -m amplitude_dsr.emulator --port P --seed S [--json]``."""

from __future__ import annotations

import sys

from .cli import main, serve

__all__ = ["serve"]

if __name__ == "__main__":
    sys.exit(main())
