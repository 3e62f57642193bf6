"""A tiny HTTP server standing in for an eventbus host behind the load balancer.

It answers ``GET /healthz`` (the load balancer's health check), ``GET /slow/<seconds>``
after that long, and every other request with its own name. It counts the requests it
served, so a test can see traffic stop and come back when the server is depooled and pooled.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ._net import LOOPBACK


class _Handler(BaseHTTPRequestHandler):
    server: _CountingServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):  # /slow/<seconds>: a long-lived session
            time.sleep(float(self.path.rsplit("/", 1)[1]))
        body = b"ok\n" if self.path == "/healthz" else f"{self.server.name}\n".encode()
        if self.path != "/healthz":
            self.server.count_request()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.name = name
        self._lock = threading.Lock()
        self.requests = 0

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # health checks and clients hang up early; that is not an error here

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1


class HttpBackend:
    def __init__(self, name: str) -> None:
        self._server = _CountingServer(name)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def name(self) -> str:
        return self._server.name

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> int:
        return self._server.requests

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
