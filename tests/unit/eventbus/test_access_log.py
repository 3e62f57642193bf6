"""The access log written once per loop turn (eventbus.access_log): its lines are the ones
``logging`` writes for the same message, every line arrives (errors too), a turn's lines go
out in one write, and logging set up some other way is honoured."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest
from eventbus import access_log

FORMAT = "%(asctime)s %(levelname)s (%(processName)s %(process)d) %(name)s: %(message)s"


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, CountingStream]]:
    """A logger like the service's: one StreamHandler with its format. Not in logging's tree,
    where pytest adds capture handlers of its own."""
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    child = logging.Logger("accesstest.access", logging.INFO)
    child.addHandler(handler)
    child.propagate = False
    access_log._LINES.clear()
    yield child, stream
    access_log._LINES.clear()


def strip_time(line: str) -> str:
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", line)


def test_lines_match_loggings_own_and_come_once_per_turn(
    logger: tuple[logging.Logger, CountingStream],
) -> None:
    child, stream = logger

    async def turn() -> None:
        pending = access_log.lines_for(child)
        for status in (201, 400, 500, 503):
            pending.add(f"{status} POST /v1/events (10.0.0.1) 1.00ms")
        assert stream.getvalue() == ""  # nothing written inside the turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(turn())
    ours = stream.getvalue().splitlines()
    assert stream.writes == 1  # the turn's four lines in one write
    assert [line.split(": ", 1)[1] for line in ours] == [
        f"{s} POST /v1/events (10.0.0.1) 1.00ms" for s in (201, 400, 500, 503)
    ]
    before = len(stream.getvalue())
    child.info("%s", "201 POST /v1/events (10.0.0.1) 1.00ms")
    theirs = stream.getvalue()[before:].splitlines()[0]
    assert strip_time(ours[0]) == strip_time(theirs)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \(", ours[0])


def test_a_full_buffer_is_written_at_once(logger: tuple[logging.Logger, CountingStream]) -> None:
    child, stream = logger

    async def burst() -> None:
        pending = access_log.lines_for(child)
        for i in range(access_log.MAX_PENDING):
            pending.add(f"201 POST /v1/events?i={i} (10.0.0.1) 1.00ms")
        assert stream.getvalue().count("\n") == access_log.MAX_PENDING
        access_log.flush()

    asyncio.run(burst())
    assert stream.getvalue().count("\n") == access_log.MAX_PENDING


def test_other_logging_setups_go_through_logging(
    logger: tuple[logging.Logger, CountingStream],
) -> None:
    child, stream = logger
    seen: list[str] = []
    child.addFilter(lambda record: seen.append(record.getMessage()) or True)
    # a filter on the logger: every line passes through logging, at once (no loop needed)
    access_log.lines_for(child).add("404 GET /nowhere (10.0.0.1) 0.10ms")
    assert seen == ["404 GET /nowhere (10.0.0.1) 0.10ms"]
    assert stream.getvalue().endswith("accesstest.access: 404 GET /nowhere (10.0.0.1) 0.10ms\n")
