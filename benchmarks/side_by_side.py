"""Benchmark: eventbus and EventGate side by side, against the same Kafka cluster.

One run, on a real 3-broker KRaft cluster (replication factor 3, min.insync.replicas 2,
acks=all), the same schema, the same events and the same load (wrk, 16 keep-alive
connections): for each server and each process count, single-event POSTs (requests/s) and
100-event POSTs (events/s), mean and p99 latency, non-2xx answers and resident memory. The
order of the servers alternates between rounds. Then the fastest Python client producing the
same events directly from one process, and the goals of issue 23 checked round by round.

Where the CPU went in each measurement (the second table): the server's processes' CPU per
request (single) or per event (batch), wrk's, and how busy the whole machine was; what the
three figures leave is the brokers' and the rest of the machine's.

EventGate is installed from ../shared/peers/ into build/peers/eventgate when missing.

Run:  .venv/bin/python -m benchmarks.side_by_side [--rounds 2] [--seconds 10] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from benchmarks import eventgate, profile
from benchmarks._wrk import WrkResult, progress, wrk
from tests.harness._net import free_port, wait_until
from tests.harness.kafka import KafkaCluster, resolve_bundle
from tests.service.conftest import make_event, service_config, start_service, write_schemas

SERVERS = ("eventbus", "eventgate")
TOPICS = {"eventbus": "eqiad.test.event", "eventgate": "test.event"}


# -- memory ------------------------------------------------------------------------------------
def process_tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return pids


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class MemorySampler:
    """The largest resident size of any one process of the server, and of all of them."""

    root: int
    largest_mb: float = 0.0
    total_mb: float = 0.0
    processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        sizes = [rss_mb(pid) for pid in process_tree(self.root)]
        self.largest_mb = max(self.largest_mb, *sizes)
        self.total_mb = max(self.total_mb, sum(sizes))
        self.processes = max(self.processes, len(sizes))

    def __enter__(self) -> MemorySampler:
        def loop() -> None:
            while not self._stop.wait(0.25):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()


# -- CPU ---------------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and its descendants (alive ones) so far."""
    total = 0
    for current in process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (the stat fields 14, 15)
    return total / TICK


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuShare:
    """One measurement's CPU: the server's and wrk's, µs per request, and the machine's
    busy share."""

    server_us: float
    wrk_us: float
    machine_busy: float


def measured_cpu(
    server_pid: int, run: Callable[[], WrkResult], seconds: int
) -> tuple[WrkResult, CpuShare]:
    server0, wrk0, (busy0, all0) = (
        tree_cpu_seconds(server_pid),
        children_cpu_seconds(),
        machine_ticks(),
    )
    result = run()
    server1, wrk1, (busy1, all1) = (
        tree_cpu_seconds(server_pid),
        children_cpu_seconds(),
        machine_ticks(),
    )
    requests = max(1.0, result.rps * seconds)
    return result, CpuShare(
        (server1 - server0) / requests * 1e6,
        (wrk1 - wrk0) / requests * 1e6,
        (busy1 - busy0) / max(1, all1 - all0),
    )


# -- servers -----------------------------------------------------------------------------------
@dataclass
class Running:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def post_ok(url: str, body: bytes) -> bool:
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status == 201


def start_eventbus(tmp: Path, bootstrap: str, workers: int) -> Running:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix=f"eventbus-{workers}-", dir=tmp))  # one per round
    config = service_config(home, bootstrap, port, num_processes=workers, max_body_bytes=4_194_304)
    service = start_service(home, config, port, new_session=True)
    assert service.process is not None
    return Running(f"{service.url}/v1/events", service.process, service.log_path)


def start_eventgate(tmp: Path, bootstrap: str, workers: int, schemas: Path) -> Running:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix=f"eventgate-{workers}-", dir=tmp))  # one per round
    config = eventgate.config(home / "eventgate.yaml", port, schemas, bootstrap, workers)
    log = home / "eventgate.log"
    process = eventgate.start(eventgate.INSTALL_DIR, config, log)
    return Running(f"http://127.0.0.1:{port}/v1/events", process, log)


def stop(running: Running) -> None:
    try:
        os.killpg(running.process.pid, signal.SIGTERM)
        running.process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(running.process.pid, signal.SIGKILL)
        running.process.wait(10)
    except ProcessLookupError:
        pass


# -- measuring ---------------------------------------------------------------------------------
@dataclass
class Measured:
    server: str
    workers: int
    round: int
    single: WrkResult
    batch: WrkResult
    largest_mb: float
    total_mb: float
    processes: int
    single_cpu: CpuShare
    batch_cpu: CpuShare

    @property
    def batch_events(self) -> float:
        return self.batch.rps * 100


def measure(
    server: str, workers: int, round_no: int, start: Callable[[], Running], args: Any, tmp: Path
) -> Measured:
    running = start()
    try:
        # meta.topic test.event: eventbus produces to eqiad.test.event, EventGate to test.event
        single_body = json.dumps(make_event(test="b")).encode()
        batch_body = json.dumps([make_event(test="b") for _i in range(100)]).encode()

        def ready() -> bool:
            if running.process.poll() is not None:
                raise SystemExit(f"{server} exited:\n{running.log.read_text(errors='replace')}")
            return post_ok(running.url, single_body)

        wait_until(ready, 60, f"{server} to accept an event", on_timeout=running.log.read_text)
        progress(f"round {round_no}: {server}, {workers} process(es): warming up")
        wrk(running.url, single_body, 3, tmp, args.connections)
        wrk(running.url, batch_body, 2, tmp, args.connections)
        results, cpu = {}, {}
        with MemorySampler(running.process.pid) as memory:
            for load, body in (("single", single_body), ("batch", batch_body)):
                progress(f"round {round_no}: {server}, {workers} process(es): {load}")
                spy = None
                if args.profile and server == "eventbus":
                    args.profile.mkdir(parents=True, exist_ok=True)
                    output = args.profile / f"eventbus-{workers}p-{load}-round{round_no}.txt"
                    spy = profile.record(running.process.pid, args.seconds, output)
                results[load], cpu[load] = measured_cpu(
                    running.process.pid,
                    lambda b=body: wrk(running.url, b, args.seconds, tmp, args.connections),
                    args.seconds,
                )
                if spy is not None:
                    spy.wait(30)
                    print(profile.summary(output), file=sys.stderr)
        single, batch = results["single"], results["batch"]
    finally:
        stop(running)
    return Measured(
        server,
        workers,
        round_no,
        single,
        batch,
        memory.largest_mb,
        memory.total_mb,
        memory.processes,
        cpu["single"],
        cpu["batch"],
    )


def direct_confluent(
    bootstrap: str, value: bytes, count: int, topic: str = TOPICS["eventbus"]
) -> float:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def produce(n: int) -> None:
        for _i in range(n):
            while True:
                try:
                    producer.produce(topic, value)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        if producer.flush(60) != 0:
            raise RuntimeError("confluent-kafka did not deliver every event")

    produce(1000)
    started = time.perf_counter()
    produce(count)
    return count / (time.perf_counter() - started)


def direct_in_flight(bootstrap: str, value: bytes, seconds: float, in_flight: int) -> float:
    """The floor of single-event requests: one record per "request", ``in_flight`` of them
    outstanding (as wrk's connections), the next produced when one is acknowledged, with the
    service's librdkafka settings. Requests per second."""
    from confluent_kafka import Producer
    from eventbus.config import KafkaSettings
    from eventbus.producer import librdkafka_config

    producer = Producer(librdkafka_config(KafkaSettings([bootstrap])))
    topic, done, measuring = TOPICS["eventbus"], [0], [True]

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            raise RuntimeError(f"not delivered: {error}")
        done[0] += 1
        if measuring[0]:
            producer.produce(topic, value, on_delivery=delivered)

    for _i in range(in_flight):
        producer.produce(topic, value, on_delivery=delivered)
    warm_until = time.perf_counter() + 2
    while time.perf_counter() < warm_until:
        producer.poll(0.1)
    done[0], started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        producer.poll(0.1)
    rate = done[0] / (time.perf_counter() - started)
    measuring[0] = False
    if producer.flush(30):
        raise RuntimeError("the in-flight records were not delivered")
    return rate


def direct_aiokafka(bootstrap: str, value: bytes, count: int) -> float:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
        await producer.start()
        try:
            topic = TOPICS["eventbus"]
            await asyncio.gather(*[await producer.send(topic, value) for _i in range(1000)])
            started = time.perf_counter()
            await asyncio.gather(*[await producer.send(topic, value) for _i in range(count)])
            return count / (time.perf_counter() - started)
        finally:
            await producer.stop()

    return asyncio.run(run())


# -- report ------------------------------------------------------------------------------------
def table(results: list[Measured]) -> str:
    lines = [
        "| round | server | procs | single req/s | mean ms | p99 ms | batch events/s | mean ms "
        "| p99 ms | non-2xx | largest RSS MB | total RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.round} | {r.server} | {r.workers} | {r.single.rps:.0f} | {r.single.mean_ms:.2f} "
            f"| {r.single.p99_ms:.2f} | {r.batch_events:.0f} | {r.batch.mean_ms:.2f} "
            f"| {r.batch.p99_ms:.2f} | {r.single.non2xx + r.batch.non2xx} "
            f"| {r.largest_mb:.0f} | {r.total_mb:.0f} ({r.processes}) |"
        )
    return "\n".join(lines)


def cpu_table(results: list[Measured]) -> str:
    lines = [
        "| round | server | procs | single: server µs/req | wrk µs/req | machine busy "
        "| batch: server µs/event | wrk µs/event | machine busy |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s, b = r.single_cpu, r.batch_cpu
        lines.append(
            f"| {r.round} | {r.server} | {r.workers} | {s.server_us:.0f} | {s.wrk_us:.0f} "
            f"| {s.machine_busy:.0%} | {b.server_us / 100:.1f} | {b.wrk_us / 100:.2f} "
            f"| {b.machine_busy:.0%} |"
        )
    return "\n".join(lines)


def goals(results: list[Measured], direct: dict[str, float]) -> tuple[str, bool]:
    by = {(r.round, r.server, r.workers): r for r in results}
    fastest = max(direct.values())
    lines = [
        "| round | procs | single req/s ratio (≥2) | batch events/s ratio (≥2) | p99 single "
        "| p99 batch | largest RSS | batch / direct (≥0.5) | non-2xx |",
        "|---:|---:|---:|---:|---|---|---|---:|---:|",
    ]
    all_met = True
    for (round_no, server, workers), eb in sorted(by.items()):
        if server != "eventbus" or (round_no, "eventgate", workers) not in by:
            continue
        eg = by[(round_no, "eventgate", workers)]
        single = eb.single.rps / eg.single.rps
        batch = eb.batch_events / eg.batch_events
        p99_single = eb.single.p99_ms <= eg.single.p99_ms
        p99_batch = eb.batch.p99_ms <= eg.batch.p99_ms
        memory = eb.largest_mb <= eg.largest_mb
        vs_direct = eb.batch_events / fastest
        errors = eb.single.non2xx + eb.batch.non2xx
        met = [single >= 2, batch >= 2, p99_single, p99_batch, memory, errors == 0]
        if workers == 1:
            met.append(vs_direct >= 0.5)
        all_met &= all(met)

        def mark(ok: bool) -> str:
            return "met" if ok else "**not met**"

        lines.append(
            f"| {round_no} | {workers} | {single:.2f} {mark(single >= 2)} "
            f"| {batch:.2f} {mark(batch >= 2)} "
            f"| {eb.single.p99_ms:.1f} vs {eg.single.p99_ms:.1f} ms {mark(p99_single)} "
            f"| {eb.batch.p99_ms:.1f} vs {eg.batch.p99_ms:.1f} ms {mark(p99_batch)} "
            f"| {eb.largest_mb:.0f} vs {eg.largest_mb:.0f} MB {mark(memory)} "
            f"| {vs_direct:.2f}"
            + (f" {mark(vs_direct >= 0.5)}" if workers == 1 else "")
            + f" | {errors} |"
        )
    return "\n".join(lines), all_met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--only", choices=SERVERS, help="measure one server (profiling)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="sample eventbus with py-spy into DIR"
    )
    args = parser.parse_args()
    servers = [args.only] if args.only else list(SERVERS)
    if "eventgate" in servers:
        eventgate.install()
    with tempfile.TemporaryDirectory(prefix="bench-side-by-side-") as tmp_name:
        tmp = Path(tmp_name)
        schemas = write_schemas(tmp / "schemas")
        cluster = KafkaCluster(bundle=resolve_bundle(), workdir=tmp / "kafka", size=3)
        progress("starting a 3-broker KRaft cluster (RF 3, min ISR 2)")
        cluster.start()
        results: list[Measured] = []
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
            admin.create_topics(
                [
                    NewTopic(t, args.partitions, 3, topic_configs={"min.insync.replicas": "2"})
                    for t in TOPICS.values()
                ]
            )
            admin.close()
            starters = {
                "eventbus": lambda w: start_eventbus(tmp, cluster.bootstrap_servers, w),
                "eventgate": lambda w: start_eventgate(tmp, cluster.bootstrap_servers, w, schemas),
            }
            # The brokers' JVMs compile their hot paths in the first seconds of load: warm
            # them on both topics first, or whichever server goes first measures that.
            progress("warming the brokers up (300,000 records to each topic)")
            value = json.dumps(make_event(test="b")).encode()  # also the direct client's
            for topic in TOPICS.values():
                direct_confluent(cluster.bootstrap_servers, value, 300_000, topic)
            for round_no in range(1, args.rounds + 1):
                order = servers if round_no % 2 else list(reversed(servers))
                for workers in args.workers:
                    for server in order:
                        results.append(
                            measure(
                                server,
                                workers,
                                round_no,
                                lambda s=server, w=workers: starters[s](w),
                                args,
                                tmp,
                            )
                        )
            progress("the same events produced directly from one process")
            direct = {
                "confluent-kafka": direct_confluent(cluster.bootstrap_servers, value, 200_000),
                "aiokafka": direct_aiokafka(cluster.bootstrap_servers, value, 100_000),
            }
            single_floor = direct_in_flight(
                cluster.bootstrap_servers, value, args.seconds, args.connections
            )
        finally:
            cluster.stop()

    print(
        f"wrk -c{args.connections}, {args.seconds} s per figure; 3 brokers, "
        f"{args.partitions} partitions, RF 3, min ISR 2, acks=all"
    )
    print(table(results))
    print()
    print(cpu_table(results))
    print()
    print(
        "direct from one process, events/s: "
        + ", ".join(f"{name} {rate:.0f}" for name, rate in direct.items())
    )
    print(
        f"single records, {args.connections} in flight, the next when one is acknowledged "
        f"(confluent-kafka, the service's settings): {single_floor:.0f}/s; each server's "
        "single req/s over it: "
        + ", ".join(
            f"{r.server} {r.workers}p round {r.round} {r.single.rps / single_floor:.2f}"
            for r in results
        )
    )
    met = True
    if len(servers) == 2:
        print()
        text, met = goals(results, direct)
        print(text)
        print()
        print("all goals met" if met else "some goals not met")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": [asdict(r) for r in results],
                    "direct": direct,
                    "single_floor": single_floor,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
