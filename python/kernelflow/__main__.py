"""`python -m kernelflow` runs the `kernelflow` command."""

import sys

from kernelflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
