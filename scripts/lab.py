"""The local lab: ``lab.py up | status | down | proof | cases | faults`` (eventbus_lab.cli)."""

import sys

from eventbus_lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
