"""Run playbooks on the lab while clients post events to both datacenters, then count.

    lab.py proof [--up] [--converge] --playbook eventplatform.eventbus.rolling_restart
        [-e k=v]... [--playbook "eventplatform.eventbus.reboot -l kafka1001.eqiad.wmnet"]...

0. Build the collection's tarball and install it (scripts/install_collection.py): the
   playbooks run from that installed copy, by FQCN, as a user of the collection runs them.
1. ``--up``: bring the lab up (lab.py up; a no-op when it is up), ``--converge``:
   converge it with eventplatform.eventbus.site.
2. Start the load generator (eventbus_lab.loadgen) against every service address of the lab
   inventory and let it warm up.
3. Run each --playbook in turn (a playbook path, then any ansible-playbook arguments of its
   own; -e extra vars go to all), each writing its per-host step times; stop at a failure.
4. Stop the load, consume ``<dc>.test.event`` in each datacenter and compare: every event the
   clients got a 201 for must be in Kafka.
5. Print the report (events sent, acknowledged, found in Kafka, lost, failed requests; each
   playbook's exit code, duration and per-host step times) and write it as JSON (--report).

Exits 3 when a playbook failed, a request failed, or an acknowledged event is lost or in Kafka
twice; 2 when the lab could not be brought up or read (one line says why).
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
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventbus_lab import cli, playbooks, remote
from eventbus_lab._run import progress as say
from eventbus_lab.inventory import REPO, Lab, LabError, load

BUILD = REPO / "build" / "lab"


@functools.cache
def lab() -> Lab:
    """The one model of the lab (lab/eventbus_lab), read once."""
    return load()


class LabRunError(Exception):
    """The run could not go on; the message says what to do."""


def run_playbook(
    playbook: str,
    extra: list[str],
    report: Path,
    watch: Callable[[str], None] | None = None,
    prefix: str = "",
) -> tuple[int, float, str]:
    """Run it with its output shown (each line after ``prefix``) and kept beside ``report``
    (.log), each line also given to ``watch``; its exit code, its duration and, when it
    failed, its last failure message."""
    args = [*shlex.split(playbook)]
    for item in [*extra, f"runbook_report_file={report}"]:
        args += ["-e", item]
    say(f"running {shlex.join(args)}")
    started = time.monotonic()
    output: list[str] = []
    with (
        report.with_suffix(".log").open("w") as kept,
        subprocess.Popen(
            playbooks.playbook_argv(lab(), *args),
            cwd=REPO,
            env=playbooks.ansible_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as running,
    ):
        assert running.stdout is not None
        for line in running.stdout:
            sys.stdout.write(prefix + line)
            kept.write(line)
            output.append(line)
            if watch is not None:
                watch(line)
    code = running.returncode
    failure = playbooks.failure_message("".join(output[-400:])) if code else ""
    return code, time.monotonic() - started, failure


def run_recorded(
    playbook: str,
    extra: list[str],
    step_report: Path,
    watch: Callable[[str], None] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """:func:`run_playbook`, and what it recorded (its runbook report): one entry of the
    proof's ``playbooks``."""
    step_report.unlink(missing_ok=True)
    started_at = time.time()
    code, seconds, failure = run_playbook(playbook, extra, step_report, watch, prefix)
    steps = json.loads(step_report.read_text()) if step_report.exists() else {}
    run = {"playbook": playbook, "exit": code, "seconds": round(seconds, 1),
           "started_at": started_at, "ended_at": time.time(), **steps}  # fmt: skip
    if failure:
        run["failure"] = failure
    return run


def limited_to(playbook: str, dc: str) -> str | None:
    """The playbook's command line limited to datacenter ``dc``: its own ``-l`` narrowed
    (``-l A,B`` becomes ``-l A,B,&dc``), or ``-l dc``; None when its ``-l`` names lab hosts
    and none of them is in ``dc``."""
    args = shlex.split(playbook)
    for flag in ("-l", "--limit"):
        if flag in args[:-1]:
            at = args.index(flag) + 1
            names = args[at].split(",")
            hosts = [lab().by_name.get(name) for name in names]
            if all(hosts) and not any(h.datacenter == dc for h in hosts if h is not None):
                return None
            args[at] = f"{args[at]},&{dc}"  # commas only: "a,b:&dc" would read as a,(b:&dc)
            return shlex.join(args)
    return shlex.join([*args, "-l", dc])


def run_per_datacenter(
    playbook: str,
    extra: list[str],
    step_report: Path,
    killer: BrokerKiller | None,
    watch: Callable[[str], None] | None,
) -> dict[str, Any]:
    """The playbook once per datacenter, side by side (``-l <dc>``); one entry of the proof's
    ``playbooks`` with every host's steps, exit 0 only if each run exited 0, and each run's
    own record under ``runs``. The broker killer watches the run of its host's datacenter."""
    limited = {dc: limited_to(playbook, dc) for dc in lab().datacenters}
    results: dict[str, dict[str, Any]] = {}

    def one(dc: str, command: str) -> None:
        own_watch = watch if killer is not None and killer.datacenter == dc else None
        report = step_report.with_name(f"{step_report.stem}-{dc}.json")
        results[dc] = run_recorded(command, extra, report, own_watch, prefix=f"[{dc}] ")

    threads = [
        threading.Thread(target=one, args=(dc, command), daemon=True)
        for dc, command in limited.items()
        if command is not None
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged: dict[str, Any] = {
        "playbook": playbook,
        "exit": next((r["exit"] for r in results.values() if r["exit"]), 0),
        "started_at": min(r["started_at"] for r in results.values()),
        "ended_at": max(r["ended_at"] for r in results.values()),
        "runs": results,
    }
    merged["seconds"] = round(merged["ended_at"] - merged["started_at"], 1)
    for key in ("hosts", "counters", "silences"):
        merged[key] = {k: v for r in results.values() for k, v in r.get(key, {}).items()}
    failures = [f"{dc}: {r['failure']}" for dc, r in results.items() if r.get("failure")]
    if failures:
        merged["failure"] = "\n".join(failures)
    return merged


def units_started() -> dict[str, dict[str, str]]:
    """When each Kafka node's kafka and each eventbus host's service last started: a run's
    record says which it restarted (a converge of the running lab restarts none)."""
    hosts = sorted({*lab().eventbus, *lab().groups.get("conf", [])})
    return {host: remote.units_started_at(lab(), host) for host in hosts}


def logged_for_replay(dc: str) -> set[str]:
    ids: set[str] = set()
    for name in lab().eventbus:
        if lab().host(name).datacenter == dc:
            ids |= remote.failed_event_ids(lab(), name)
    return ids


def ids_in_kafka(dc: str, topic: str) -> list[str]:
    try:
        return remote.ids_in_kafka(lab(), dc, topic)
    except (LabError, ValueError) as err:
        raise LabRunError(f"could not read {topic} in {dc}: {err}") from None


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except (LabRunError, LabError) as err:
        print(f"lab proof: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab proof: interrupted", file=sys.stderr)
        return 130


def run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--up", action="store_true", help="bring the lab up first")
    parser.add_argument(
        "--converge", action="store_true", help="converge with eventplatform.eventbus.site first"
    )
    parser.add_argument("--playbook", action="append", required=True)
    parser.add_argument("-e", "--extra-vars", action="append", default=[])
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s per datacenter")
    parser.add_argument("--clients", type=int, default=16, help="connections per datacenter")
    parser.add_argument(
        "--kill-broker",
        metavar="HOST:SECONDS[@STEP]",
        help="SIGKILL HOST's Kafka broker SECONDS after the first playbook to reach STEP does "
        "(e.g. restart; default: its start); systemd restarts the broker",
    )
    parser.add_argument(
        "--per-datacenter",
        action="store_true",
        help="run each playbook once per datacenter (-l <dc>), the runs side by side, as two "
        "operators would: each takes its own pool's or Kafka cluster's lock",
    )
    parser.add_argument("--report", type=Path, default=BUILD / "report.json")
    args = parser.parse_args(argv)
    BUILD.mkdir(parents=True, exist_ok=True)

    if playbooks.install_collection().returncode:
        raise LabRunError("the collection could not be built and installed (see above)")
    say(f"collection installed from its tarball into {playbooks.COLLECTIONS}")
    if args.up:
        cli.up(lab())
    if args.converge:
        code, seconds, _failure = run_playbook(
            "eventplatform.eventbus.site", [], BUILD / "site.json"
        )
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
            "-m",
            "eventbus_lab.loadgen",
            *(f"--target={dc}={address}" for dc, address in targets.items()),
            f"--rate={args.rate}",
            f"--clients={args.clients}",
            f"--output={load_report}",
        ]
    )
    say(f"load: {args.rate:.0f} events/s to each of {', '.join(targets.values())}")
    time.sleep(5)
    cpu = CpuMeter()
    killer = BrokerKiller(args.kill_broker) if args.kill_broker else None
    watcher = AlertWatcher(alertmanagers())
    watcher.start()
    runs = []
    for index, playbook in enumerate(args.playbook):
        step_report = BUILD / f"{index}-{shlex.split(playbook)[0].rsplit('.', 1)[-1]}.json"
        # the killer watches each playbook in turn until one reaches its step
        watch = killer.watch if killer is not None and killer.marker else None
        before = units_started()
        if args.per_datacenter:
            runs.append(run_per_datacenter(playbook, args.extra_vars, step_report, killer, watch))
        else:
            runs.append(run_recorded(playbook, args.extra_vars, step_report, watch))
        after = units_started()
        runs[-1]["restarted"] = sorted(
            f"{host}/{unit}" for host, units in after.items() for unit, at in units.items()
            if at != before.get(host, {}).get(unit)
        )  # fmt: skip
        if runs[-1]["exit"]:
            break
    time.sleep(3)
    load.send_signal(signal.SIGTERM)
    load.wait(120)
    busy = cpu.busy_percent()
    alerts = watcher.stop()
    if killer is not None:
        killer.cancel()
    try:
        clients = json.loads(load_report.read_text())["targets"]
    except (OSError, ValueError, KeyError) as err:
        raise LabRunError(
            f"the load generator left no report ({err}); see its output above"
        ) from None

    report: dict = {
        "playbooks": runs,
        "rate": args.rate,
        "cpu_busy_percent": busy,
        "killed_broker": KILLED,
        "alerts": alerts,
        "silences_left": active_silences(alertmanagers()) if alertmanagers() else [],
        "datacenters": {},
    }
    for dc, seen in clients.items():
        in_kafka = Counter(ids_in_kafka(dc, f"{dc}.test.event"))
        acked = set(seen["acknowledged"])
        report["datacenters"][dc] = {
            "sent": seen["sent"],
            "acknowledged": len(acked),
            "found_in_kafka": sum(1 for i in acked if in_kafka[i]),
            "lost": sorted(i for i in acked if not in_kafka[i]),
            "duplicated": sorted(i for i in acked if in_kafka[i] > 1),
            "failed_requests": seen["failures"],
            # the events of its 503 answers that the service logged for replay
            "refused_logged": sorted(set(seen["refused"]) & logged_for_replay(dc))
            if seen["refused"]
            else [],
            "p99_ms": seen.get("p99_ms"),
        }
    args.report.write_text(json.dumps(report, indent=2))
    print_report(report)
    wrong = sum(
        len(d["lost"]) + len(d["duplicated"]) + len(d["failed_requests"])
        for d in report["datacenters"].values()
    )
    return 3 if wrong or any(run["exit"] for run in runs) else 0


KILLED: dict[str, Any] = {}


class CpuMeter:
    """The machine's CPU use (all cores, every process: the lab, the load, the controller)
    from now to ``busy_percent()``, from /proc/stat."""

    def __init__(self) -> None:
        self.start = self.read()

    @staticmethod
    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    def busy_percent(self) -> float:
        total, idle = self.read()
        spent, rested = total - self.start[0], idle - self.start[1]
        return round(100.0 * (spent - rested) / spent, 1) if spent else 0.0


class AlertWatcher(threading.Thread):
    """Polls each datacenter's Alertmanager while the playbooks run: every alert seen, with
    whether it was silenced (suppressed) or not - the proof that maintenance is silenced."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            for url in self.urls:
                try:
                    request = remote.alertmanager_request(lab(), f"{url}/api/v2/alerts")
                    with urllib.request.urlopen(request, timeout=3) as answer:
                        alerts = json.load(answer)
                except (OSError, ValueError):
                    continue
                for alert in alerts:
                    labels = alert.get("labels", {})
                    key = (labels.get("alertname", ""), labels.get("instance", ""),
                           alert.get("status", {}).get("state", ""))  # fmt: skip
                    self.seen.setdefault(key, {
                        "alertname": key[0], "instance": key[1], "state": key[2],
                        "silenced_by": alert.get("status", {}).get("silencedBy", []),
                        "at": time.time(),
                    })  # fmt: skip

    def stop(self) -> list[dict[str, Any]]:
        self.halt.set()
        self.join(10)
        return list(self.seen.values())


def alertmanagers() -> list[str]:
    """Each datacenter's Alertmanager, from the lab's inventory (eventbus_alertmanager_url)."""
    found = []
    for dc in lab().datacenters:
        path = lab().inventory / "group_vars" / f"{dc}.yml"
        for line in path.read_text().splitlines():
            if line.startswith("eventbus_alertmanager_url:"):
                found.append(line.split(":", 1)[1].split("#")[0].strip())
    return found


def active_silences(urls: list[str]) -> list[dict[str, Any]]:
    active = []
    for url in urls:
        request = remote.alertmanager_request(lab(), f"{url}/api/v2/silences")
        with urllib.request.urlopen(request, timeout=5) as answer:
            active += [s for s in json.load(answer) if s["status"]["state"] == "active"]
    return active


class BrokerKiller:
    """SIGKILL a host's Kafka broker SECONDS after the output of a playbook (the first that
    does) shows ``Step: STEP`` (HOST:SECONDS@STEP; the first host of a serial run reaches it
    first), or SECONDS after the first playbook started (HOST:SECONDS); systemd starts the
    broker again."""

    def __init__(self, spec: str) -> None:
        timing, _at, step = spec.partition("@")
        self.host, _sep, seconds = timing.rpartition(":")
        if not self.host:
            raise LabRunError(f"--kill-broker {spec!r}: write HOST:SECONDS[@STEP]")
        self.datacenter = lab().host(self.host).datacenter
        self.marker = f"Step: {step}]" if step else ""
        self.timer = threading.Timer(float(seconds), kill_broker, args=(self.host,))
        self.timer.daemon = True
        if not self.marker:
            self.timer.start()

    def watch(self, line: str) -> None:
        """A line of the playbook's output: start the countdown at the step's marker."""
        if self.marker and self.marker in line and not self.timer.is_alive():
            KILLED.update(step_seen_at=time.time())
            self.timer.start()
            self.marker = ""

    def cancel(self) -> None:
        self.timer.cancel()


def kill_broker(host: str) -> None:
    try:
        # the broker's JVM, not the unit's cgroup: systemd starts it again (on-failure)
        remote.sh(lab(), host, 'kill -KILL "$(systemctl show --property MainPID --value kafka)"')
        KILLED.update(host=host, at=time.time())
        say(f"SIGKILLed Kafka on {host}")
    except LabError as err:
        KILLED.update(host=host, error=str(err))


def print_report(report: dict) -> None:
    print("\n== Report ==")
    for run in report["playbooks"]:
        status = "ok" if run["exit"] == 0 else f"FAILED (exit {run['exit']})"
        print(f"{run['playbook']}: {status} in {run['seconds']}s; restarted "
              f"{', '.join(run.get('restarted', [])) or 'nothing'}")  # fmt: skip
        if run.get("failure"):
            print(f"{run['playbook']}: {run['failure'][:1500]}")
        for host, steps in run.get("hosts", {}).items():
            times = ", ".join(f"{s['step']} {s['seconds']}s" for s in steps) or "not run"
            total = sum(s["seconds"] for s in steps)
            print(f"  {host}: {times}" + (f" = {total:.1f}s" if steps else ""))
    for dc, counts in report["datacenters"].items():
        print(
            f"{dc}: sent {counts['sent']}, acknowledged {counts['acknowledged']}, "
            f"found in Kafka {counts['found_in_kafka']}, lost {len(counts['lost'])}, "
            f"duplicated {len(counts['duplicated'])}, "
            f"failed requests {len(counts['failed_requests'])}, p99 {counts['p99_ms']} ms"
        )
        for failure in counts["failed_requests"][:5]:
            print(f"  failed: {failure}")
    extra = f"load {report['rate']:.0f} events/s per datacenter, CPU {report['cpu_busy_percent']}%"
    if report.get("killed_broker"):
        extra += f", Kafka SIGKILLed on {report['killed_broker'].get('host')}"
    print(extra)


if __name__ == "__main__":
    sys.exit(main())
