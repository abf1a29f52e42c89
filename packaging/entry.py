"""The frozen app's entry point (PyInstaller runs this file as __main__)."""

from __future__ import annotations

import sys


def main() -> int:
    if any(a == "--self-test" or a.startswith("--self-test=") for a in sys.argv[1:]):
        # Handled here too, so a bundle can be checked before app/main.py wires the flag.
        from app.bridge.selftest import main as self_test

        return self_test(sys.argv[1:])
    from app.main import main as app_main

    return app_main()


if __name__ == "__main__":
    __import__("multiprocessing").freeze_support()  # the document reader's worker starts here
    sys.exit(main())
