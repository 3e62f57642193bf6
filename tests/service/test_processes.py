"""Several workers on one port; a crashed worker is restarted; SIGTERM under load loses no
acknowledged event and the service exits 0."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from eventbus.server import Supervisor

from tests.harness._net import free_port, port_open, wait_until
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import (
    Service,
    consume_ids,
    make_event,
    service_config,
    start_service,
)


def worker_pids(service: Service) -> set[int]:
    assert service.process is not None
    children = (
        Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children").read_text().split()
    )
    return {int(pid) for pid in children}


def test_two_workers_share_the_port_and_a_crashed_one_is_replaced(two_workers: Service) -> None:
    wait_until(lambda: len(worker_pids(two_workers)) == 2, 20, "two workers")
    before = worker_pids(two_workers)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(worker_pids(two_workers)) == 2 and victim not in worker_pids(two_workers),
        30,
        "a new worker",
    )
    wait_until(lambda: two_workers.request("GET", "/healthz").status == 200, 20, "healthy again")
    assert all(two_workers.post(make_event()).status == 201 for _attempt in range(10))
    assert "restarting in" in two_workers.log()


def in_flight(service: Service) -> float:
    """The service's eventbus_requests_in_flight (the /metrics request itself included)."""
    text = service.request("GET", "/metrics").body.decode()
    found = re.search(r"^eventbus_requests_in_flight(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


class Load:
    """Clients posting single events as fast as they can, recording what was acknowledged."""

    def __init__(self, url: str, clients: int = 6, seconds: float = 60) -> None:
        self.url = url + "/v1/events"
        self.deadline = time.monotonic() + seconds
        self.acked: list[str] = []
        self.refused = 0
        self.other: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, daemon=True) for _client in range(clients)
        ]

    def _client(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            event = make_event()
            req = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST")
            req.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    status = resp.status
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError:
                with self._lock:
                    self.refused += 1  # the service stopped listening: nothing was acknowledged
                time.sleep(0.01)
                continue
            with self._lock:
                if status == 201:
                    self.acked.append(event["meta"]["id"])
                else:
                    self.other.append(status)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)


def test_sigterm_under_load_loses_no_acknowledged_event(
    two_workers: Service, kafka_cluster: KafkaCluster
) -> None:
    assert two_workers.process is not None
    with Load(two_workers.url) as load:
        wait_until(lambda: len(load.acked) >= 200, 30, "load flowing")
        started = time.monotonic()
        two_workers.process.send_signal(signal.SIGTERM)
        code = two_workers.process.wait(40)
        stopped_in = time.monotonic() - started
        time.sleep(0.5)
    two_workers.process = None
    assert code == 0
    assert stopped_in < 15
    assert load.other == []  # no 5xx while stopping
    in_kafka = set(consume_ids(kafka_cluster, "eqiad.test.event", 5000))
    missing = [event_id for event_id in load.acked if event_id not in in_kafka]
    print(
        f"acknowledged {len(load.acked)}, refused after stop {load.refused}, missing {len(missing)}"
    )
    assert missing == []
    assert "stopping 2 worker(s) gracefully" in two_workers.log()


def test_a_reload_during_startup_does_not_kill_the_service(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path
) -> None:
    """systemd sends SIGHUP on reload, whenever it comes: a converge that restarts the service
    and then reloads it signals a process that is still importing its modules."""
    port = free_port()
    config = service_config(tmp_path, kafka_cluster.bootstrap_servers, port, num_processes=2)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's side of Type=notify
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    process = subprocess.Popen(
        [sys.executable, "-m", "eventbus.service", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
    )
    try:
        assert notify.recv(100) == b"READY=1"  # systemd holds a reload until then
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the workers, in every startup stage
            process.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        assert process.poll() is None, f"killed by SIGHUP during startup: {process.returncode}"
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: urllib.request.urlopen(url, timeout=5).status == 200, 30, "healthy")
    finally:
        process.terminate()
        code = process.wait(30)
    assert code == 0


# seconds after the start: the supervisor's imports, handlers and spawning, the workers' imports
# and their apps' start (each about a second on a loaded machine)
STOP_MOMENTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 1.8, 2.2, 2.6)


def test_a_stop_at_any_moment_of_startup_exits_0(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path
) -> None:
    """SIGTERM while the supervisor imports, installs its handlers, spawns its workers, while
    they import and while their apps start: every service exits 0, and soon. The services
    start side by side, so each stop also lands on a loaded machine (CI41: a stop between the
    supervisor's handler and its spawning left a worker running until it was killed, -9; a
    stop during an import was swallowed and the supervisor ran on)."""
    started: list[tuple[float, subprocess.Popen[bytes], Path]] = []
    for index, moment in enumerate(STOP_MOMENTS):
        port = free_port()
        config = service_config(
            tmp_path / str(index), kafka_cluster.bootstrap_servers, port, num_processes=2
        )
        log = tmp_path / f"{index}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "eventbus.service", "--config", str(config)],
                stdout=out,
                stderr=out,
            )
        started.append((time.monotonic() + moment, process, log))
    for when, process, _log in sorted(started, key=lambda item: item[0]):
        time.sleep(max(0.0, when - time.monotonic()))
        process.terminate()
    for moment, (_when, process, log) in zip(STOP_MOMENTS, started, strict=True):
        try:
            code = process.wait(30)  # shutdown_timeout 10 + the kill margin 10, and more
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            message = f"stopped at {moment}s: still running\n{log.read_text()}"
            raise AssertionError(message) from None
        assert code == 0, f"stopped at {moment}s: exit {code}\n{log.read_text()}"


def test_a_stop_raised_inside_an_import_callback_still_exits() -> None:
    """The early SIGTERM handler's exit cannot be swallowed: raised inside a weakref callback
    (where imports run theirs), a SystemExit is only reported ("Exception ignored")."""
    script = (
        "import signal, weakref\n"
        "from eventbus.service import _stop_before_start\n"
        "signal.signal(signal.SIGTERM, _stop_before_start)\n"
        "class Lock: pass\n"
        "lock = Lock()\n"
        "ref = weakref.ref(lock, lambda _ref: signal.raise_signal(signal.SIGTERM))\n"
        "del lock\n"
        "print('went on')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_a_body_that_arrives_after_sigterm_is_still_served(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path
) -> None:
    """A request whose headers came before the stop and its body after: the stop lets it
    finish (201) and closes its connection; aiohttp alone drops the body's bytes once it shuts
    its connections down, and the request waited body_timeout for a 408."""
    port = free_port()
    config = service_config(tmp_path, kafka_cluster.bootstrap_servers, port, body_timeout=4)
    service = start_service(tmp_path, config, port)
    assert service.process is not None
    event = make_event()
    body = json.dumps(event).encode()
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head)
        wait_until(lambda: in_flight(service) >= 2, 10, "the request in flight")  # and /metrics
        service.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not port_open(port), 10, "the service to stop accepting")
        started = time.monotonic()
        client.sendall(body)
        answer = b""
        while chunk := client.recv(65536):  # read until the service closes the connection
            answer += chunk
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert b"Connection: close" in answer
    assert took < 4  # answered as soon as Kafka acknowledged, not after body_timeout
    assert service.process.wait(30) == 0
    assert event["meta"]["id"] in consume_ids(kafka_cluster, "eqiad.test.event", 5000)


def test_a_supervisor_stopped_before_it_spawns_starts_no_worker(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "config.yaml", workers=2, shutdown_timeout=10)
    supervisor.stop(signal.SIGTERM, None)
    supervisor.spawn()
    assert supervisor.children == {}
