"""The failed-events log: every event the service could not accept, as an EventError line.

The record is compatible with eventlogging's EventError (what eventlogging-replay reads)::

    {"schema": "EventError", "revision": 14035058, "wiki": "", "uuid": "...",
     "recvFrom": "kafka1001", "timestamp": 1700000000,
     "event": {"rawEvent": "<the original JSON text>", "message": "...",
               "code": "validation|parse|produce|replay", "schema": "...", "revision": -1}}

Each line is one ``write()`` on an ``O_APPEND`` descriptor, so the worker processes of a
host can share the file without interleaving; the file is reopened when log rotation moved
or removed it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

EVENT_ERROR_SCHEMA = "EventError"
EVENT_ERROR_REVISION = 14035058  # eventlogging's EventError schema revision
CODES = ("validation", "parse", "produce", "replay")


def event_error(
    raw_event: str, message: str, code: str, schema: str = "", received_from: str = ""
) -> dict[str, Any]:
    if code not in CODES:
        raise ValueError(f"unknown EventError code {code!r}")
    return {
        "schema": EVENT_ERROR_SCHEMA,
        "revision": EVENT_ERROR_REVISION,
        "wiki": "",
        "uuid": uuid.uuid4().hex,
        "recvFrom": received_from or socket.gethostname(),
        "timestamp": int(time.time()),
        "event": {
            "rawEvent": raw_event,
            "message": message,
            "code": code,
            "schema": schema,
            "revision": -1,
        },
    }


class FailedEventsLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self.written = 0

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        stat = os.fstat(fd)
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)
        return fd

    def _current_fd(self) -> int:
        if self._fd is None:
            return self._open()
        try:
            stat = os.stat(self.path)
            if (stat.st_dev, stat.st_ino) == self._identity:
                return self._fd
        except FileNotFoundError:
            pass
        os.close(self._fd)  # rotated away: write to a new file at the configured path
        return self._open()

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        with self._lock:
            fd = self._current_fd()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self.written += len(records)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
