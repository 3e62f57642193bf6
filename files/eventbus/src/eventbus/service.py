"""``eventbus-service``'s entry point, for the supervisor and each worker.

A SIGHUP (``systemctl reload``) that arrives while the process is still importing would
kill it: SIGHUP's default action ends a process, and the reload handler exists only once
the server runs. So SIGHUP is ignored before anything heavy is imported; the supervisor
and the workers install their handlers when they are ready to reload. A SIGTERM or SIGINT
that reaches the supervisor (or a lone worker: systemd's main process) that early ends it
with exit 0 (nothing was started that a stop would have to finish), not killed by the signal
(-15), which systemd counts as a failure. A worker of a supervisor keeps the default: killed
at once, which its supervisor counts as a clean stop.

The early handler exits with ``os._exit``: a SystemExit raised from a signal handler lands
wherever the main thread is, and inside an import's weakref callback Python reports it as
"Exception ignored" and goes on; the supervisor then ran on without its stop.
"""

import os
import signal
import sys


def _stop_before_start(signum: int, frame: object) -> None:
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if "--worker" not in sys.argv:  # until the server installs its own
        signal.signal(signal.SIGTERM, _stop_before_start)
        signal.signal(signal.SIGINT, _stop_before_start)
    from eventbus.server import main as server_main  # after the signal setup

    server_main()


if __name__ == "__main__":
    main()
