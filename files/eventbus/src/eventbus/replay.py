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
An id already produced in this run is skipped too; an event without a string ``meta.id`` is
looked for by its bytes. The lookup waits until the newest failure is older than the
service's produce timeout (and a margin): until then the service's producer may still deliver
it. The lookup reads every partition to its end or the run stops (a partial set would
produce events again). Compressed logs (``.gz``, as logrotate leaves them) are read as they
are. What fails (invalid, or not acknowledged) is written to ``--output-invalid`` as
EventError (code ``replay``) and does not hold back the rest.

Prints read / produced / already present / invalid / failed counts. Exit codes:

* 0 - all done: every event is in Kafka (produced now, or already there);
* 1 - done, but some events were invalid or could not be produced: each of them is in the
  ``--output-invalid`` file, every other event is in Kafka;
* 2 - bad usage or input: nothing was done;
* 3 - aborted (Kafka unreachable, the lookup incomplete, an unexpected error): events may
  be left unreplayed; run it again (what Kafka holds is skipped).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
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
# How long after a failure the service's producer may still deliver its event (it gives up
# after produce_timeout), without the service's configuration; and the margin added to it.
DEFAULT_SETTLE = 20.0
SETTLE_MARGIN = 5.0
# The lookup reads every partition to its end within this long, or the run aborts.
LOOKUP_DEADLINE = 300.0
# How long producing waits for a topic's metadata (Kafka lacks the topic: its events fail).
TOPIC_WAIT_MS = 10_000

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3
# Replay's own Kafka credentials (its user may read the topics, to find what is already
# there), written by the eventbus role; used when --kafka-client-config is not given.
DEFAULT_CLIENT_CONFIG = Path("/etc/eventbus/replay-kafka.yaml")


class ReplayError(Exception):
    """Bad usage or input that stops the replay before it starts."""


class ReplayAbortedError(Exception):
    """The replay cannot go on safely (events may be left unreplayed); the message says why."""


def digest(value: bytes) -> str:
    """How an event without a string meta.id is recognised in Kafka: by its bytes."""
    return hashlib.sha256(value).hexdigest()


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
    # kafka-python's security settings (--kafka-client-config), shared by every client
    security: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pending:
    """An event read from a log, checked, waiting to be produced."""

    raw: str
    event: dict[str, Any]
    topic: str
    key: bytes | None
    value: bytes
    failed_at: float | None  # the EventError's timestamp (None for a plain event line)

    @property
    def identity(self) -> str:
        """How Kafka's copy is recognised: meta.id, or the digest of the bytes."""
        event_id = self.event["meta"].get("id")
        return event_id if isinstance(event_id, str) else digest(self.value)


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


def record_identity(value: bytes | None) -> str:
    """An event's meta.id when it has a string one, else the digest of its bytes."""
    try:
        meta = orjson.loads(value or b"").get("meta")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        meta = None
    if isinstance(meta, dict) and isinstance(meta.get("id"), str):
        return str(meta["id"])
    return digest(value or b"")


class KafkaLookup:
    """Which event ids a topic already holds, from a time onward (offsets for times)."""

    def __init__(
        self,
        bootstrap_servers: list[str],
        deadline: float = LOOKUP_DEADLINE,
        security: dict[str, Any] | None = None,
    ) -> None:
        from kafka import KafkaConsumer  # only needed against Kafka

        self.deadline = deadline
        self.consumer = KafkaConsumer(
            **(security or {}),
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            consumer_timeout_ms=2000,
            client_id="eventbus-replay-lookup",
        )

    def ids_since(self, topic: str, since: float | None) -> set[str]:
        """Every event id (and, for events without one, their digest) in ``topic`` from
        ``since`` onward; ReplayAbortedError when it cannot read every partition to its end."""
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
        deadline = time.monotonic() + self.deadline
        while remaining:
            if time.monotonic() > deadline:
                raise ReplayAbortedError(
                    f"could not read {topic} to its end within {self.deadline:g}s "
                    f"({len(remaining)} partition(s) left): events already in Kafka could "
                    "not all be told apart, so nothing was produced"
                )
            batches = self.consumer.poll(timeout_ms=2000, max_records=10000)
            for records in batches.values():
                for record in records:
                    ids.add(record_identity(record.value))
            for tp in list(remaining):
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
        settle: float = DEFAULT_SETTLE,
        lookup_servers: list[str] | None = None,
        security: dict[str, Any] | None = None,
    ) -> None:
        self.kafka, self.http_url, self.validator = kafka, http_url, validator
        self.invalid_log, self.dry_run, self.lookback = invalid_log, dry_run, lookback
        self.settle = settle
        # where to look for events already in Kafka: the output, or (--http) the brokers given
        self.lookup_servers = lookup_servers or (kafka.bootstrap_servers if kafka else None)
        self.security = security or (kafka.security if kafka else {})
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
            return self.counts
        if self.lookup_servers:
            pending = self.not_in_kafka(pending)
        elif pending:
            self.say(
                "no Kafka to look in (--bootstrap-servers): events already there are sent again"
            )
        if self.http_url:
            for item in pending:
                self.post(item.raw)
        else:
            self.produce(pending)
        return self.counts

    def wait_for_late_deliveries(self, pending: list[Pending]) -> None:
        """Until the newest failure is older than the service's producer may still deliver
        its event: a lookup before that could miss an event that is about to land."""
        times = [item.failed_at for item in pending if item.failed_at is not None]
        if not times:
            return
        wait = max(times) + self.settle - time.time()
        if wait > 0:
            self.say(f"waiting {wait:.0f}s: the newest failure is recent, its event may still land")
            time.sleep(wait)

    def not_in_kafka(self, pending: list[Pending]) -> list[Pending]:
        """The events the target topic does not hold yet (by meta.id, or by their bytes; from
        the topic's earliest failure less the lookback onward); the others are counted as
        already present. ReplayAbortedError when a topic cannot be read to its end."""
        assert self.lookup_servers
        by_topic: dict[str, list[Pending]] = {}
        for item in pending:
            by_topic.setdefault(item.topic, []).append(item)
        if not by_topic:
            return []
        self.wait_for_late_deliveries(pending)
        lookup = KafkaLookup(self.lookup_servers, security=self.security)
        left = []
        try:
            for topic, items in sorted(by_topic.items()):
                times = [i.failed_at for i in items]
                since = None if None in times else min(t for t in times if t) - self.lookback
                self.say(f"looking for {len(items)} event(s) already in {topic}")
                present = lookup.ids_since(topic, since)
                for item in items:
                    if item.identity in present:
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
            **self.kafka.security,
            bootstrap_servers=self.kafka.bootstrap_servers,
            acks="all",
            delivery_timeout_ms=30000,
            max_block_ms=TOPIC_WAIT_MS,  # a send waits this long for its topic's metadata
        )
        items = self.on_known_topics(items)
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            sent = []
            for item in chunk:
                try:
                    sent.append(
                        (self._producer.send(item.topic, value=item.value, key=item.key), item)
                    )
                except Exception as err:  # noqa: BLE001 - any failure of this record is reported
                    self.reject(item.raw, f"producing to {item.topic} failed: {err}", invalid=False)
            for future, item in sent:
                try:
                    future.get(timeout=60)
                    self.counts.produced += 1
                except Exception as err:  # noqa: BLE001 - any failure of this record is reported
                    self.reject(item.raw, f"producing to {item.topic} failed: {err}", invalid=False)
            self.say(f"produced {self.counts.produced} of {len(items)}")

    def on_known_topics(self, items: list[Pending]) -> list[Pending]:
        """The events whose topic Kafka has (its topic list, read once: asking for a topic's
        metadata may create it where auto-creation is on); the others fail at once, each
        written to the replay-failed file (a send to a missing topic blocked, per event)."""
        from kafka import KafkaConsumer

        assert self.kafka is not None
        listing = KafkaConsumer(
            **self.kafka.security,
            bootstrap_servers=self.kafka.bootstrap_servers,
            client_id="eventbus-replay-topics",
        )
        try:
            known = listing.topics()
        finally:
            listing.close()
        left = []
        for item in items:
            if item.topic in known:
                left.append(item)
            else:
                self.reject(item.raw, f"Kafka has no topic {item.topic}", invalid=False)
        return left

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
    parser.add_argument(
        "--bootstrap-servers",
        help="comma-separated Kafka brokers: the output, or with --http where to look for "
        "events already in Kafka",
    )
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
        "--kafka-client-config",
        type=Path,
        default=None,
        help="YAML with the Kafka credentials replay connects with (the keys of the service's "
        f"kafka.security); default {DEFAULT_CLIENT_CONFIG} when it exists",
    )
    parser.add_argument(
        "--no-validate", action="store_true", help="do not check events with the service's rules"
    )
    parser.add_argument("--dry-run", action="store_true", help="read and validate, produce nothing")
    return parser


def open_input(path: str | None) -> TextIO:
    """stdin, a log, or a compressed one (logrotate's .gz: read by its magic bytes)."""
    if path is None:
        return sys.stdin
    with open(path, "rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")  # closed by run()


def main(argv: list[str] | None = None) -> None:
    """Run the replay; its exit code says how it ended (see the module's docstring)."""
    try:
        code = run(argv)
    except ReplayAbortedError as err:
        print(f"eventbus-replay: aborted: {err}", file=sys.stderr)
        code = EXIT_ABORTED
    except Exception as err:  # noqa: BLE001 - whatever it was, the run did not complete
        print(f"eventbus-replay: aborted: {type(err).__name__}: {err}", file=sys.stderr)
        code = EXIT_ABORTED
    raise SystemExit(code)


def run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        security = client_security(args.kafka_client_config)
        kafka, inputs = resolve_targets(args)
        if kafka is not None:
            kafka.security = security
        validator = None
        lookback, settle = DEFAULT_LOOKBACK, DEFAULT_SETTLE
        if not args.no_validate:
            try:
                config = config_module.load(args.config)
            except config_module.ConfigError as err:
                raise ReplayError(
                    f"{err}; pass --config, or --no-validate to skip validation"
                ) from err
            validator = Validator(config)
            lookback = config.request_timeout + config.kafka.produce_timeout + 5
            settle = config.kafka.produce_timeout + SETTLE_MARGIN
        elif kafka is not None and kafka.topic_format is None:
            raise ReplayError("--no-validate needs --topic-format (or a kafka:/// ?topic=...)")
        invalid_log = None
        if args.output_invalid:
            output = Path(input_path(args.output_invalid) or "/dev/stderr")
            invalid_log = FailedEventsLog(output, follow_links=output == Path("/dev/stderr"))
        streams = [open_input(p) for p in inputs]
    except (ReplayError, config_module.ConfigError, OSError, UnicodeError) as err:
        print(f"eventbus-replay: {err}", file=sys.stderr)
        return EXIT_USAGE

    started = time.monotonic()
    lookup = args.bootstrap_servers.split(",") if args.http and args.bootstrap_servers else None
    replayer = Replayer(
        kafka, args.http, validator, invalid_log, args.dry_run, lookback, sys.stderr,
        settle=settle, lookup_servers=lookup, security=security,
    )  # fmt: skip
    try:
        counts = replayer.replay(read_errors(streams, replayer.counts))
    finally:
        replayer.close()
        for stream in streams:
            if stream is not sys.stdin:
                stream.close()
    seconds = time.monotonic() - started
    print(counts.line() + (" (dry run)" if args.dry_run else "") + f" in {seconds:.1f}s")
    if invalid_log is not None and invalid_log.write_errors:
        raise ReplayAbortedError(
            f"{invalid_log.write_errors} failed event(s) could not be written to "
            f"{invalid_log.path}: {invalid_log.last_error}"
        )
    return EXIT_FAILED if counts.invalid or counts.failed else EXIT_DONE


def client_security(path: Path | None) -> dict[str, Any]:
    """The credentials of --kafka-client-config (which must exist), or of the default file
    when it exists, or none (a plaintext cluster)."""
    if path is None:
        if not DEFAULT_CLIENT_CONFIG.exists():
            return {}
        path = DEFAULT_CLIENT_CONFIG
    return config_module.load_client_security(path)


def resolve_targets(args: argparse.Namespace) -> tuple[KafkaOutput | None, list[str | None]]:
    uris = list(args.uris)
    kafka = None
    if uris and uris[-1].startswith("kafka:"):
        kafka = parse_kafka_uri(uris.pop())
    if args.bootstrap_servers and not args.http:
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
