"""What the Kafka modules say when no broker takes the connection."""

from __future__ import annotations

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    _connection_failure,
)

SERVERS = "k1:9092, k2:9092"
DISCONNECTED = (
    "Bootstrap connection to bootstrap-2 failed: KafkaConnectionError: socket disconnected"
)


def test_refused_credentials_are_named() -> None:
    errors = [
        "Connection failed: SaslAuthenticationFailedError: Authentication failed: "
        "Invalid username or password",
        DISCONNECTED,
    ]
    message = _connection_failure(SERVERS, errors, sasl=True)
    assert message.startswith("Kafka at k1:9092, k2:9092 refused the credentials")
    assert "Invalid username or password" in message


def test_a_disconnect_over_sasl_points_at_the_credentials_too() -> None:
    message = _connection_failure(SERVERS, [DISCONNECTED], sasl=True)
    assert "could not reach any Kafka broker" in message
    assert "socket disconnected" in message
    assert "check sasl_mechanism, sasl_username and sasl_password too" in message


def test_without_sasl_a_disconnect_is_only_unreachable() -> None:
    message = _connection_failure(SERVERS, [DISCONNECTED, "Unable to bootstrap from k1"])
    assert "socket disconnected" in message
    assert "sasl" not in message
