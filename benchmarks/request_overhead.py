"""The fixed per-request costs that issue 23 item 2 cut, measured side by side in one run:
CPU time of the loop thread per request for the access log line and the request-duration
metric, before (a ``logging`` record formatted, written and flushed per request; ``labels()``
per request) and after (eventbus.access_log: one f-string per request, one write per loop
turn; the histogram child bound once, eventbus.http.RequestMetrics).

    .venv/bin/python -m benchmarks.request_overhead [--requests 20000] [--repeats 5]

Prints µs of loop-thread CPU per request (the minimum of the repeats) and the ratios. The
log goes to a pipe that a thread drains, as journald's socket takes the service's stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable

from eventbus import access_log, metrics
from eventbus.http import RequestMetrics

FORMAT = "%(asctime)s %(levelname)s (%(processName)s %(process)d) %(name)s: %(message)s"
PER_TURN = 16  # requests a busy loop answers per turn (wrk -c16)


def drained_stream() -> tuple[object, threading.Thread]:
    read_fd, write_fd = os.pipe()

    def drain() -> None:
        while os.read(read_fd, 1 << 16):
            pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return os.fdopen(write_fd, "w", buffering=1), thread


def service_logger(name: str) -> logging.Logger:
    stream, _thread = drained_stream()
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.Logger(name, logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def old_way(logger: logging.Logger) -> Callable[[int], None]:
    def request(i: int) -> None:
        logger.info("%d %s %s (%s) %.2fms", 201, "POST", "/v1/events", "10.64.0.71", 1.87)
        metrics.REQUESTS.labels("POST", "/v1/events", str(201)).observe(0.00187)

    return request


def new_way(logger: logging.Logger) -> Callable[[int], None]:
    pending = access_log.lines_for(logger)
    bound = RequestMetrics()

    def request(i: int) -> None:
        pending.add(f"{201} {'POST'} {'/v1/events'} ({'10.64.0.71'}) {1.87:.2f}ms")
        bound.observe("POST", "/v1/events", 201, 0.00187)

    return request


async def measure(request: Callable[[int], None], count: int) -> float:
    """µs of this thread's CPU per request, PER_TURN requests per loop turn."""
    started = time.thread_time()
    for turn in range(count // PER_TURN):
        for i in range(PER_TURN):
            request(turn * PER_TURN + i)
        await asyncio.sleep(0)  # the end of a loop turn: the access lines go out here
    await asyncio.sleep(0)
    return (time.thread_time() - started) / count * 1e6


async def main_async(requests: int, repeats: int) -> None:
    old = old_way(service_logger("bench.old"))
    new = new_way(service_logger("bench.new"))
    best = {"before": float("inf"), "after": float("inf")}
    for _repeat in range(repeats):  # interleaved, so that drift hits both alike
        best["before"] = min(best["before"], await measure(old, requests))
        best["after"] = min(best["after"], await measure(new, requests))
    print(f"requests per repeat: {requests}, repeats: {repeats}, {PER_TURN} requests per loop turn")
    print(f"access log line + request metric, before: {best['before']:6.2f} µs/request")
    print(f"access log line + request metric, after:  {best['after']:6.2f} µs/request")
    print(f"after / before: {best['after'] / best['before']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main_async(args.requests, args.repeats))


if __name__ == "__main__":
    main()
