"""`make demo`: a scripted tour on the embedded default (both simulators on loopback + DuckDB).

Grows with each issue; see README.
"""

from __future__ import annotations

import sys


def main() -> int:
    print("ml-connector demo: nothing to show yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
