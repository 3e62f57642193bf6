"""How soon a delivery report resumes its request on a busy event loop (issue 23, item 1):
the service's producer with its reports served on the loop (woken by librdkafka through a
pipe, eventbus/loop_reports.py) against the same producer with the poller thread it falls
back to. Side by side in one run, interleaved, against a real one-broker Kafka; the loop kept
busy by a task that burns CPU in slices with short idle gaps between them (a loaded worker's
loop: busy, yet waiting in epoll now and then).

    .venv/bin/python -m benchmarks.report_wakeup [--records 1000] [--busy-ms 1.0] [--idle-ms 0.25]

Prints, per way, the median and p99 from handing a record over to the request waking, the
loop's CPU per record served, and the process's idle CPU (all threads) over 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks._best import Best, keep_best, print_best

TOPIC = "wakeup"


async def busy(busy_ms: float, idle_ms: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        until = time.perf_counter() + busy_ms / 1000
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(idle_ms / 1000)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def one_way(bootstrap: str, on_loop: bool, args: argparse.Namespace) -> dict[str, float]:
    from eventbus import producer as producer_module
    from eventbus.config import KafkaSettings
    from eventbus.loop_reports import LayoutError

    real_start = producer_module.LoopReports.start

    def refuse(self: Any) -> None:
        raise LayoutError("the benchmark's poller-thread way")

    producer_module.LoopReports.start = real_start if on_loop else refuse  # type: ignore[method-assign]
    try:
        producer = producer_module.EventProducer(KafkaSettings([bootstrap]))
    finally:
        producer_module.LoopReports.start = real_start  # type: ignore[method-assign]
    assert producer.reports_on_loop is on_loop
    loop = asyncio.get_running_loop()
    record = [(TOPIC, b"x" * 200, None)]
    for _warm in range(20):
        await producer.produce_many(record, loop.time() + 30)
    stop = asyncio.Event()
    burner = asyncio.ensure_future(busy(args.busy_ms, args.idle_ms, stop))
    latencies = []
    try:
        for _record in range(args.records):
            started = time.perf_counter()
            result = await producer.produce_many(record, loop.time() + 30)
            if result != [True]:
                raise RuntimeError(f"Kafka refused a record: {result}")
            latencies.append(time.perf_counter() - started)
        stop.set()
        await burner
        idle_started = time.process_time()
        await asyncio.sleep(3)
        idle = (time.process_time() - idle_started) / 3 * 100
    finally:
        stop.set()
        await producer.close(timeout=10)
    return {
        "median ms": percentile(latencies, 0.5),
        "p99 ms": percentile(latencies, 0.99),
        "idle CPU %": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--busy-ms", type=float, default=1.0, help="the loop's CPU slices")
    parser.add_argument("--idle-ms", type=float, default=0.25, help="the loop's gaps between")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from tests.harness.kafka import KafkaCluster, resolve_bundle

    ways = {"poller thread (fallback)": False, "on the loop (io_event)": True}
    best: Best = {name: {} for name in ways}
    with tempfile.TemporaryDirectory(prefix="wakeup-") as tmp:
        cluster = KafkaCluster(
            bundle=resolve_bundle(), workdir=Path(tmp), size=1, min_insync_replicas=1
        )
        cluster.start()
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
            admin.create_topics([NewTopic(TOPIC, 1, 1)])
            admin.close()
            for round_number in range(args.rounds):  # interleaved
                for name, on_loop in ways.items():
                    figures = uvloop.run(one_way(cluster.bootstrap_servers, on_loop, args))
                    print(f"round {round_number + 1} {name}: {figures}", flush=True)
                    keep_best(best, name, figures)
        finally:
            cluster.stop()
    print(
        f"\n{args.records} records one request at a time, the loop busy {args.busy_ms} ms then "
        f"idle {args.idle_ms} ms in turn; best of {args.rounds} rounds; "
        f"{threading.active_count()} threads left"
    )
    print_best(best, "", 28, 12, 2)


if __name__ == "__main__":
    main()
