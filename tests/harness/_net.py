"""Small networking helpers shared by the harness servers."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"

# Ports are handed out from a range of this process's own, below the kernel's ephemeral range
# (32768-60999): the test workers (pytest-xdist) run side by side, and a port chosen by
# binding port 0 could be chosen again by another worker, or taken by a client's outgoing
# connection, before the server that was to listen on it has started.
PORTS_PER_WORKER = 2000
FIRST_PORT = 12000


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1, ...
    return int(worker[2:]) if worker[2:].isdigit() else 0


_candidates = itertools.cycle(
    range(
        FIRST_PORT + _worker_index() * PORTS_PER_WORKER,
        FIRST_PORT + (_worker_index() + 1) * PORTS_PER_WORKER,
    )
)


def free_port() -> int:
    """A TCP port on loopback that is free right now, from this worker's own range."""
    for _attempt in range(PORTS_PER_WORKER):
        port = next(_candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in this worker's range of {PORTS_PER_WORKER}")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until it is true; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - a server that is still starting may raise anything
            pass
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)
