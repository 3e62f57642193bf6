"""Run playbooks on the lab while clients post events to both datacenters, then count.

    lab_under_load.py [--up] [--converge] --playbook eventplatform.eventbus.rolling_restart
        [-e k=v]... [--playbook "eventplatform.eventbus.reboot -l kafka1001.eqiad.wmnet"]...

0. Build the collection's tarball and install it (scripts/install_collection.py): the
   playbooks run from that installed copy, by FQCN, as a user of the collection runs them.
1. ``--up``: bring the lab up (scripts/lab.py up; a no-op when it is up), ``--converge``:
   converge it with eventplatform.eventbus.site.
2. Start the load generator (scripts/loadgen.py) against every service address of the lab
   inventory and let it warm up.
3. Run each --playbook in turn (a playbook path, then any ansible-playbook arguments of its
   own; -e extra vars go to all), each writing its per-host step times; stop at a failure.
4. Stop the load, consume ``<dc>.test.event`` in each datacenter and compare: every event the
   clients got a 201 for must be in Kafka.
5. Print the report (events sent, acknowledged, found in Kafka, lost, failed requests; each
   playbook's exit code, duration and per-host step times) and write it as JSON (--report).

Exits 3 when a playbook failed, a request failed, or an acknowledged event is lost; 2 when
the lab could not be brought up or read (one line says why).
Needs root (the lab) and the controller environment (make venv).
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from eventbus_lab import playbooks, remote
from eventbus_lab.inventory import Lab, LabError, load

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUILD = REPO / "build" / "lab"


@functools.cache
def lab() -> Lab:
    """The one model of the lab (lab/eventbus_lab), read once."""
    return load()


class LabRunError(Exception):
    """The run could not go on; the message says what to do."""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_playbook(playbook: str, extra: list[str], report: Path) -> tuple[int, float]:
    args = [*shlex.split(playbook)]
    for item in [*extra, f"runbook_report_file={report}"]:
        args += ["-e", item]
    say(f"running {shlex.join(args)}")
    started = time.monotonic()
    code = playbooks.playbook(lab(), *args, capture=False).returncode
    return code, time.monotonic() - started


def ids_in_kafka(dc: str, topic: str) -> set[str]:
    try:
        return set(remote.ids_in_kafka(lab(), dc, topic))
    except (LabError, ValueError) as err:
        raise LabRunError(f"could not read {topic} in {dc}: {err}") from None


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except (LabRunError, LabError) as err:
        print(f"lab_under_load: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab_under_load: interrupted", file=sys.stderr)
        return 130


def run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--up", action="store_true", help="bring the lab up first")
    parser.add_argument(
        "--converge", action="store_true", help="converge with eventplatform.eventbus.site first"
    )
    parser.add_argument("--playbook", action="append", required=True)
    parser.add_argument("-e", "--extra-vars", action="append", default=[])
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s per datacenter")
    parser.add_argument("--report", type=Path, default=BUILD / "report.json")
    args = parser.parse_args(argv)
    BUILD.mkdir(parents=True, exist_ok=True)

    if playbooks.install_collection().returncode:
        raise LabRunError("the collection could not be built and installed (see above)")
    say(f"collection installed from its tarball into {playbooks.COLLECTIONS}")
    if args.up:
        up = subprocess.run([sys.executable, str(REPO / "scripts" / "lab.py"), "up"], check=False)
        if up.returncode:
            raise LabRunError("the lab did not come up (see the line above); nothing was run")
    if args.converge:
        code, seconds = run_playbook("eventplatform.eventbus.site", [], BUILD / "site.json")
        if code:
            raise LabRunError(
                f"eventplatform.eventbus.site failed (exit {code}, see above); "
                "the load was not started"
            )
        say(f"lab converged in {seconds:.0f}s")

    port = lab().settings["eventbus_port"]
    targets = {dc: f"{lab().service_address(dc)}:{port}" for dc in lab().datacenters}
    load_report = BUILD / "load.json"
    load = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "loadgen.py"),
            *(f"--target={dc}={address}" for dc, address in targets.items()),
            f"--rate={args.rate}",
            f"--output={load_report}",
        ]
    )
    say(f"load: {args.rate:.0f} events/s to each of {', '.join(targets.values())}")
    time.sleep(5)
    runs = []
    for index, playbook in enumerate(args.playbook):
        step_report = BUILD / f"{index}-{shlex.split(playbook)[0].rsplit('.', 1)[-1]}.json"
        step_report.unlink(missing_ok=True)
        code, seconds = run_playbook(playbook, args.extra_vars, step_report)
        steps = json.loads(step_report.read_text()) if step_report.exists() else {}
        runs.append({"playbook": playbook, "exit": code, "seconds": round(seconds, 1), **steps})
        if code:
            break
    time.sleep(3)
    load.send_signal(signal.SIGTERM)
    load.wait(120)
    try:
        clients = json.loads(load_report.read_text())["targets"]
    except (OSError, ValueError, KeyError) as err:
        raise LabRunError(
            f"the load generator left no report ({err}); see its output above"
        ) from None

    report: dict = {"playbooks": runs, "datacenters": {}}
    for dc, seen in clients.items():
        found = ids_in_kafka(dc, f"{dc}.test.event")
        acked = set(seen["acknowledged"])
        report["datacenters"][dc] = {
            "sent": seen["sent"],
            "acknowledged": len(acked),
            "found_in_kafka": len(acked & found),
            "lost": sorted(acked - found),
            "failed_requests": seen["failures"],
        }
    args.report.write_text(json.dumps(report, indent=2))
    print_report(report)
    lost = sum(len(d["lost"]) for d in report["datacenters"].values())
    failed = sum(len(d["failed_requests"]) for d in report["datacenters"].values())
    return 3 if lost or failed or any(run["exit"] for run in runs) else 0


def print_report(report: dict) -> None:
    print("\n== Report ==")
    for run in report["playbooks"]:
        status = "ok" if run["exit"] == 0 else f"FAILED (exit {run['exit']})"
        print(f"{run['playbook']}: {status} in {run['seconds']}s")
        for host, steps in run.get("hosts", {}).items():
            times = ", ".join(f"{s['step']} {s['seconds']}s" for s in steps) or "not run"
            total = sum(s["seconds"] for s in steps)
            print(f"  {host}: {times}" + (f" = {total:.1f}s" if steps else ""))
    for dc, counts in report["datacenters"].items():
        print(
            f"{dc}: sent {counts['sent']}, acknowledged {counts['acknowledged']}, "
            f"found in Kafka {counts['found_in_kafka']}, lost {len(counts['lost'])}, "
            f"failed requests {len(counts['failed_requests'])}"
        )
        for failure in counts["failed_requests"][:5]:
            print(f"  failed: {failure}")


if __name__ == "__main__":
    sys.exit(main())
