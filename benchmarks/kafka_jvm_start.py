"""What a Kafka node's JVM options cost to start and to idle: a 3-node TLS cluster of the test
harness started with each set of options in turn (interleaved rounds), the nodes' CPU to ready,
over 30 s of idling, and one node's restart (a roll's step).

    .venv/bin/python -m benchmarks.kafka_jvm_start [--rounds 2]

G1 and C2 are Kafka's own start script's choice (the kafka role's default kafka_jvm_opts); C1
and the serial collector are the lab's (inventories/lab) and the test harness's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks._best import Best, keep_best, print_best
from tests.harness.kafka import KafkaCluster, resolve_bundle

HEAP = ("-Xms128m", "-Xmx320m")
OPTIONS = {
    "G1 + C2 (Kafka's default)": (
        *HEAP,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
    ),
    "SerialGC + C1 (the lab's)": (
        *HEAP,
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
    ),
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(bundle: Path, options: tuple[str, ...]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kafka-jvm-") as tmp:
        cluster = KafkaCluster(bundle=bundle, workdir=Path(tmp), size=3, secure=True,
                               jvm_opts=options)  # fmt: skip
        started = time.monotonic()
        cluster.start()
        try:
            ready = time.monotonic() - started
            pids = [node.process.pid for node in cluster.nodes.values() if node.process]
            to_ready = sum(cpu_seconds(pid) for pid in pids if pid)
            time.sleep(30)
            idle = sum(cpu_seconds(pid) for pid in pids if pid) - to_ready
            restart_started = time.monotonic()
            cluster.stop_node(2)
            cluster.start_node(2)
            restart = time.monotonic() - restart_started
            time.sleep(5)
            process = cluster.nodes[2].process
            restarted_cpu = cpu_seconds(process.pid) if process and process.pid else 0.0
        finally:
            cluster.stop()
    return {"ready s": ready, "CPU to ready s": to_ready, "CPU idle 30 s": idle,
            "restart s": restart, "restarted node CPU s": restarted_cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bundle = resolve_bundle()
    best: Best = {name: {} for name in OPTIONS}
    for round_ in range(args.rounds):
        for name, options in OPTIONS.items():
            keep_best(best, name, one_round(bundle, options))
            print(f"round {round_ + 1}: {name} done", flush=True)
    print_best(best, "3-node TLS cluster (minimum of rounds)", 40, 22, 1)


if __name__ == "__main__":
    main()
