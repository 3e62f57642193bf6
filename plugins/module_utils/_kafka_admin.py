# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to Kafka with kafka-python's admin client, shared by the Kafka modules.

``kafka_connection_argspec()`` is the option set documented by the
``eventplatform.eventbus.kafka`` doc fragment; ``admin_client()`` turns those options into a
client; failures become ``KafkaModuleError`` with a message that says what to check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import logging
import time
import traceback
from contextlib import contextmanager

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from kafka import KafkaAdminClient
    from kafka import errors as kafka_errors
    from kafka.admin import ConfigResource, ConfigResourceType

    HAS_KAFKA = True
    KAFKA_IMPORT_ERROR = None
except ImportError:
    HAS_KAFKA = False
    KAFKA_IMPORT_ERROR = traceback.format_exc()

MIN_ISR_KEY = "min.insync.replicas"
# A broker that has just died (SIGKILL, its host gone) fails the request sent to it; the client
# sends the next attempt to another broker (the dead one is in its reconnect backoff).
READ_ATTEMPTS = 3
READ_RETRY_PAUSE = 0.5
CLIENT_ID = "eventplatform.eventbus"


class KafkaModuleError(Exception):
    """A failure worth reporting to the operator as is."""


def kafka_connection_argspec():
    return dict(
        bootstrap_servers=dict(type="list", elements="str", required=True),
        security_protocol=dict(
            type="str",
            default="PLAINTEXT",
            choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        ),
        ssl_cafile=dict(type="path"),
        ssl_certfile=dict(type="path"),
        ssl_keyfile=dict(type="path"),
        ssl_password=dict(type="str", no_log=True),
        ssl_check_hostname=dict(type="bool", default=True),
        sasl_mechanism=dict(type="str", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        sasl_username=dict(type="str"),
        sasl_password=dict(type="str", no_log=True),
        request_timeout=dict(type="float", default=10.0),
    )


KAFKA_CONNECTION_REQUIRED_TOGETHER = [("sasl_username", "sasl_password")]
KAFKA_CONNECTION_REQUIRED_IF = [
    ("security_protocol", "SASL_PLAINTEXT", ("sasl_mechanism", "sasl_username", "sasl_password")),
    ("security_protocol", "SASL_SSL", ("sasl_mechanism", "sasl_username", "sasl_password")),
]


def kafka_module(argument_spec):
    """An AnsibleModule with the shared Kafka connection options added to ``argument_spec``;
    fails at once, saying what to install, when kafka-python is missing."""
    spec = kafka_connection_argspec()
    spec.update(argument_spec)
    module = AnsibleModule(
        argument_spec=spec,
        required_together=KAFKA_CONNECTION_REQUIRED_TOGETHER,
        required_if=KAFKA_CONNECTION_REQUIRED_IF,
        supports_check_mode=True,
    )
    if not HAS_KAFKA:
        module.fail_json(msg=missing_required_lib("kafka-python"), exception=KAFKA_IMPORT_ERROR)
    return module


@contextmanager
def admin_session(params):
    """An admin client for the module's connection options, closed afterwards."""
    admin = admin_client(params)
    try:
        yield admin
    finally:
        admin.close()


def client_config(params):
    """kafka-python client settings from the module's connection options."""
    config = dict(
        bootstrap_servers=params["bootstrap_servers"],
        client_id=CLIENT_ID,
        security_protocol=params["security_protocol"],
        request_timeout_ms=int(params["request_timeout"] * 1000),
    )
    if HAS_KAFKA and "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:
        # kafka-python waits 30 s for a first broker whatever request_timeout says, its
        # reconnect backoff growing to 30 s between attempts: an unreachable cluster, or
        # refused credentials, failed a module after 30-40 s. Both now end with request_timeout.
        config.update(
            bootstrap_timeout_ms=int(params["request_timeout"] * 1000),
            reconnect_backoff_max_ms=1000,
        )
    if "SSL" in params["security_protocol"]:
        config.update(
            ssl_cafile=params.get("ssl_cafile"),
            ssl_certfile=params.get("ssl_certfile"),
            ssl_keyfile=params.get("ssl_keyfile"),
            ssl_password=params.get("ssl_password"),
            ssl_check_hostname=params["ssl_check_hostname"],
        )
    if "SASL" in params["security_protocol"]:
        config.update(
            sasl_mechanism=params["sasl_mechanism"],
            sasl_plain_username=params["sasl_username"],
            sasl_plain_password=params["sasl_password"],
        )
    return config


class _ConnectionErrors(logging.Handler):
    """Keeps what kafka-python logs while connecting: it raises a bare "Unable to bootstrap"
    and logs the reason (refused, authentication failed, TLS error) only."""

    def __init__(self):
        super(_ConnectionErrors, self).__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "Error" in message or "failed" in message or "refused" in message.lower():
            self.messages.append(message)


def _connection_failure(servers, errors, sasl=False):
    auth = [m for m in errors if "Authentication failed" in m]
    if auth:
        return (
            "Kafka at %s refused the credentials (%s): check sasl_mechanism, sasl_username and "
            "sasl_password" % (servers, auth[-1].rsplit(": ", 1)[-1])
        )
    causes = [m for m in errors if "Unable to bootstrap" not in m]
    detail = "; the client's last error: %s" % causes[-1] if causes else ""
    hint = ""
    if sasl and any("disconnected" in m for m in causes):
        # kafka-python may miss the broker's answer when the broker closes right after it
        hint = (
            "; the brokers closed the connection, which is also how they end a login with "
            "wrong credentials: check sasl_mechanism, sasl_username and sasl_password too"
        )
    return (
        "could not reach any Kafka broker at %s: check that Kafka is running and that "
        "bootstrap_servers is reachable from this host%s%s" % (servers, detail, hint)
    )


def admin_client(params):
    if not HAS_KAFKA:
        raise KafkaModuleError("kafka-python is required on the host that runs this module")
    servers = ", ".join(params["bootstrap_servers"])
    errors = _ConnectionErrors()
    logger = logging.getLogger("kafka")
    logger.addHandler(errors)
    try:
        return KafkaAdminClient(**client_config(params))
    except (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError):
        # kafka-python 3 raises KafkaTimeoutError("Unable to bootstrap ...") when no broker answers
        raise KafkaModuleError(
            _connection_failure(servers, errors.messages, "SASL" in params["security_protocol"])
        ) from None
    except kafka_errors.KafkaError as err:
        raise KafkaModuleError("connecting to Kafka at %s failed: %s" % (servers, err)) from err
    finally:
        logger.removeHandler(errors)


def _connection_lost(err):
    """True for the errors of one broker away (another may answer the next attempt)."""
    return isinstance(
        err,
        (
            kafka_errors.KafkaConnectionError,
            kafka_errors.NodeNotReadyError,
            kafka_errors.KafkaTimeoutError,
            kafka_errors.RequestTimedOutError,
        ),
    )


def fetch_cluster_metadata(admin, topic_names=None):
    """Everything kafka_topic_describe needs, in one round of requests: brokers and
    controller, topic/partition metadata, min.insync.replicas of each topic, KRaft quorum.
    A broker lost during the round (it died, or it restarts) is retried through another."""
    attempt = 1
    while True:
        try:
            cluster = admin.describe_cluster()
            raw_topics = admin.describe_topics(topic_names or None)
            names = [t["name"] for t in raw_topics if t.get("error_code", 0) == 0]
            min_isr = fetch_min_isr(admin, names)
            quorum = admin.describe_metadata_quorum()
            break
        except kafka_errors.KafkaError as err:
            if attempt < READ_ATTEMPTS and _connection_lost(err):
                attempt += 1
                time.sleep(READ_RETRY_PAUSE)
                continue
            raise KafkaModuleError(
                "reading Kafka cluster metadata failed (attempt %d of %d): %s"
                % (attempt, READ_ATTEMPTS, err)
            ) from err
    brokers = [int(b["broker_id"]) for b in cluster["brokers"] if not b.get("is_fenced")]
    return dict(
        brokers=brokers,
        controller_id=cluster.get("controller_id"),
        topics=raw_topics,
        min_isr=min_isr,
        quorum=quorum,
    )


def fetch_min_isr(admin, topic_names):
    if not topic_names:
        return {}
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, {MIN_ISR_KEY: None}) for name in topic_names
    ]
    answer = admin.describe_configs(resources, config_filter="all")
    result = {}
    for name, configs in answer.get("topic", {}).items():
        if MIN_ISR_KEY in configs:
            result[name] = int(configs[MIN_ISR_KEY]["value"])
    return result


def request_leader_election(admin, election_code, partitions_by_topic):
    """Ask the controller for an election (0 preferred, 1 unclean); returns its answer with
    per-partition errors left in it rather than raised."""
    try:
        return admin.elect_leaders(election_code, partitions_by_topic, raise_errors=False)
    except kafka_errors.KafkaError as err:
        raise KafkaModuleError("the leader election request failed: %s" % err) from err
