"""The failed-events log: EventError records, shared appends, reopen after rotation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eventbus.failed_events import FailedEventsLog, event_error


def test_event_error_record_shape() -> None:
    record = event_error('{"a": 1}', "bad", "validation", "/test/event/1.0.0", "kafka1001")
    assert record["schema"] == "EventError"
    assert record["recvFrom"] == "kafka1001"
    assert record["event"] == {
        "rawEvent": '{"a": 1}',
        "message": "bad",
        "code": "validation",
        "schema": "/test/event/1.0.0",
        "revision": -1,
    }
    with pytest.raises(ValueError, match="unknown EventError code"):
        event_error("x", "y", "other")


def test_reopens_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "log" / "failed.log"
    log = FailedEventsLog(path)
    log.write([event_error("one", "m", "parse")])
    path.rename(tmp_path / "failed.log.1")  # logrotate moves the file away
    log.write([event_error("two", "m", "parse")])
    path.unlink()  # or removes it
    log.write([event_error("three", "m", "parse")])
    log.close()
    assert [
        json.loads(x)["event"]["rawEvent"]
        for x in (tmp_path / "failed.log.1").read_text().splitlines()
    ] == ["one"]
    assert [json.loads(x)["event"]["rawEvent"] for x in path.read_text().splitlines()] == ["three"]
    assert log.written == 3


def test_two_writers_share_the_file_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "failed.log"
    first, second = FailedEventsLog(path), FailedEventsLog(path)
    for i in range(50):
        (first if i % 2 else second).write([event_error("x" * 5000 + str(i), "m", "produce")])
    first.close()
    second.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 50
    assert all(json.loads(line)["schema"] == "EventError" for line in lines)
