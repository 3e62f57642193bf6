"""``eventbus-service``'s entry point, for the supervisor and each worker.

A SIGHUP (``systemctl reload``) that arrives while the process is still importing would
kill it: SIGHUP's default action ends a process, and the reload handler exists only once
the server runs. So SIGHUP is ignored before anything heavy is imported; the supervisor
and the workers install their handlers when they are ready to reload.
"""

import signal


def main() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from eventbus.server import main as server_main  # after the signal setup

    server_main()


if __name__ == "__main__":
    main()
