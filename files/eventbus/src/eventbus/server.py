"""``eventbus-service``: a supervisor and its worker processes.

The supervisor starts ``num_processes`` workers, each binding the port with SO_REUSEPORT
(the kernel spreads connections over them), restarts a worker that dies, and forwards
signals: SIGTERM/SIGINT stop every worker gracefully (stop accepting, finish each in-flight
request - which waits for its Kafka acknowledgement - flush the producer, exit 0), SIGHUP
makes each worker reload its schemas and stream configuration without dropping requests.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import orjson
import uvloop
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

from eventbus import __version__, access_log, metrics
from eventbus import config as config_module
from eventbus.access_log import AccessLogger
from eventbus.config import Config
from eventbus.http import CUT_SHORT_SECONDS, DRAIN, create_app, test_event_instance
from eventbus.producer import check_settings
from eventbus.schemas import SchemaInvalidError, SchemaNotFoundError, SchemaRepository
from eventbus.validation import InvalidEventError, Validator

log = logging.getLogger("eventbus.server")
RESTART_BACKOFF_MAX = 10.0
# A worker's stop takes at most shutdown_timeout (its requests, then its hasty produces and the
# producer's flush, in what is left) plus a few seconds (aiohttp's own wait for the requests cut
# short, twice, and the flush's last FINAL_SECONDS: http.py): the supervisor kills it later.
KILL_MARGIN = 10.0


# What a client's bytes or a client's going away make aiohttp raise (and log with a
# traceback): the client's doing, answered 4xx or not at all - one line is enough.
CLIENT_FAULTS = (BadHttpMessage, RequestPayloadError, ConnectionError, asyncio.IncompleteReadError)


class BadRequestsInOneLine(logging.Filter):
    """aiohttp logs a malformed request (bad header bytes, a body that does not decode, a
    client gone mid-body) with a traceback; it is the client's error: one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None and not isinstance(error, CLIENT_FAULTS):
            error = error.__cause__ or error.__context__
        if error is not None:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            record.msg = "client error (%s): %s"
            record.args = (type(error).__name__, first)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class KafkaClientInOneLine(logging.Filter):
    """kafka-python (the topic list's client) logs a broker gone (reset, refused, restarting)
    at up to ERROR with a traceback. Kafka away is the service's to answer (503, the
    failed-events log, /healthz), and the runbook's log check reads a traceback in the
    journal as the service failing: one line, at WARNING at most. On the root's handlers,
    as kafka-python logs through many child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "kafka" and not record.name.startswith("kafka."):
            return True
        if record.exc_info or record.stack_info:
            message = record.getMessage()
            error = record.exc_info[1] if record.exc_info else None
            record.msg, record.args = ("%s (%r)", (message, error)) if error else ("%s", (message,))
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class ConnectionCap:
    """The protocol factory of a worker's server, with at most ``limit`` connections: one
    more is answered 503 and closed at once (the load balancer tries another host)."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) >= self.limit:
            return RefuseConnection()
        return self.server()


class RefuseConnection(asyncio.Protocol):
    ANSWER = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: 59\r\n\r\n"
        b'{"status": 503, "message": "too many connections; retry"}\n\n'
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        metrics.CONNECTIONS_REFUSED.inc()
        stream = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio subclass
        stream.write(self.ANSWER)
        stream.close()


class CappedSockSite(web.SockSite):
    """A site on an already bound socket whose server takes at most ``limit`` connections."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, limit: int) -> None:
        super().__init__(runner, sock)
        self.limit = limit

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            ConnectionCap(server, self.limit), sock=self._sock, backlog=self._backlog
        )


def listening_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((address, port))
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


async def serve(config: Config, path: Path, sock: socket.socket) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully: stop accepting, let in-flight
    requests finish (they wait for Kafka) within shutdown_timeout, close the app (hasty
    produces finished or logged, the producer flushed)."""
    app = create_app(config, path)
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("eventbus.access"),
        keepalive_timeout=config.idle_timeout,
        # the requests already had shutdown_timeout (Drain): aiohttp waits only a little more
        shutdown_timeout=CUT_SHORT_SECONDS,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before anything starts that a stop ends
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    try:
        site = CappedSockSite(runner, sock, config.max_connections)
        await site.start()
        log.info("worker %d listening on %s:%d", os.getpid(), config.listen_address, config.port)
        notify_ready()  # only a lone worker has NOTIFY_SOCKET; the supervisor keeps it
        await stop.wait()
        # stop accepting, and let what is in flight finish before aiohttp shuts connections
        # down (it drops what they still receive: see Drain)
        drain = app[DRAIN]
        drain.stopping = True
        drain.deadline = loop.time() + config.shutdown_timeout
        await site.stop()
        if not await drain.wait_idle(drain.left(config.shutdown_timeout)):
            log.warning("%d request(s) still in flight after %ss", drain.in_flight,
                        config.shutdown_timeout)  # fmt: skip
    finally:
        await runner.cleanup()
        access_log.flush()  # the last answers' lines


def run_worker(path: Path) -> None:
    config = config_module.load(path)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # libuv's loop: faster I/O
    sock = listening_socket(config.listen_address, config.port)
    asyncio.run(serve(config, path, sock))
    log.info("worker %d stopped", os.getpid())


def ignore_sighup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def notify_ready() -> None:
    """Tell systemd (Type=notify) the service can take signals: a reload queued behind the
    start waits for this, so it never reaches a process that cannot reload yet."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"READY=1", address)
        except OSError as err:
            log.warning("could not notify systemd at %s: %s", address, err)


class Supervisor:
    def __init__(self, path: Path, workers: int, shutdown_timeout: float) -> None:
        self.path = path
        self.workers = workers
        self.shutdown_timeout = shutdown_timeout
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.failures = 0

    def spawn(self) -> None:
        if self.stopping:  # a stop that came while the workers were being started
            return
        argv = [sys.executable, "-m", "eventbus.service", "--config", str(self.path), "--worker"]
        # The worker starts with SIGHUP ignored (kept across exec) until its reload handler
        # is installed, so a reload forwarded while it is still starting cannot kill it.
        env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
        child = subprocess.Popen(argv, env=env, preexec_fn=ignore_sighup)
        self.children[child.pid] = child
        log.info("started worker %d", child.pid)

    def forward(self, signum: int) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("stopping %d worker(s) gracefully (signal %d)", len(self.children), signum)
        self.stopping = True
        self.forward(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)  # before anything a stop has to undo
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, lambda s, f: self.forward(signal.SIGHUP))
        metrics_dir = tempfile.mkdtemp(prefix="eventbus-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the workers
        try:
            return self._run()
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _run(self) -> int:
        for _worker in range(self.workers):
            self.spawn()
        notify_ready()
        deadline = None
        status = 0
        while self.children:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.shutdown_timeout + KILL_MARGIN
                # again: a worker whose start the stop interrupted (its Popen returned, not
                # yet in self.children) missed the handler's forward
                self.forward(signal.SIGTERM)
            for pid, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    if deadline is not None and time.monotonic() > deadline:
                        log.error("worker %d did not stop in time; killing it", pid)
                        child.kill()
                    continue
                del self.children[pid]
                metrics.worker_exited(pid)
                if self.stopping:
                    # a worker still starting when the stop came ends by the signal itself
                    status = status or (0 if code == -signal.SIGTERM else code)
                    continue
                self.failures += 1
                delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** min(self.failures, 5))
                log.error("worker %d exited with %s; restarting in %.1fs", pid, code, delay)
                time.sleep(delay)
                self.spawn()  # none once a stop came meanwhile
            time.sleep(0.1)
        return status


def run_time_problems(config: Config) -> list[str]:
    """What a configuration that loads would get wrong once running (--check-config only: the
    service's tests start it with such settings on purpose)."""
    problems = []
    if config.request_timeout <= config.kafka.produce_timeout:
        problems.append(
            f"config key request_timeout: {config.request_timeout:g} s is not longer than "
            f"kafka.produce_timeout ({config.kafka.produce_timeout:g} s): requests would be "
            "answered 503 while Kafka may still take their events (duplicates on replay)"
        )
    answered_within = config.body_timeout + config.request_timeout
    if config.load_balancer_timeout is not None and answered_within >= config.load_balancer_timeout:
        problems.append(
            f"config key load_balancer_timeout: body_timeout + request_timeout "
            f"({answered_within:g} s) must be below the load balancer's server timeout "
            f"({config.load_balancer_timeout:g} s), or a client gets a 504 for an event that "
            "went in (and retries it)"
        )
    problems += listen_problems(config)
    problems += failed_log_problems(config.failed_events_log)
    if config.test_event is not None:
        try:
            event = test_event_instance(config.test_event)  # as /v1/_test/events sends it
            Validator(config).validate(0, event, orjson.dumps(event))
        except InvalidEventError as err:
            problems.append(f"config key test_event: the test event is refused: {err}")
    return problems


def listen_problems(config: Config) -> list[str]:
    """The listen address must be one of this host's (the workers would crash-loop on it)."""
    family = socket.AF_INET6 if ":" in config.listen_address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((config.listen_address, 0))  # any port: the address is what is checked
    except OSError as err:
        return [
            f"config key listen.address: {config.listen_address} cannot be bound: {err.strerror}"
        ]
    return []


def failed_log_problems(path: Path) -> list[str]:
    """The failed-events log must be a file the service can append to, in a directory."""
    where = "config key failed_events_log"
    if path.exists() and not path.is_file():
        return [f"{where}: {path} is not a regular file"]
    if not path.parent.is_dir():
        return [f"{where}: {path.parent} is not a directory"]
    target = path if path.exists() else path.parent
    if os.geteuid() != 0 and not os.access(target, os.W_OK):
        return [f"{where}: {target} is not writable"]
    if os.geteuid() == 0 and os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        return [f"{where}: {path.parent} is on a read-only file system"]
    return []


def check_config(path: Path) -> int:
    """``--check-config``: load and validate the file as the service would, compile every
    schema of its repositories and check each stream rule's schema title exists; print what
    is wrong (by key) and return 1, or 0."""
    try:
        config = config_module.load(path)
        check_settings(config.kafka)
    except config_module.ConfigError as err:
        print(f"eventbus-service: {path}: {err}", file=sys.stderr)
        return 1
    problems = []
    repository = SchemaRepository(config.schema_repositories)
    titles = set()
    for uri in repository.list_uris():
        try:
            titles.add(repository.get(uri).title)
        except (SchemaNotFoundError, SchemaInvalidError) as err:
            problems.append(f"config key schema_repositories: {err}")
    for index, rule in enumerate(config.streams):
        if rule.schema_title is not None and rule.schema_title not in titles:
            problems.append(
                f"config key streams[{index}].schema_title: no schema titled {rule.schema_title} "
                "in the schema repositories"
            )
    problems += run_time_problems(config)
    for problem in problems:
        print(f"eventbus-service: {path}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"{path}: ok ({len(config.streams)} stream rule(s), {config.num_processes} worker(s), "
        f"Kafka {','.join(config.kafka.bootstrap_servers)})"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="eventbus-service", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=config_module.DEFAULT_PATH)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--check-config",
        type=Path,
        metavar="FILE",
        help="validate FILE as the service would load it, print what is wrong, exit non-zero",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check_config is not None:
        raise SystemExit(check_config(args.check_config))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s (%(processName)s %(process)d) %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.server").addFilter(BadRequestsInOneLine())
    for handler in logging.getLogger().handlers:
        handler.addFilter(KafkaClientInOneLine())
    try:
        config = config_module.load(args.config)
        check_settings(config.kafka)
    except config_module.ConfigError as err:
        print(f"eventbus-service: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.worker or config.num_processes == 1:
        run_worker(args.config)
        return
    raise SystemExit(Supervisor(args.config, config.num_processes, config.shutdown_timeout).run())


if __name__ == "__main__":
    main()
