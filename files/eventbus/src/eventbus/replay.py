"""``eventbus-replay``: re-produce the events of EventError logs (the failed-events log), each
exactly once.

Accepts the runbook's eventlogging-replay command line::

    eventbus-replay --output-invalid file:///tmp/failed-replay-events.log stdin:// \\
        'kafka:///kafka1001.eqiad.wmnet:9092,kafka1002.eqiad.wmnet:9092?async=False&topic=eqiad.{meta[topic]}'

and plain options (``--input``, ``--bootstrap-servers``, ``--topic-format``), or ``--http URL``
to replay through the service itself.

Each event is checked with the service's own code (``eventbus.validation``, with the
configuration of ``--config``): its stream's rule, its schema, its partition key - replay
never produces what the service would have refused, and keys events as the service does.
Before producing, it looks for the events in Kafka: an event answered 503 may still have
reached Kafka late (a retry in flight, a leader that appended before the timeout), so each
target topic is read from the earliest failure's time (less the service's deadline) onward
(offsets for times) and events whose ``meta.id`` is there are skipped as already present.
An id already produced in this run is skipped too. What fails (invalid, or not
acknowledged) is written to ``--output-invalid`` as EventError (code ``replay``) and does
not hold back the rest. Prints read / produced / already present / invalid / failed counts
and exits 1 when anything was invalid or failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import orjson

from eventbus import config as config_module
from eventbus.failed_events import FailedEventsLog, event_error
from eventbus.validation import InvalidEventError, Validator, ValidEvent

# How far before a failure's timestamp an event may have reached Kafka, without the
# service's configuration (its request_timeout and produce_timeout say it otherwise).
DEFAULT_LOOKBACK = 60.0


class ReplayError(Exception):
    """Bad usage or input that stops the replay before it starts."""


@dataclass
class Counts:
    read: int = 0
    produced: int = 0
    present: int = 0
    invalid: int = 0
    failed: int = 0
    duplicates: int = 0
    seen_ids: set[str] = field(default_factory=set)

    def line(self) -> str:
        return (
            f"read {self.read}, produced {self.produced}, already present {self.present}, "
            f"invalid {self.invalid}, failed {self.failed}, skipped duplicates {self.duplicates}"
        )


@dataclass
class KafkaOutput:
    bootstrap_servers: list[str]
    topic_format: str | None


@dataclass
class Pending:
    """An event read from a log, checked, waiting to be produced."""

    raw: str
    event: dict[str, Any]
    topic: str
    key: bytes | None
    value: bytes
    failed_at: float | None  # the EventError's timestamp (None for a plain event line)


def parse_kafka_uri(uri: str) -> KafkaOutput:
    """``kafka:///host1:9092,host2:9092?topic=eqiad.{meta[topic]}`` (eventlogging's form)."""
    parts = urlsplit(uri)
    if parts.scheme != "kafka":
        raise ReplayError(f"output {uri!r} is not a kafka:// URI")
    servers = (parts.netloc or parts.path.lstrip("/")).split(",")
    topic = parse_qs(parts.query).get("topic", [None])[0]
    if not servers or not all(servers) or not topic:
        raise ReplayError(f"output {uri!r} needs brokers and a topic=... format")
    return KafkaOutput(servers, topic)


def input_path(uri: str) -> str | None:
    """None for stdin (``stdin://`` or ``-``), else a file path (``file:///x`` or ``x``)."""
    if uri in ("stdin://", "-"):
        return None
    return urlsplit(uri).path if uri.startswith("file://") else uri


def read_errors(streams: Iterable[TextIO], counts: Counts) -> Iterator[tuple[str, float | None]]:
    """(rawEvent, when it failed) for each line of the inputs: an EventError's, or a plain
    event line's (as in the runbook's curl loop; no time)."""
    for stream in streams:
        for line in stream:
            if not line.strip():
                continue
            counts.read += 1
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line.rstrip("\n"), None
                continue
            if (
                isinstance(record, dict)
                and isinstance(record.get("event"), dict)
                and "rawEvent" in record["event"]
            ):
                stamp = record.get("timestamp")
                when = float(stamp) if isinstance(stamp, (int, float)) else None
                yield str(record["event"]["rawEvent"]), when
            else:
                yield line.rstrip("\n"), None


class KafkaLookup:
    """Which event ids a topic already holds, from a time onward (offsets for times)."""

    def __init__(self, bootstrap_servers: list[str]) -> None:
        from kafka import KafkaConsumer  # only needed against Kafka

        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            consumer_timeout_ms=2000,
            client_id="eventbus-replay-lookup",
        )

    def ids_since(self, topic: str, since: float | None) -> set[str]:
        from kafka import TopicPartition

        partitions = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return set()
        self.consumer.assign(tps)
        ends = self.consumer.end_offsets(tps)
        starts: dict[Any, int] = {}
        if since is None:
            starts = self.consumer.beginning_offsets(tps)
        else:
            found = self.consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
            starts = {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in tps}
        for tp in tps:
            self.consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        ids: set[str] = set()
        while remaining:
            batches = self.consumer.poll(timeout_ms=2000, max_records=10000)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    try:
                        meta = orjson.loads(record.value).get("meta") or {}
                    except (orjson.JSONDecodeError, AttributeError, TypeError):
                        continue
                    if isinstance(meta, dict) and isinstance(meta.get("id"), str):
                        ids.add(meta["id"])
                if self.consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return ids

    def close(self) -> None:
        self.consumer.close()


class Replayer:
    def __init__(
        self,
        kafka: KafkaOutput | None,
        http_url: str | None,
        validator: Validator | None,
        invalid_log: FailedEventsLog | None,
        dry_run: bool,
        lookback: float,
        progress: TextIO | None = None,
    ) -> None:
        self.kafka, self.http_url, self.validator = kafka, http_url, validator
        self.invalid_log, self.dry_run, self.lookback = invalid_log, dry_run, lookback
        self.progress = progress
        self.counts = Counts()
        self._producer: Any = None

    def say(self, message: str) -> None:
        if self.progress is not None:
            print(f"eventbus-replay: {message}", file=self.progress, flush=True)

    def reject(self, raw: str, message: str, invalid: bool = True) -> None:
        if invalid:
            self.counts.invalid += 1
        else:
            self.counts.failed += 1
        print(f"eventbus-replay: {message}", file=sys.stderr)
        if self.invalid_log is not None:
            self.invalid_log.write([event_error(raw, message, "replay")])

    # -- reading and checking --------------------------------------------------------------
    def check(self, raw: str, event: Any, failed_at: float | None) -> Pending | None:
        if not isinstance(event, dict) or not isinstance(event.get("meta"), dict):
            self.reject(raw, "not an event (no meta object)")
            return None
        event_id = event["meta"].get("id")
        if isinstance(event_id, str) and event_id in self.counts.seen_ids:
            self.counts.duplicates += 1
            return None
        value = raw.encode("utf-8", "surrogatepass")
        topic: str | None = None
        key = None
        if self.validator is not None:
            try:
                valid: ValidEvent = self.validator.validate(0, event, value)
            except InvalidEventError as err:
                self.reject(raw, str(err))
                return None
            topic, key = valid.topic, valid.key
        if self.kafka is not None and self.kafka.topic_format is not None:
            try:
                formatted = self.kafka.topic_format.format_map(event)
            except (KeyError, IndexError, AttributeError, ValueError) as err:
                self.reject(
                    raw, f"topic format {self.kafka.topic_format!r} does not apply: {err!r}"
                )
                return None
            if topic is not None and formatted != topic:
                self.reject(raw, f"the topic format gives {formatted}, the service's rules {topic}")
                return None
            topic = formatted
        if isinstance(event_id, str):
            self.counts.seen_ids.add(event_id)
        return Pending(raw, event, topic or "", key, value, failed_at)

    def replay(self, items: Iterable[tuple[str, float | None]]) -> Counts:
        pending: list[Pending] = []
        for raw, failed_at in items:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                self.reject(raw, f"rawEvent is not JSON: {err}")
                continue
            for event in parsed if isinstance(parsed, list) else [parsed]:
                try:
                    text = orjson.dumps(event).decode() if isinstance(parsed, list) else raw
                except orjson.JSONEncodeError as err:
                    self.reject(raw, f"an event of the batch cannot be written as JSON: {err}")
                    continue
                checked = self.check(text, event, failed_at)
                if checked is not None:
                    pending.append(checked)
        if self.dry_run:
            self.counts.produced += len(pending)
        elif self.http_url:
            for item in pending:
                self.post(item.raw)
        else:
            self.produce(self.not_in_kafka(pending))
        return self.counts

    def not_in_kafka(self, pending: list[Pending]) -> list[Pending]:
        """The events whose id the target topic does not hold yet (from its earliest failure
        less the lookback onward); the others are counted as already present."""
        assert self.kafka is not None
        by_topic: dict[str, list[Pending]] = {}
        for item in pending:
            by_topic.setdefault(item.topic, []).append(item)
        lookup = KafkaLookup(self.kafka.bootstrap_servers)
        left = []
        try:
            for topic, items in sorted(by_topic.items()):
                times = [i.failed_at for i in items]
                since = None if None in times else min(t for t in times if t) - self.lookback
                self.say(f"looking for {len(items)} event(s) already in {topic}")
                present = lookup.ids_since(topic, since)
                for item in items:
                    if item.event["meta"].get("id") in present:
                        self.counts.present += 1
                    else:
                        left.append(item)
        finally:
            lookup.close()
        return left

    # -- producing -------------------------------------------------------------------------
    def post(self, raw: str) -> None:
        req = urllib.request.Request(self.http_url or "", data=raw.encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                if resp.status in (201, 202):
                    self.counts.produced += 1
                    return
                self.reject(raw, f"the service answered {resp.status}", invalid=False)
        except urllib.error.HTTPError as err:
            self.reject(
                raw,
                f"the service answered {err.code}: {err.read()[:200]!r}",
                invalid=err.code < 500,
            )
        except OSError as err:
            self.reject(raw, f"the service is unreachable: {err}", invalid=False)

    def produce(self, items: list[Pending]) -> None:
        """Produce with acks=all and wait for every acknowledgement (async=False)."""
        if not items:
            return
        assert self.kafka is not None
        from kafka import KafkaProducer  # only needed when producing directly

        self._producer = self._producer or KafkaProducer(
            bootstrap_servers=self.kafka.bootstrap_servers, acks="all", delivery_timeout_ms=30000
        )
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            sent = [(self._producer.send(i.topic, value=i.value, key=i.key), i) for i in chunk]
            for future, item in sent:
                try:
                    future.get(timeout=60)
                    self.counts.produced += 1
                except Exception as err:  # noqa: BLE001 - any failure of this record is reported
                    self.reject(item.raw, f"producing to {item.topic} failed: {err}", invalid=False)
            self.say(f"produced {self.counts.produced} of {len(items)}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=30)
        if self.invalid_log is not None:
            self.invalid_log.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventbus-replay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "uris",
        nargs="*",
        help="eventlogging-style: input URI(s) (stdin://, file:///...) then a kafka:/// output URI",
    )
    parser.add_argument(
        "--input", "-i", action="append", default=[], help="EventError log to read (default stdin)"
    )
    parser.add_argument("--bootstrap-servers", help="comma-separated Kafka brokers")
    parser.add_argument(
        "--topic-format",
        default=None,
        help="topic of each event, e.g. eqiad.{meta[topic]} (by default the service's rules)",
    )
    parser.add_argument(
        "--http", metavar="URL", help="replay through the service: POST each event to URL"
    )
    parser.add_argument(
        "--output-invalid",
        help="write what fails again here, as EventError (file path or file:// URI)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=config_module.DEFAULT_PATH,
        help="service config: its streams, schemas and deadline",
    )
    parser.add_argument(
        "--no-validate", action="store_true", help="do not check events with the service's rules"
    )
    parser.add_argument("--dry-run", action="store_true", help="read and validate, produce nothing")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        kafka, inputs = resolve_targets(args)
        validator = None
        lookback = DEFAULT_LOOKBACK
        if not args.no_validate:
            try:
                config = config_module.load(args.config)
            except config_module.ConfigError as err:
                raise ReplayError(
                    f"{err}; pass --config, or --no-validate to skip validation"
                ) from err
            validator = Validator(config)
            lookback = config.request_timeout + config.kafka.produce_timeout + 5
        elif kafka is not None and kafka.topic_format is None:
            raise ReplayError("--no-validate needs --topic-format (or a kafka:/// ?topic=...)")
        invalid_log = None
        if args.output_invalid:
            invalid_log = FailedEventsLog(Path(input_path(args.output_invalid) or "/dev/stderr"))
        streams = [sys.stdin if p is None else open(p, encoding="utf-8") for p in inputs]  # noqa: SIM115
    except (ReplayError, OSError) as err:
        print(f"eventbus-replay: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    started = time.monotonic()
    replayer = Replayer(
        kafka, args.http, validator, invalid_log, args.dry_run, lookback, sys.stderr
    )
    try:
        counts = replayer.replay(read_errors(streams, replayer.counts))
    finally:
        replayer.close()
        for stream in streams:
            if stream is not sys.stdin:
                stream.close()
    seconds = time.monotonic() - started
    print(counts.line() + (" (dry run)" if args.dry_run else "") + f" in {seconds:.1f}s")
    raise SystemExit(1 if counts.invalid or counts.failed else 0)


def resolve_targets(args: argparse.Namespace) -> tuple[KafkaOutput | None, list[str | None]]:
    uris = list(args.uris)
    kafka = None
    if uris and uris[-1].startswith("kafka:"):
        kafka = parse_kafka_uri(uris.pop())
    if args.bootstrap_servers:
        kafka = KafkaOutput(args.bootstrap_servers.split(","), args.topic_format)
    elif args.topic_format:
        raise ReplayError("--topic-format needs --bootstrap-servers")
    if (kafka is None) == (args.http is None) and not args.dry_run:
        raise ReplayError(
            "give one output: a kafka:/// URI, --bootstrap-servers [--topic-format], or --http URL"
        )
    inputs = [input_path(u) for u in uris + args.input] or [None]
    return kafka, inputs


if __name__ == "__main__":
    main()
