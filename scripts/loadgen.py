"""Client load: POST test events to service addresses (see eventbus_lab.loadgen, in lab/)."""

import sys

from eventbus_lab.loadgen import main

if __name__ == "__main__":
    sys.exit(main())
