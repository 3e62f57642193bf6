"""The failed-events log: every event the service could not accept, as an EventError line.

The record is compatible with eventlogging's EventError (what eventlogging-replay reads)::

    {"schema": "EventError", "revision": 14035058, "wiki": "", "uuid": "...",
     "recvFrom": "kafka1001", "timestamp": 1700000000,
     "event": {"rawEvent": "<the original JSON text>", "message": "...",
               "code": "validation|parse|produce|replay", "schema": "...", "revision": -1}}

Each line is one ``write()`` on an ``O_APPEND`` descriptor, so the worker processes of a
host can share the file without interleaving; the file is reopened when log rotation moved
or removed it.

When the log cannot be written (a full disk, lost permissions) ``write`` says so instead of
raising: the caller answers with what happened to the events (an event that could neither
be produced nor logged is a 503, never a 500), one error line a minute goes to the service
log, and ``problem()`` tells the health check, so the load balancer takes the host out
until the log can be written again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from eventbus import metrics

log = logging.getLogger("eventbus.failed_events")
EVENT_ERROR_SCHEMA = "EventError"
ERROR_LOG_INTERVAL = 60.0  # seconds between two error lines about an unwritable log
# below this much free space the log counts as unwritable (a batch's lines must fit)
MIN_FREE_BYTES = 64 << 10
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
    def __init__(self, path: Path, follow_links: bool = True) -> None:
        """``follow_links=False``: refuse a symbolic link at ``path`` (O_NOFOLLOW), for a
        writer running as root in a directory another user owns (eventbus-replay)."""
        self.path = path
        self._flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        if not follow_links:
            self._flags |= os.O_NOFOLLOW
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self.written = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._last_error_logged = 0.0

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, self._flags, 0o640)
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

    def write(self, records: list[dict[str, Any]]) -> bool:
        """Append the records; False (and the error remembered) when they could not be."""
        if not records:
            return True
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        with self._lock:
            try:
                fd = self._current_fd()
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError as err:
                self._failed(err, len(records))
                return False
            self.written += len(records)
            self.last_error = None
        metrics.FAILED_EVENTS_LOGGED.inc(len(records))
        return True

    def _failed(self, err: OSError, count: int) -> None:
        self.write_errors += count
        metrics.FAILED_EVENTS_LOG_WRITE_ERRORS.inc(count)
        self.last_error = f"{self.path}: {err.strerror or err}"
        now = time.monotonic()
        if now - self._last_error_logged >= ERROR_LOG_INTERVAL:
            self._last_error_logged = now
            log.error(
                "cannot write the failed-events log (%s); %d event(s) lost from it so far",
                self.last_error,
                self.write_errors,
            )

    def problem(self) -> str | None:
        """Why the log cannot take lines now, or None. After a failed write, the log is
        healthy again once its file can be opened for appending with room to spare."""
        if self.last_error is None:
            return None
        try:
            fd = os.open(self.path, self._flags, 0o640)
            try:
                free = os.fstatvfs(fd)
            finally:
                os.close(fd)
        except OSError as err:
            return f"failed-events log {self.path}: {err.strerror or err}"
        if free.f_bavail * free.f_frsize < MIN_FREE_BYTES:
            return f"failed-events log {self.path}: its file system is full"
        with self._lock:
            self.last_error = None
        return None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
