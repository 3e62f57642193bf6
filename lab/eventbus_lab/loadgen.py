"""Client load for the lab and the service's fault tests: POST test events to one or more
service addresses at a steady rate, and remember what became of each.

    loadgen.py --target eqiad=10.77.0.100:8085 --target codfw=10.77.0.200:8085 \\
               --rate 500 --output load.json [--seconds N] [--clients 16] [--topic test.event]

Each target gets its own keep-alive connections (asyncio, aiohttp), one event per request,
at most --rate requests per second per target, paced from the start (a slow answer does not
lower the rate: the next requests go out on other connections). Runs until SIGTERM/SIGINT or
--seconds, then writes a JSON report: per target the ids answered 201 (acknowledged by
Kafka), the ids answered 503 (logged by the service for replay), and every other failure
(status or error, when). A checker then consumes ``<dc>.<topic>`` and compares ids.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class TargetLoad:
    datacenter: str
    address: str
    topic: str = "test.event"
    acknowledged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # answered 503: in the failed-events log
    failures: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    latencies: list[float] = field(default_factory=list)

    def event(self, event_id: str) -> bytes:
        body = {
            "$schema": "/test/event/1.0.0",
            "meta": {"topic": self.topic, "id": event_id},
            "test": f"loadgen {self.datacenter}",
        }
        return json.dumps(body).encode()

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p99 = ordered[int(len(ordered) * 0.99)] if ordered else None
        return {
            "address": self.address,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "failures": self.failures,
            "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
        }


async def post_one(session: aiohttp.ClientSession, load: TargetLoad) -> None:
    event_id = f"loadgen-{load.datacenter}-{uuid.uuid4()}"
    load.sent += 1
    started = time.monotonic()
    try:
        async with session.post(
            f"http://{load.address}/v1/events",
            data=load.event(event_id),
            headers={"Content-Type": "application/json"},
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        load.failures.append({"id": event_id, "at": time.time(), "error": repr(err)})
        return
    load.latencies.append(time.monotonic() - started)
    if status == 201:
        load.acknowledged.append(event_id)
    elif status == 503:
        load.refused.append(event_id)
        load.failures.append({"id": event_id, "at": time.time(), "error": "HTTP 503"})
    else:
        load.failures.append({"id": event_id, "at": time.time(), "error": f"HTTP {status}"})


async def drive(load: TargetLoad, rate: float, clients: int, stop: asyncio.Event) -> None:
    """Start a request every 1/rate seconds, at most ``clients`` at a time."""
    slots = asyncio.Semaphore(clients)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not stop.is_set():
            await slots.acquire()

            async def one() -> None:
                try:
                    await post_one(session, load)
                finally:
                    slots.release()

            task = asyncio.ensure_future(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                next_at = time.monotonic()  # behind: do not burst to catch up
        if tasks:
            await asyncio.wait(tasks, timeout=90)


async def progress(loads: list[TargetLoad], stop: asyncio.Event) -> None:
    while True:
        try:
            await asyncio.wait_for(stop.wait(), 10)
            return
        except TimeoutError:
            pass
        line = ", ".join(
            f"{t.datacenter}: {t.sent} sent, {len(t.acknowledged)} acked, {len(t.failures)} failed"
            for t in loads
        )
        print(f"[loadgen] {line}", file=sys.stderr, flush=True)


async def run_async(
    loads: list[TargetLoad], rate: float, clients: int, stop: asyncio.Event
) -> None:
    await asyncio.gather(
        progress(loads, stop), *(drive(load, rate, clients, stop) for load in loads)
    )


def run(
    targets: dict[str, str],
    rate: float,
    clients: int,
    seconds: float | None,
    topic: str = "test.event",
) -> dict[str, Any]:
    loads = [TargetLoad(dc, address, topic) for dc, address in targets.items()]

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if seconds is not None:
            loop.call_later(seconds, stop.set)
        await run_async(loads, rate, clients, stop)

    started = time.time()
    asyncio.run(main())
    return {
        "started": started,
        "stopped": time.time(),
        "rate": rate,
        "targets": {t.datacenter: t.report() for t in loads},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--target", action="append", required=True, help="DC=HOST:PORT")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s per target")
    parser.add_argument("--clients", type=int, default=16, help="connections per target")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: signal)")
    parser.add_argument("--topic", default="test.event")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    targets = dict(target.split("=", 1) for target in args.target)
    report = run(targets, args.rate, args.clients, args.seconds, args.topic)
    args.output.write_text(json.dumps(report))
    failed = sum(len(t["failures"]) for t in report["targets"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
