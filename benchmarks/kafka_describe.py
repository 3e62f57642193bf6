"""Benchmark: describing 1,000 topics with kafka_topic_describe vs Kafka's own tool.

Starts a real 3-broker KRaft cluster (tests/harness), creates N topics (1 partition,
replication factor 3), then, side by side in the same run:

  * the module's work in-process: fetch_cluster_metadata + describe_cluster (one round of
    requests: cluster, metadata, configs, quorum) and the whole health analysis;
  * the module end to end: ``ansible localhost -m eventplatform.eventbus.kafka_topic_describe``;
  * ``kafka-topics --describe`` (org.apache.kafka.tools.TopicCommand from the same jars),
    which only lists partitions (no min ISR, no summary, no quorum).

Run:  .venv/bin/python -m benchmarks.kafka_describe [--topics 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.harness.collection import ansible_env, ensure_collection_link, run_module
from tests.harness.kafka import KafkaCluster, resolve_bundle

ensure_collection_link()
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (  # noqa: E402
    admin_client,
    fetch_cluster_metadata,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_describe import (  # noqa: E402
    describe_cluster,
)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def create_topics(cluster: KafkaCluster, count: int) -> list[str]:
    names = [f"eqiad.bench.topic{i:04d}" for i in range(count)]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=120000)
    try:
        for start in range(0, count, 100):
            batch = names[start : start + 100]
            admin.create_topics([NewTopic(n, 1, 3) for n in batch], timeout_ms=120000)
            progress(f"created {start + len(batch)}/{count} topics")
    finally:
        admin.close()
    return names


def run_ping() -> dict:
    """ansible localhost -m ansible.builtin.ping, the floor under any ad hoc module run."""
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "ansible.builtin.ping"]
    subprocess.run(argv, capture_output=True, check=True, env=ansible_env())
    return {}


def timed(fn, runs: int) -> tuple[list[float], object]:
    times, result = [], None
    for _run in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    bundle = resolve_bundle()
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as workdir:
        cluster = KafkaCluster(bundle=bundle, workdir=Path(workdir), size=3)
        progress("starting a 3-broker KRaft cluster")
        cluster.start()
        try:
            create_topics(cluster, args.topics)
            params = {
                "bootstrap_servers": cluster.bootstrap_servers.split(","),
                "security_protocol": "PLAINTEXT",
                "request_timeout": 60.0,
            }

            def in_process():
                admin = admin_client(params)
                try:
                    return describe_cluster(fetch_cluster_metadata(admin))
                finally:
                    admin.close()

            # wait until every topic is in sync before measuring
            deadline = time.time() + 300
            while True:
                result = in_process()
                if result["summary"]["healthy"] and result["summary"]["topic_count"] >= args.topics:
                    break
                if time.time() > deadline:
                    raise SystemExit("topics did not get in sync within 300 s")
                time.sleep(2)

            progress("measuring the module's work in-process")
            module_times, result = timed(in_process, args.runs)
            progress("measuring the module end to end through ansible")
            adhoc_times, adhoc = timed(
                lambda: run_module("kafka_topic_describe", params), args.runs
            )
            assert adhoc["summary"]["topic_count"] == result["summary"]["topic_count"]
            progress("measuring ansible's own per-task cost (ansible.builtin.ping)")
            ping_times, _ping = timed(run_ping, args.runs)

            progress("measuring kafka-topics --describe (TopicCommand)")
            argv = [
                "java",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={bundle / 'config' / 'log4j2.properties'}",
                "-cp",
                str(bundle / "libs" / "*"),
                "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server",
                cluster.bootstrap_servers,
                "--describe",
            ]
            java_times, out = timed(
                lambda: subprocess.run(argv, capture_output=True, text=True, check=True).stdout,
                args.runs,
            )
            java_partitions = sum(1 for line in out.splitlines() if "\tPartition: " in line)
        finally:
            cluster.stop()

    summary = result["summary"]
    module_s = statistics.median(module_times)
    adhoc_s = statistics.median(adhoc_times)
    java_s = statistics.median(java_times)
    ping_s = statistics.median(ping_times)
    print(
        f"topics: {summary['topic_count']}  partitions: {summary['partition_count']}  "
        f"(kafka-topics listed {java_partitions} partitions)  runs: {args.runs}, median seconds"
    )
    print(f"  kafka_topic_describe, module work in-process : {module_s:7.3f} s")
    print(f"  kafka_topic_describe, ansible ad hoc          : {adhoc_s:7.3f} s")
    print(f"  ansible ad hoc ansible.builtin.ping (floor)   : {ping_s:7.3f} s")
    print(f"  kafka-topics --describe (TopicCommand, JVM)   : {java_s:7.3f} s")
    print(f"  ratio kafka-topics / module in-process        : {java_s / module_s:7.1f}x")
    print(f"  ratio kafka-topics / module via ansible       : {java_s / adhoc_s:7.1f}x")


if __name__ == "__main__":
    main()
