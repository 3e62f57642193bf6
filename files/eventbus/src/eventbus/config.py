"""The service's configuration: one YAML file, validated on load.

A bad file stops the start with a ConfigError whose message names the offending key, e.g.
``config key kafka.bootstrap_servers: must be a non-empty list of host:port``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path("/etc/eventbus/config.yaml")
# Producer settings, named as Kafka's Java client names them (producer.py hands them to
# librdkafka), with their types. The request timeout is kafka.produce_timeout; the producer
# is idempotent with acks=all (see producer.py).
PRODUCER_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "acks": (str, int),
    "linger_ms": int,
    "max_batch_size": int,
    "compression_type": (str, type(None)),
    "retry_backoff_ms": int,
    "max_request_size": int,
    "metadata_max_age_ms": int,
}
SECURITY_SETTINGS: dict[str, type] = {
    "security_protocol": str,
    "ssl_cafile": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_password": str,
    "ssl_check_hostname": bool,
    "sasl_mechanism": str,
    "sasl_plain_username": str,
    "sasl_plain_password": str,
}


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """The configuration is unusable; the message names the key."""


@dataclass(frozen=True)
class StreamRule:
    """Which topics are accepted: an exact name or a pattern, with the schema title events
    on them must have and an optional field whose value becomes the Kafka message key."""

    topic: str | None
    pattern: re.Pattern[str] | None
    schema_title: str | None
    partition_key: str | None

    def matches(self, topic: str) -> bool:
        if self.topic is not None:
            return topic == self.topic
        return self.pattern is not None and self.pattern.fullmatch(topic) is not None


# Kafka's defaults: the producer's largest request, the brokers' largest record batch.
DEFAULT_MAX_REQUEST_SIZE = 1048576
DEFAULT_MESSAGE_MAX_BYTES = 1048588
# What a record batch of one record adds to its key and value, with room to spare.
RECORD_OVERHEAD = 512


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: list[str]
    producer: dict[str, Any] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)
    produce_timeout: float = 15.0  # longer than a dead broker's failover (9 s + election)
    # the brokers' message.max.bytes (the kafka role keeps Kafka's default)
    message_max_bytes: int = DEFAULT_MESSAGE_MAX_BYTES
    # seconds a topic seen in Kafka's topic list is trusted without asking again
    topic_trust_seconds: float = 300.0
    # the bytes librdkafka may hold for Kafka per worker (its own default is 1 GiB); once
    # full, a request waits for room until its deadline
    queue_max_bytes: int = 64 * 1024 * 1024

    @property
    def max_request_size(self) -> int:
        return int(self.producer.get("max_request_size", DEFAULT_MAX_REQUEST_SIZE))


@dataclass(frozen=True)
class Config:
    datacenter: str
    kafka: KafkaSettings
    schema_repositories: list[Path]
    streams: list[StreamRule]
    failed_events_log: Path
    listen_address: str = "0.0.0.0"
    port: int = 8085
    num_processes: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    max_events_per_request: int = 10_000
    # the largest event (key and value) Kafka can take; checked against the limits above
    max_event_bytes: int = 1_000_000
    # events nested deeper than this are refused (JSON from hostile clients)
    max_event_depth: int = 64
    shutdown_timeout: float = 30.0
    # a request answers by then with what Kafka acknowledged (below the load balancer's
    # server timeout, so that a client is never cut off and retries a batch that went in)
    request_timeout: float = 20.0
    # a client has this long to send its body, and an idle connection this long to send a
    # request (slow clients cannot hold connections); at most this many connections a worker
    body_timeout: float = 10.0
    idle_timeout: float = 15.0
    max_connections: int = 1024
    # hasty=true requests: events validated and answered 202 but not yet acknowledged by
    # Kafka; over this many events or bytes (their values), a hasty request is handled as
    # a guaranteed one (201 or 503)
    hasty_max_in_flight: int = 10_000
    hasty_max_in_flight_bytes: int = 16 * 1024 * 1024
    # per worker, the bodies being read and handled at once (Content-Length, or
    # max_body_bytes when the size is unknown); a request over it is answered 503 with
    # Retry-After before its body is read, so that many large bodies cannot exhaust memory
    max_in_flight_body_bytes: int = 32 * 1024 * 1024
    test_event: dict[str, Any] | None = None
    # /v1/_test/events produces to Kafka: it answers clients on this host (the runbook sends
    # it from there) and on these networks only, 403 to anyone else
    test_event_allowed_from: tuple[IPNetwork, ...] = ()
    # the load balancer's server timeout in front of the service (seconds), when it has one:
    # --check-config makes sure a request is answered before it (body_timeout + request_timeout)
    load_balancer_timeout: float | None = None


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"config key {where}{key}: missing")
    return data[key]


def _typed(value: Any, kinds: type | tuple[type, ...], key: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ConfigError(f"config key {key}: must be {what}, got {value!r}")
    if not isinstance(value, kinds):
        raise ConfigError(f"config key {key}: must be {what}, got {value!r}")
    return value


def _positive(data: dict[str, Any], key: str, default: float, kind: type = int) -> Any:
    value = data.get(key, default)
    kinds = (int, float) if kind is float else int
    _typed(value, kinds, key, f"a positive {kind.__name__}")
    if value <= 0:
        raise ConfigError(f"config key {key}: must be positive, got {value!r}")
    return kind(value)


def _settings(data: dict[str, Any], section: str, known: dict[str, Any]) -> dict[str, Any]:
    """A kafka.<section> mapping whose keys must be known and of their type."""
    values = dict(data.get(section) or {})
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"config key kafka.{section}.{key}: unknown; known: " + ", ".join(sorted(known))
            )
        _typed(value, known[key], f"kafka.{section}.{key}", "of the right type")
    return values


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _security(data: dict[str, Any]) -> dict[str, Any]:
    """kafka.security, with the protocol and mechanism in Kafka's own spelling: the topic list
    (kafka-python) compares them case-sensitively, and connected in plaintext to a cluster
    asked for as "ssl"; librdkafka reads either case."""
    security = _settings(data, "security", SECURITY_SETTINGS)
    for key, known in (
        ("security_protocol", SECURITY_PROTOCOLS),
        ("sasl_mechanism", SASL_MECHANISMS),
    ):
        if key in security:
            security[key] = str(security[key]).upper()
            if security[key] not in known:
                raise ConfigError(
                    f"config key kafka.security.{key}: must be one of {', '.join(known)}, "
                    f"got {data['security'][key]!r}"
                )
    protocol = security.get("security_protocol", "PLAINTEXT")
    if protocol.startswith("SASL_") and not all(
        security.get(k) for k in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    ):
        raise ConfigError(
            f"config key kafka.security: {protocol} needs sasl_mechanism, sasl_plain_username "
            "and sasl_plain_password"
        )
    return security


def _kafka(data: Any) -> KafkaSettings:
    if not isinstance(data, dict):
        raise ConfigError("config key kafka: must be a mapping")
    servers = _require(data, "bootstrap_servers", "kafka.")
    if (
        not isinstance(servers, list)
        or not servers
        or not all(isinstance(s, str) and re.fullmatch(r"[^\s:]+:\d+", s) for s in servers)
    ):
        raise ConfigError(
            "config key kafka.bootstrap_servers: must be a non-empty list of host:port, "
            f"got {servers!r}"
        )
    producer = _settings(data, "producer", PRODUCER_SETTINGS)
    producer.setdefault("acks", "all")
    if producer["acks"] not in ("all", -1, 0, 1):
        raise ConfigError(
            f"config key kafka.producer.acks: must be all, 0 or 1, got {producer['acks']!r}"
        )
    weak_acks = data.get("allow_weak_acks", False)
    _typed(weak_acks, bool, "kafka.allow_weak_acks", "true or false")
    if producer["acks"] not in ("all", -1) and not weak_acks:
        raise ConfigError(
            f"config key kafka.producer.acks: {producer['acks']!r} breaks the service's promise "
            "(201 once every in-sync replica has the event: acks=all); set "
            "kafka.allow_weak_acks: true to accept losing acknowledged events"
        )
    security = _security(data)
    unknown = set(data) - {
        "bootstrap_servers",
        "producer",
        "security",
        "produce_timeout",
        "message_max_bytes",
        "topic_trust_seconds",
        "queue_max_bytes",
        "allow_weak_acks",
    }
    if unknown:
        raise ConfigError(f"config key kafka.{sorted(unknown)[0]}: unknown")
    prefixed = {f"kafka.{key}": value for key, value in data.items()}
    timeout = _positive(prefixed, "kafka.produce_timeout", 15.0, float)
    message_max = _positive(prefixed, "kafka.message_max_bytes", DEFAULT_MESSAGE_MAX_BYTES)
    trust = _positive(prefixed, "kafka.topic_trust_seconds", 300.0, float)
    queue_max = _positive(prefixed, "kafka.queue_max_bytes", 64 * 1024 * 1024)
    return KafkaSettings(servers, producer, security, timeout, message_max, trust, queue_max)


def _streams(data: Any) -> list[StreamRule]:
    if not isinstance(data, list) or not data:
        raise ConfigError("config key streams: must be a non-empty list of stream rules")
    rules = []
    for i, item in enumerate(data):
        where = f"streams[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"config key {where}: must be a mapping")
        unknown = set(item) - {"topic", "pattern", "schema_title", "partition_key"}
        if unknown:
            raise ConfigError(f"config key {where}.{sorted(unknown)[0]}: unknown")
        topic, pattern = item.get("topic"), item.get("pattern")
        if (topic is None) == (pattern is None):
            raise ConfigError(f"config key {where}: give exactly one of topic or pattern")
        compiled = None
        if pattern is not None:
            try:
                compiled = re.compile(_typed(pattern, str, f"{where}.pattern", "a string"))
            except re.error as err:
                raise ConfigError(
                    f"config key {where}.pattern: not a regular expression: {err}"
                ) from err
        else:
            _typed(topic, str, f"{where}.topic", "a string")
        for key in ("schema_title", "partition_key"):
            if item.get(key) is not None:
                _typed(item[key], str, f"{where}.{key}", "a string")
        rules.append(
            StreamRule(topic, compiled, item.get("schema_title"), item.get("partition_key"))
        )
    return rules


def _networks(data: Any, key: str) -> tuple[IPNetwork, ...]:
    """A list of addresses or networks (CIDR) as ip_network objects."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"config key {key}: must be a list of addresses or networks (CIDR)")
    networks = []
    for item in data:
        _typed(item, str, key, "a list of strings (addresses or networks)")
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as err:
            raise ConfigError(
                f"config key {key}: {item!r} is no address or network: {err}"
            ) from err
    return tuple(networks)


def parse(data: Any) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("config: the file must hold a mapping")
    known = {
        "listen",
        "num_processes",
        "datacenter",
        "kafka",
        "schema_repositories",
        "streams",
        "failed_events_log",
        "max_body_bytes",
        "max_events_per_request",
        "max_event_bytes",
        "max_event_depth",
        "shutdown_timeout",
        "request_timeout",
        "body_timeout",
        "idle_timeout",
        "max_connections",
        "hasty_max_in_flight",
        "hasty_max_in_flight_bytes",
        "max_in_flight_body_bytes",
        "test_event",
        "test_event_allowed_from",
        "load_balancer_timeout",
    }
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"config key {sorted(unknown)[0]}: unknown; known: {', '.join(sorted(known))}"
        )
    datacenter = _require(data, "datacenter", "")
    if not isinstance(datacenter, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", datacenter):
        raise ConfigError(f"config key datacenter: must be a name like eqiad, got {datacenter!r}")
    listen = data.get("listen") or {}
    if not isinstance(listen, dict):
        raise ConfigError("config key listen: must be a mapping with address and port")
    port = listen.get("port", 8085)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"config key listen.port: must be a TCP port, got {port!r}")
    repos = _require(data, "schema_repositories", "")
    if not isinstance(repos, list) or not repos or not all(isinstance(r, str) for r in repos):
        raise ConfigError("config key schema_repositories: must be a non-empty list of directories")
    for repo in repos:
        if not Path(repo).is_dir():
            raise ConfigError(f"config key schema_repositories: {repo} is not a directory")
    log_path = _require(data, "failed_events_log", "")
    if not isinstance(log_path, str) or not log_path:
        raise ConfigError("config key failed_events_log: must be a file path")
    test_event = data.get("test_event")
    if test_event is not None and not isinstance(test_event, dict):
        raise ConfigError("config key test_event: must be an event (a mapping)")
    config = Config(
        datacenter=datacenter,
        kafka=_kafka(_require(data, "kafka", "")),
        schema_repositories=[Path(r) for r in repos],
        streams=_streams(_require(data, "streams", "")),
        failed_events_log=Path(log_path),
        listen_address=str(listen.get("address", "0.0.0.0")),
        port=port,
        num_processes=_positive(data, "num_processes", 1),
        max_body_bytes=_positive(data, "max_body_bytes", 4 * 1024 * 1024),
        max_events_per_request=_positive(data, "max_events_per_request", 10_000),
        max_event_bytes=_positive(data, "max_event_bytes", 1_000_000),
        max_event_depth=_positive(data, "max_event_depth", 64),
        shutdown_timeout=_positive(data, "shutdown_timeout", 30.0, float),
        request_timeout=_positive(data, "request_timeout", 20.0, float),
        body_timeout=_positive(data, "body_timeout", 10.0, float),
        idle_timeout=_positive(data, "idle_timeout", 15.0, float),
        max_connections=_positive(data, "max_connections", 1024),
        hasty_max_in_flight=_positive(data, "hasty_max_in_flight", 10_000),
        hasty_max_in_flight_bytes=_positive(data, "hasty_max_in_flight_bytes", 16 * 1024 * 1024),
        max_in_flight_body_bytes=_positive(data, "max_in_flight_body_bytes", 32 * 1024 * 1024),
        test_event=test_event,
        test_event_allowed_from=_networks(
            data.get("test_event_allowed_from"), "test_event_allowed_from"
        ),
        load_balancer_timeout=(
            _positive(data, "load_balancer_timeout", 1.0, float)
            if data.get("load_balancer_timeout") is not None
            else None
        ),
    )
    _check_size_limits(config)
    return config


def _check_size_limits(config: Config) -> None:
    """The largest event must fit in a request body, in a producer request and in a broker's
    record batch: otherwise an event the service accepts could never be produced (and would be
    answered 503 and replayed forever)."""
    limits = {
        "max_body_bytes": config.max_body_bytes,
        "kafka.producer.max_request_size (less the record overhead)": (
            config.kafka.max_request_size - RECORD_OVERHEAD
        ),
        "kafka.message_max_bytes (less the record overhead)": (
            config.kafka.message_max_bytes - RECORD_OVERHEAD
        ),
    }
    for name, limit in limits.items():
        if config.max_event_bytes > limit:
            raise ConfigError(
                f"config key max_event_bytes: {config.max_event_bytes} is more than "
                f"{name}, {limit}: such events could never reach Kafka; lower it or raise that"
            )
    budgets = {
        # a body of the largest size must fit, or it would be refused 503 forever
        "max_in_flight_body_bytes": (config.max_in_flight_body_bytes, config.max_body_bytes,
                                     "max_body_bytes"),
        # the largest event must fit in librdkafka's queue, or it would wait for room forever
        "kafka.queue_max_bytes": (config.kafka.queue_max_bytes,
                                  config.max_event_bytes + RECORD_OVERHEAD,
                                  "max_event_bytes and the record overhead"),
    }  # fmt: skip
    for key, (budget, least, what) in budgets.items():
        if budget < least:
            raise ConfigError(f"config key {key}: {budget} is less than {what}, {least}; raise it")


def load_client_security(path: Path) -> dict[str, Any]:
    """A Kafka client's credentials from a file of their own (replay's): the keys of the
    service's kafka.security, checked as they are."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of {', '.join(SECURITY_SETTINGS)}")
    try:
        return _security({"security": data})
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def load(path: Path = DEFAULT_PATH) -> Config:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config: cannot read {path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config: {path} is not valid YAML: {err}") from err
    return parse(data)
