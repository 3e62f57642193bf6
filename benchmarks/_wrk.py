"""Load from ``wrk``: POST one body over keep-alive connections, parse what wrk reports."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class WrkResult:
    rps: float
    mean_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int


def _ms(value: str, unit: str) -> float:
    return float(value) * UNITS_MS[unit]


def parse(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    mean = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.MULTILINE)
    if not (rps and mean and p99):
        raise RuntimeError(f"cannot read wrk's report:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        mean_ms=_ms(*mean.groups()),
        p99_ms=_ms(*p99.groups()),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def wrk(
    url: str, body: bytes, seconds: int, workdir: Path, connections: int = 16, threads: int = 2
) -> WrkResult:
    """POST ``body`` to ``url`` for ``seconds`` from ``connections`` keep-alive connections."""
    body_file = workdir / f"body-{len(body)}.json"
    body_file.write_bytes(body)
    script = workdir / f"post-{len(body)}.lua"
    script.write_text(POST_SCRIPT.replace("{body}", str(body_file)))
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse(out)
