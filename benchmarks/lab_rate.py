"""Benchmark: each datacenter's service address in the lab, as the runbook measured it in 2016.

For each datacenter (its load balancer, two hosts, each host's workers, its Kafka cluster):
the runbook's ``ab -n 10000 -c 16`` of single events (a connection per request, as in
2016), then ``wrk -c16`` of single events and of 100-event batches for ``--seconds``;
requests/s, events/s, failures and non-2xx answers, and the ratio to the 2016 figure (4425
requests/s with ab, 2 hosts x 8 processes). The lab must be up and converged
(``sudo make lab-restart`` brings it there; ``make lab-status``).

Run:  sudo .venv/bin/python -m benchmarks.lab_rate [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from eventbus_lab.inventory import LabError, load

from benchmarks._wrk import progress, wrk

RUNBOOK_2016_RPS = 4425.0


def event(dc: str, n: int = 0) -> dict:
    return {
        "$schema": "/test/event/1.0.0",
        "meta": {"topic": "test.event", "id": f"lab-rate-{dc}-{n}"},
        "test": "lab rate",
    }


def ab(url: str, body: Path, requests: int, concurrency: int) -> dict[str, float]:
    """The runbook's test: ``ab -n REQUESTS -c CONCURRENCY -p BODY -T application/json``."""
    out = subprocess.run(
        ["ab", "-q", "-n", str(requests), "-c", str(concurrency), "-p", str(body),
         "-T", "application/json", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def figure(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else 0.0

    return {
        "rps": figure(r"Requests per second:\s+([\d.]+)"),
        "mean_ms": figure(r"Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        "failed": figure(r"Failed requests:\s+(\d+)"),
        "non2xx": figure(r"Non-2xx responses:\s+(\d+)"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        lab = load()
    except LabError as err:
        print(f"lab_rate: {err}", file=sys.stderr)
        return 2
    port = lab.settings["eventbus_port"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lab-rate-") as tmp_name:
        tmp = Path(tmp_name)
        for dc in lab.datacenters:
            url = f"http://{lab.service_address(dc)}:{port}/v1/events"
            single = json.dumps(event(dc)).encode()
            batch = json.dumps([event(dc, n) for n in range(100)]).encode()
            body = tmp / f"{dc}.json"
            body.write_bytes(single)
            progress(f"{dc}: ab -n {args.requests} -c 16 (single events) on {url}")
            runbook = ab(url, body, args.requests, 16)
            progress(f"{dc}: wrk -c16, {args.seconds} s, single events")
            single_load = wrk(url, single, args.seconds, tmp)
            progress(f"{dc}: wrk -c16, {args.seconds} s, 100-event batches")
            batch_load = wrk(url, batch, args.seconds, tmp)
            rows.append(
                {
                    "dc": dc,
                    "ab": runbook,
                    "single": single_load.__dict__,
                    "batch": batch_load.__dict__,
                }
            )
    print(
        "| datacenter | ab -n 10000 -c 16: req/s | vs 2016 (4425) | failed / non-2xx "
        "| wrk single: req/s | p99 ms | wrk batches: events/s | p99 ms | wrk non-2xx |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        runbook, single, batch = row["ab"], row["single"], row["batch"]
        print(
            f"| {row['dc']} | {runbook['rps']:.0f} | {runbook['rps'] / RUNBOOK_2016_RPS:.2f} "
            f"| {runbook['failed']:.0f} / {runbook['non2xx']:.0f} | {single['rps']:.0f} "
            f"| {single['p99_ms']:.1f} | {batch['rps'] * 100:.0f} | {batch['p99_ms']:.1f} "
            f"| {single['non2xx'] + batch['non2xx'] + single['socket_errors']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
