"""Benchmark: the eventbus service, one worker process, against a replicated cluster.

Side by side in one run, on a real 3-broker KRaft cluster (replication factor 3,
min.insync.replicas 2, acks=all):

  * single-event POSTs, 16 concurrent keep-alive connections (wrk), one worker process:
    requests/s and mean latency, against the 2016 figures (4425 requests/s, 3.6 ms);
  * 100-event batches the same way: events/s;
  * the service's Kafka client (confluent-kafka, librdkafka) producing the same events
    directly from one process (acks=all): events/s; kafka-python the same way, for
    reference. (benchmarks/side_by_side.py measures the service beside EventGate.)

Run:  .venv/bin/python -m benchmarks.service_throughput [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from benchmarks._wrk import progress, wrk
from benchmarks.side_by_side import direct_confluent
from tests.harness._net import free_port
from tests.harness.kafka import KafkaCluster, resolve_bundle
from tests.service.conftest import make_event, service_config, start_service, stop_service


def direct_produce(bootstrap: str, value: bytes, count: int) -> float:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=1)
    for _warm in range(100):
        producer.send("eqiad.test.event", value)
    producer.flush()
    started = time.perf_counter()
    for _event in range(count):
        producer.send("eqiad.test.event", value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--linger-ms", type=int, default=None, help="override the producer's linger_ms"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-eventbus-") as tmp:
        tmp_path = Path(tmp)
        cluster = KafkaCluster(bundle=resolve_bundle(), workdir=tmp_path / "kafka", size=3)
        progress("starting a 3-broker KRaft cluster")
        cluster.start()
        service = None
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
            admin.create_topics([NewTopic("eqiad.test.event", 1, 3)])
            admin.close()
            port = free_port()
            config = service_config(
                tmp_path, cluster.bootstrap_servers, port, max_body_bytes=1_048_576
            )
            service = start_service(tmp_path, config, port)
            url = f"{service.url}/v1/events"
            single = json.dumps(make_event(test="benchmark")).encode()
            batch = json.dumps([make_event(test="benchmark") for _warmup in range(100)]).encode()
            progress("warming up")
            wrk(url, single, 3, tmp_path)
            progress(f"single-event POSTs for {args.seconds}s")
            one = wrk(url, single, args.seconds, tmp_path)
            progress(f"100-event POSTs for {args.seconds}s")
            hundred = wrk(url, batch, args.seconds, tmp_path)
            progress("confluent-kafka and kafka-python producing directly from one process")
            direct = direct_confluent(cluster.bootstrap_servers, single, 200_000)
            direct_kp = direct_produce(cluster.bootstrap_servers, single, 100_000)
        finally:
            if service is not None:
                stop_service(service)
            cluster.stop()

    batch_events = hundred.rps * 100
    print("eventbus service, 1 worker, 16 keep-alive connections, acks=all, RF 3, min ISR 2")
    print(
        f"  single event : {one.rps:8.0f} requests/s, mean latency {one.mean_ms:.2f} ms, "
        f"non-2xx {one.non2xx}   (2016: 4425 requests/s, 3.6 ms)"
    )
    print(
        f"  100 events   : {batch_events:8.0f} events/s ({hundred.rps:.0f} requests/s, "
        f"mean latency {hundred.mean_ms:.2f} ms, non-2xx {hundred.non2xx})"
    )
    print(f"  confluent-kafka (the service's client) direct, one process: {direct:8.0f} events/s")
    print(f"  kafka-python direct, one process (reference)             : {direct_kp:8.0f} events/s")
    print(f"  ratio service batches / same client direct: {batch_events / direct:.2f}")
    print(f"  ratio single-event requests/s / 4425: {one.rps / 4425:.2f}")


if __name__ == "__main__":
    main()
