"""Continuous client load for the lab: POST test events to each datacenter's service address.

    loadgen.py --target eqiad=10.77.0.100:8085 --target codfw=10.77.0.200:8085 \\
               --rate 40 --output load.json [--seconds N]

Each target gets its own clients (keep-alive connections, one event per request, at most
--rate requests per second per target). Runs until SIGTERM/SIGINT or --seconds, then writes
a JSON report: per datacenter the ids of the events answered 201 (acknowledged by Kafka),
and every failed request (status or error, when). The events go to ``<dc>.test.event``; a
checker can then consume that topic and compare ids. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TargetLoad:
    datacenter: str
    address: str
    acknowledged: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event_id: str, outcome: str | None) -> None:
        with self.lock:
            self.sent += 1
            if outcome is None:
                self.acknowledged.append(event_id)
            else:
                self.failures.append({"id": event_id, "at": time.time(), "error": outcome})


def event(event_id: str, datacenter: str) -> bytes:
    body = {
        "$schema": "/test/event/1.0.0",
        "meta": {"topic": "test.event", "id": event_id},
        "test": f"loadgen {datacenter}",
    }
    return json.dumps(body).encode()


def post(connection: http.client.HTTPConnection, body: bytes) -> str | None:
    """None when the service answered 201, otherwise what went wrong."""
    try:
        connection.request(
            "POST", "/v1/events", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as err:
        connection.close()  # reconnect on the next request
        return f"{type(err).__name__}: {err}"
    if response.status != 201:
        return f"HTTP {response.status}"
    return None


def client(load: TargetLoad, interval: float, stop: threading.Event) -> None:
    host, _sep, port = load.address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    next_at = time.monotonic()
    while not stop.is_set():
        event_id = f"loadgen-{load.datacenter}-{uuid.uuid4()}"
        load.record(event_id, post(connection, event(event_id, load.datacenter)))
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))
    connection.close()


def progress(loads: list[TargetLoad], stop: threading.Event) -> None:
    while not stop.wait(10):
        line = ", ".join(
            f"{t.datacenter}: {t.sent} sent, {len(t.acknowledged)} acked, {len(t.failures)} failed"
            for t in loads
        )
        print(f"[loadgen] {line}", file=sys.stderr, flush=True)


def run(targets: dict[str, str], rate: float, clients: int, seconds: float | None) -> dict:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    loads = [TargetLoad(dc, address) for dc, address in targets.items()]
    interval = clients / rate
    threads = [
        threading.Thread(target=client, args=(load, interval, stop), daemon=True)
        for load in loads
        for _index in range(clients)
    ]
    threads.append(threading.Thread(target=progress, args=(loads, stop), daemon=True))
    started = time.time()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    return {
        "started": started,
        "stopped": time.time(),
        "targets": {
            t.datacenter: {
                "address": t.address,
                "sent": t.sent,
                "acknowledged": t.acknowledged,
                "failures": t.failures,
            }
            for t in loads
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--target", action="append", required=True, help="DC=HOST:PORT")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s per target")
    parser.add_argument("--clients", type=int, default=4, help="connections per target")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: signal)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    targets = dict(target.split("=", 1) for target in args.target)
    report = run(targets, args.rate, args.clients, args.seconds)
    args.output.write_text(json.dumps(report))
    failed = sum(len(t["failures"]) for t in report["targets"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
