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


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0

    def add(self) -> None:
        with self._lock:
            self.requests += 1


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, address: str, port: int, counter: _Counter) -> None:
        super().__init__((address, port), _Handler)
        self.name = name
        self.counter = counter

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # health checks and clients hang up early; that is not an error here

    def count_request(self) -> None:
        self.counter.add()


class HttpBackend:
    """Listens on one port of each of ``addresses`` (loopback addresses only), the first
    being the host's own address and the others, say, a service address."""

    def __init__(self, name: str, addresses: tuple[str, ...] = (LOOPBACK,)) -> None:
        self._counter = _Counter()
        first = _CountingServer(name, addresses[0], 0, self._counter)
        port = int(first.server_address[1])
        self._servers = [first] + [
            _CountingServer(name, address, port, self._counter) for address in addresses[1:]
        ]
        self._threads = [
            threading.Thread(target=server.serve_forever, daemon=True) for server in self._servers
        ]
        self.name = name
        self.port = port
        self.addresses = addresses

    @property
    def requests(self) -> int:
        return self._counter.requests

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
