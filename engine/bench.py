"""`python -m engine.bench` is kept as an alias of `nemo bench` (engine.cli.bench)."""

import sys

from engine.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
