"""The access log, written once per loop turn instead of once per request.

aiohttp calls ``AccessLogger.log`` after every answer; through ``logging`` each call made a
LogRecord, formatted it, and wrote and flushed it under the handler's lock: about a tenth of
a single-event request's CPU. Here a line is one f-string appended to a list shared by every
connection; the list is written in one write (under the handler's lock, so lines never
interleave with other log lines) at the end of the loop's turn, or at once past
``MAX_PENDING`` lines. Every line is written, errors included; nothing is sampled. The lines
look exactly as ``logging`` would have written them (the handler's own format, read once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# A turn of a busy loop answers many requests: write at the latest after this many lines.
MAX_PENDING = 512
_MARK = "\x00access\x00"


class AccessLines:
    """Formatted lines waiting for the end of the loop's turn (one per process)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.lines: list[str] = []
        self.scheduled = False
        self.handler = _stream_handler(logger)
        self.before = self.after = ""
        self.stamped = False
        self.second = -1
        self.stamp = ""
        if self.handler is not None:
            self._read_format(self.handler)

    def _read_format(self, handler: logging.StreamHandler[TextIO]) -> None:
        """Split the handler's format of a line around its time stamp and its message."""
        record = self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, _MARK, None, None)
        record.created = 0.0
        record.msecs = 0.0
        formatter = handler.formatter or logging.Formatter()
        text = formatter.format(record)
        head, _sep, tail = text.partition(_MARK)
        stamp = formatter.formatTime(record) if formatter.usesTime() else ""
        if stamp and stamp in head:
            self.stamped = True
            self.before, _sep, between = head.partition(stamp)
            self.after = between
        else:
            self.before = head
        self.tail = tail + "\n"

    def add(self, message: str) -> None:
        if self.handler is None:  # logging set up some other way: go through it
            self.logger.info("%s", message)
            return
        if self.stamped:
            now = time.time()
            second = int(now)
            if second != self.second:
                self.second = second
                self.stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            prefix = f"{self.before}{self.stamp},{int((now - second) * 1000):03d}{self.after}"
        else:
            prefix = self.before
        self.lines.append(f"{prefix}{message}{self.tail}")
        if len(self.lines) >= MAX_PENDING:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.lines or self.handler is None:
            return
        text = "".join(self.lines)
        self.lines.clear()
        handler = self.handler
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.stream.flush()
        except (OSError, ValueError):
            handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))
        finally:
            handler.release()


def _stream_handler(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The one stream handler the access lines would go to, or None (write through logging)."""
    if not logger.isEnabledFor(logging.INFO) or logger.filters:
        return None
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if len(handlers) != 1:
        return None
    (handler,) = handlers
    # a plain stream (stderr, as logging.basicConfig sets up): a file handler may rotate on
    # emit. (The service's handler filters only the Kafka client's records: not these.)
    if (
        not isinstance(handler, logging.StreamHandler)
        or isinstance(handler, logging.FileHandler)
        or handler.level > logging.INFO
    ):
        return None
    return handler


_LINES: dict[str, AccessLines] = {}


def lines_for(logger: logging.Logger) -> AccessLines:
    found = _LINES.get(logger.name)
    if found is None or found.logger is not logger:
        found = _LINES[logger.name] = AccessLines(logger)
    return found


class AccessLogger(AbstractAccessLogger):
    """``201 POST /v1/events (10.64.0.71) 1.87ms``, as the runbook's log example. aiohttp
    makes one per connection; they share the process's AccessLines."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self.pending = lines_for(logger)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.pending.add(
            f"{response.status} {request.method} {request.path_qs} ({request.remote}) "
            f"{time * 1000:.2f}ms"
        )


def flush() -> None:
    """Write what is waiting now (the worker's last lines, before it exits)."""
    for pending in _LINES.values():
        pending.flush()
