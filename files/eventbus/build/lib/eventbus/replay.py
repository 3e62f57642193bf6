"""``eventbus-replay``: re-produce the events of EventError logs (the failed-events log).

Accepts the runbook's eventlogging-replay command line::

    eventbus-replay --output-invalid file:///tmp/failed-replay-events.log stdin:// \\
        'kafka:///kafka1001.eqiad.wmnet:9092,kafka1002.eqiad.wmnet:9092?async=False&topic=eqiad.{meta[topic]}'

and plain options (``--input``, ``--bootstrap-servers``, ``--topic-format``), or ``--http URL``
to replay through the service itself. Events are validated against the service's schemas
first (``--config``; ``--no-validate`` to skip), an event whose ``meta.id`` was already
produced in this run is skipped, and what fails again is written to ``--output-invalid``
as EventError (code ``replay``). Prints read / produced / invalid / failed counts and exits
non-zero when anything was invalid or failed.
"""

from __future__ import annotations

import argparse
import sys
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
from eventbus.schemas import SchemaInvalidError, SchemaNotFoundError, SchemaRepository


class ReplayError(Exception):
    """Bad usage or input that stops the replay before it starts."""


@dataclass
class Counts:
    read: int = 0
    produced: int = 0
    invalid: int = 0
    failed: int = 0
    duplicates: int = 0
    seen_ids: set[str] = field(default_factory=set)

    def line(self) -> str:
        return (
            f"read {self.read}, produced {self.produced}, invalid {self.invalid}, "
            f"failed {self.failed}, skipped duplicates {self.duplicates}"
        )


@dataclass
class KafkaOutput:
    bootstrap_servers: list[str]
    topic_format: str


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


def read_errors(
    streams: Iterable[TextIO], counts: Counts
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(rawEvent, original EventError or None) for each line of the inputs."""
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
                yield str(record["event"]["rawEvent"]), record
            else:  # a plain event line, as in the runbook's curl loop
                yield line.rstrip("\n"), None


class Replayer:
    def __init__(
        self,
        kafka: KafkaOutput | None,
        http_url: str | None,
        schemas: SchemaRepository | None,
        invalid_log: FailedEventsLog | None,
        dry_run: bool,
    ) -> None:
        self.kafka, self.http_url, self.schemas = kafka, http_url, schemas
        self.invalid_log, self.dry_run = invalid_log, dry_run
        self.counts = Counts()
        self._producer: Any = None
        self._pending: list[tuple[Any, str, str]] = []

    def reject(self, raw: str, message: str, invalid: bool = True) -> None:
        if invalid:
            self.counts.invalid += 1
        else:
            self.counts.failed += 1
        print(f"eventbus-replay: {message}", file=sys.stderr)
        if self.invalid_log is not None:
            self.invalid_log.write([event_error(raw, message, "replay")])

    def validate(self, event: dict[str, Any]) -> None:
        if self.schemas is None:
            return
        uri = event.get("$schema") or (event.get("meta") or {}).get("schema_uri")
        if not isinstance(uri, str):
            raise ValueError("the event names no schema ($schema)")
        try:
            self.schemas.get(uri).validate(event)
        except (SchemaNotFoundError, SchemaInvalidError) as err:
            raise ValueError(str(err)) from err
        except Exception as err:
            raise ValueError(f"failed validating against {uri}: {err}") from err

    def replay(self, items: Iterable[tuple[str, dict[str, Any] | None]]) -> Counts:
        for raw, _record in items:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                self.reject(raw, f"rawEvent is not JSON: {err}")
                continue
            for event in parsed if isinstance(parsed, list) else [parsed]:
                self.one(orjson.dumps(event).decode() if isinstance(parsed, list) else raw, event)
        self.flush()
        return self.counts

    def one(self, raw: str, event: Any) -> None:
        if not isinstance(event, dict) or not isinstance(event.get("meta"), dict):
            self.reject(raw, "not an event (no meta object)")
            return
        event_id = event["meta"].get("id")
        if isinstance(event_id, str) and event_id in self.counts.seen_ids:
            self.counts.duplicates += 1
            return
        try:
            self.validate(event)
        except ValueError as err:
            self.reject(raw, str(err))
            return
        if self.dry_run:
            self.counts.produced += 1
        elif self.http_url:
            self.post(raw)
        else:
            self.produce(raw, event)
        if isinstance(event_id, str):
            self.counts.seen_ids.add(event_id)

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

    def produce(self, raw: str, event: dict[str, Any]) -> None:
        assert self.kafka is not None
        try:
            topic = self.kafka.topic_format.format_map(event)
        except (KeyError, IndexError, AttributeError, ValueError) as err:
            self.reject(raw, f"topic format {self.kafka.topic_format!r} does not apply: {err!r}")
            return
        if self._producer is None:
            from kafka import KafkaProducer  # only needed when producing directly

            self._producer = KafkaProducer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                acks="all",
                delivery_timeout_ms=30000,
            )
        self._pending.append((self._producer.send(topic, value=raw.encode()), raw, topic))
        if len(self._pending) >= 1000:
            self.flush()

    def flush(self) -> None:
        """Wait for Kafka's acknowledgement of everything sent (async=False semantics)."""
        for future, raw, topic in self._pending:
            try:
                future.get(timeout=60)
                self.counts.produced += 1
            except Exception as err:  # noqa: BLE001 - any failure of this record is reported
                self.reject(raw, f"producing to {topic} failed: {err}", invalid=False)
        self._pending.clear()

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
        "--topic-format", default=None, help="topic of each event, e.g. eqiad.{meta[topic]}"
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
        help="service config, for its schemas",
    )
    parser.add_argument(
        "--no-validate", action="store_true", help="do not validate events before producing"
    )
    parser.add_argument("--dry-run", action="store_true", help="read and validate, produce nothing")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        kafka, inputs = resolve_targets(args)
        schemas = None
        if not args.no_validate:
            try:
                schemas = SchemaRepository(config_module.load(args.config).schema_repositories)
            except config_module.ConfigError as err:
                raise ReplayError(
                    f"{err}; pass --config, or --no-validate to skip validation"
                ) from err
        invalid_log = None
        if args.output_invalid:
            invalid_log = FailedEventsLog(Path(input_path(args.output_invalid) or "/dev/stderr"))
    except ReplayError as err:
        print(f"eventbus-replay: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    replayer = Replayer(kafka, args.http, schemas, invalid_log, args.dry_run)
    streams = [sys.stdin if p is None else open(p, encoding="utf-8") for p in inputs]  # noqa: SIM115
    try:
        counts = replayer.replay(read_errors(streams, replayer.counts))
    finally:
        replayer.close()
        for stream in streams:
            if stream is not sys.stdin:
                stream.close()
    print(counts.line() + (" (dry run)" if args.dry_run else ""))
    raise SystemExit(1 if counts.invalid or counts.failed else 0)


def resolve_targets(args: argparse.Namespace) -> tuple[KafkaOutput | None, list[str | None]]:
    uris = list(args.uris)
    kafka = None
    if uris and uris[-1].startswith("kafka:"):
        kafka = parse_kafka_uri(uris.pop())
    if args.bootstrap_servers or args.topic_format:
        if not (args.bootstrap_servers and args.topic_format):
            raise ReplayError("--bootstrap-servers and --topic-format go together")
        kafka = KafkaOutput(args.bootstrap_servers.split(","), args.topic_format)
    if (kafka is None) == (args.http is None) and not args.dry_run:
        raise ReplayError(
            "give one output: a kafka:/// URI, --bootstrap-servers/--topic-format, or --http URL"
        )
    inputs = [input_path(u) for u in uris + args.input] or [None]
    return kafka, inputs


if __name__ == "__main__":
    main()
