"""Where the service's CPU goes per event, in-process, against a real one-broker Kafka: issue
23's breakdown, printed as µs of CPU by piece, beside the floor of the same events produced
directly with confluent-kafka (librdkafka, the service's producer settings) in the same run.

    .venv/bin/python -m benchmarks.event_cpu [--batches 300] [--repeats 3]
        [--compare DIR]   # also the eventbus source tree DIR (e.g. a git worktree of an
                          # older commit's files/eventbus/src), measured interleaved

Pieces (the loop thread's CPU, time.thread_time, the minimum of the repeats):
  parse         orjson.loads of a 100-event body, per event
  serialise     each event of a batch written out again (its Kafka value), per event
  validate      a batch's events through Validator.validate_all (one at a time through
                Validator.validate in a tree without it): rules, schemas, jsonschema-rs, ValidEvent
  produce       EventProducer.produce_many of a batch's 100 records (already validated), every
                acknowledgement awaited, per event: the loop thread and the whole process
  handle/event  Intake.handle of 100-event batches end to end (every acknowledgement awaited),
                per event: the loop thread, and the whole process (all threads: librdkafka's
                too) beside the direct producer's process CPU per event
  handle/single Intake.handle of single-event requests, 16 at a time, per request
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._best import Best, keep_best

REPO = Path(__file__).resolve().parents[1]
BATCH = 100
CONCURRENT = 16


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def events(count: int) -> list[dict[str, Any]]:
    from tests.service.conftest import make_event

    return [make_event(test=f"value {i}", count=i) for i in range(count)]


def direct_floor(bootstrap: str, topic: str, values: list[bytes], rounds: int) -> float:
    """Process CPU per event of librdkafka producing ``values`` with a report per record."""
    import confluent_kafka
    from eventbus.config import KafkaSettings
    from eventbus.producer import librdkafka_config

    producer = confluent_kafka.Producer(librdkafka_config(KafkaSettings([bootstrap])))
    acked = [0]

    def delivered(error: Any, _message: Any) -> None:
        acked[0] += error is None

    producer.produce(topic, values[0], on_delivery=delivered)
    producer.flush(30)  # connected, metadata known
    started = process_cpu()
    for _round in range(rounds):
        for value in values:
            producer.produce(topic, value, on_delivery=delivered)
            producer.poll(0)
        producer.flush(30)
    spent = process_cpu() - started
    assert acked[0] == rounds * len(values) + 1, acked
    return spent / (rounds * len(values)) * 1e6


async def measure(config_path: Path, batches: int) -> dict[str, float]:
    import orjson
    from eventbus.config import load
    from eventbus.failed_events import FailedEventsLog
    from eventbus.intake import Intake, serialised
    from eventbus.producer import EventProducer
    from eventbus.schemas import SchemaRepository

    config = load(config_path)
    producer = EventProducer(config.kafka)
    intake = Intake(config, SchemaRepository(config.schema_repositories), producer,
                    FailedEventsLog(config.failed_events_log))  # fmt: skip
    batch = events(BATCH)
    body = orjson.dumps(batch)
    singles = [orjson.dumps(e) for e in events(CONCURRENT)]
    result = await intake.handle(body)  # warm: connected, topics listed, schema compiled
    assert result.status == 201, result.body()
    figures: dict[str, float] = {}

    def per_event(fn: Any, repeat: int) -> float:
        started = time.thread_time()
        for _repeat in range(repeat):
            fn()
        return (time.thread_time() - started) / (repeat * BATCH) * 1e6

    figures["parse"] = per_event(lambda: orjson.loads(body), 2000)
    figures["serialise"] = per_event(lambda: [serialised(e) for e in batch], 500)
    raws = [serialised(e) or b"" for e in batch]
    validator = intake.validator
    items = list(enumerate(batch))
    if hasattr(validator, "validate_all"):  # a batch's events together (issue 23, item 3)
        triples = [(i, e, raws[i]) for i, e in items]
        figures["validate"] = per_event(lambda: validator.validate_all(triples), 500)
    else:
        figures["validate"] = per_event(
            lambda: [validator.validate(i, e, raws[i]) for i, e in items], 500
        )

    if hasattr(validator, "validate_all"):
        checked = validator.validate_all([(i, e, raws[i]) for i, e in items])[0]
    else:
        checked = [validator.validate(i, e, raws[i]) for i, e in items]
    records = [(v.topic, v.value, v.key) for v in checked]
    loop = asyncio.get_running_loop()
    thread0, process0 = time.thread_time(), process_cpu()
    for _batch in range(batches):
        outcomes = await producer.produce_many(records, loop.time() + 30)
        assert outcomes.count(True) == BATCH, outcomes
    figures["produce loop"] = (time.thread_time() - thread0) / (batches * BATCH) * 1e6
    figures["produce process"] = (process_cpu() - process0) / (batches * BATCH) * 1e6

    thread0, process0 = time.thread_time(), process_cpu()
    for _batch in range(batches):
        result = await intake.handle(body)
        assert result.status == 201, result.body()
    count = batches * BATCH
    figures["handle/event loop"] = (time.thread_time() - thread0) / count * 1e6
    figures["handle/event process"] = (process_cpu() - process0) / count * 1e6

    rounds = max(1, batches * BATCH // (CONCURRENT * 5))
    thread0 = time.thread_time()
    for _round in range(rounds):
        results = await asyncio.gather(*(intake.handle(s) for s in singles))
        assert all(r.status == 201 for r in results)
    figures["handle/single loop"] = (time.thread_time() - thread0) / (rounds * CONCURRENT) * 1e6
    await producer.close()
    return figures


def child(source: str, config_path: Path, batches: int) -> None:
    sys.path.insert(0, source)
    sys.path.insert(0, str(REPO))
    import uvloop

    figures = uvloop.run(measure(config_path, batches))
    print(json.dumps({**figures, "source": source}))


def run_child(source: str, config_path: Path, batches: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.event_cpu", "--child", source,
         "--config", str(config_path), "--batches", str(batches)],
        cwd=REPO, check=False, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": f"{source}:{REPO}"},
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the measurement of {source} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", help="another eventbus source tree (its src directory)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.config, args.batches)
        return

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from tests.harness.kafka import KafkaCluster, resolve_bundle
    from tests.service.conftest import service_config

    sources = {"this tree": str(REPO / "files" / "eventbus" / "src")}
    if args.compare:
        sources["compared"] = str(Path(args.compare).resolve())
    with tempfile.TemporaryDirectory(prefix="event-cpu-") as tmp:
        cluster = KafkaCluster(bundle=resolve_bundle(), workdir=Path(tmp) / "kafka", size=1,
                               min_insync_replicas=1)  # fmt: skip
        cluster.start()
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
            admin.create_topics([NewTopic("eqiad.test.event", 1, 1)])
            admin.close()
            config_path = service_config(Path(tmp), cluster.bootstrap_servers, 8085)  # never bound
            values = [json.dumps(e).encode() for e in events(BATCH)]
            best: Best = {name: {} for name in sources}
            floors = []
            for repeat in range(args.repeats):  # interleaved: drift hits each alike
                floors.append(direct_floor(cluster.bootstrap_servers, "eqiad.test.event", values,
                                           max(1, args.batches // 2)))  # fmt: skip
                for name, source in sources.items():
                    figures = run_child(source, config_path, args.batches)
                    figures.pop("source", None)
                    keep_best(best, name, figures)
                print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)
        finally:
            cluster.stop()
    floor = min(floors)
    print(f"batches of {BATCH} events: {args.batches} per repeat; {args.repeats} repeats; "
          f"single events {CONCURRENT} at a time; minimum of the repeats")  # fmt: skip
    print(f"direct confluent-kafka producer, process CPU per event: {floor:6.2f} µs")
    keys = list(next(iter(best.values())))
    print(f"{'piece (µs of CPU)':28}" + "".join(f"{name:>14}" for name in best))
    for key in keys:
        print(f"{key:28}" + "".join(f"{best[name][key]:14.2f}" for name in best))
    for name in best:
        ratio = best[name]["handle/event process"] / floor
        print(f"{name}: batch process CPU per event / direct producer's: {ratio:.2f}")
    if len(best) == 2:
        this, other = best["this tree"], best["compared"]
        for key in keys:
            print(f"this tree / compared, {key}: {this[key] / other[key]:.2f}")


if __name__ == "__main__":
    main()
