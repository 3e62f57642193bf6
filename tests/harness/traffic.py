"""Client traffic for tests: plain HTTP GETs, one after another, for a bounded time."""

from __future__ import annotations

import threading
import time
import urllib.request


class Traffic:
    """Requests through the load balancer, one after another, for a bounded time."""

    def __init__(self, url: str, seconds: float = 60) -> None:
        self.url = url
        self.deadline = time.monotonic() + seconds
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    resp.read()
            except OSError:
                self.errors += 1
            time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
