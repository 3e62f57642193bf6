"""The local lab: ``lab.py up | status | down`` (see eventbus_lab.cli, in lab/)."""

from eventbus_lab.cli import main

if __name__ == "__main__":
    main()
