"""The service's log lines that the runbook's log check reads: kafka-python's, in one line."""

from __future__ import annotations

import io
import logging

from eventbus.server import KafkaClientInOneLine


def logged(name: str, level: int, exc: BaseException | None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(KafkaClientInOneLine())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is None:
            logger.log(level, "bootstrap to %s failed", "node 1")
        else:
            try:
                raise exc
            except type(exc):
                logger.log(level, "send to %s failed", "node 1", exc_info=True)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_a_kafka_client_traceback_becomes_one_warning_line() -> None:
    line = logged("kafka.net.transport", logging.ERROR, ConnectionResetError(104, "reset"))
    assert line == (
        "WARNING kafka.net.transport: send to node 1 failed (ConnectionResetError(104, 'reset'))\n"
    )
    assert logged("kafka", logging.ERROR, None) == "WARNING kafka: bootstrap to node 1 failed\n"


def test_the_service_own_errors_keep_their_level_and_traceback() -> None:
    line = logged("eventbus.intake", logging.ERROR, ValueError("boom"))
    assert line.startswith("ERROR eventbus.intake: send to node 1 failed\nTraceback")
    assert "ValueError: boom" in line
    # a logger merely named like the client's is not the client's
    assert logged("kafkaesque", logging.ERROR, None).startswith("ERROR ")
