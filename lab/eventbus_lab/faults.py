"""The fault matrix of the rolling playbooks, on the lab: each fault is made, a playbook runs
into it, what it did is recorded, and the lab is put back. Every fault must end in a refusal
or a stop whose message names the host and the step, with nothing left out of its pool
silently.

    sudo make lab-faults          (the lab up and converged: make lab-restart first)
    lab.py faults [--only NAME ...] [--output build/lab/faults.json] [--markdown docs/faults.md]

Writes the matrix (scenario, expected, seen) as JSON and as the table of docs/faults.md.
Exits 1 when a scenario did not behave as expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventbus_lab import playbooks, remote
from eventbus_lab._run import progress as say
from eventbus_lab._run import wait_for
from eventbus_lab.inventory import REPO, Lab, LabError, load

BUILD = REPO / "build" / "lab"
HAPROXY_SOCKET = "/run/haproxy/admin.sock"


def run(lab: Lab, *args: str) -> dict[str, Any]:
    return playbooks.recorded(lab, *args, reason="fault matrix")


def in_background(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def started_since(mark: int) -> bool:
    """Whether a run wrote START to the operations log after ``mark``: its pre-flight passed."""
    return any(" START " in line for line in playbooks.log_since(mark))


def pool_state(lab: Lab, name: str) -> str:
    dc = lab.host(name).datacenter
    return remote.haproxy_status(lab, lab.loadbalancer(dc))[name]


def repool(lab: Lab, name: str) -> None:
    dc = lab.host(name).datacenter
    if dc == "eqiad":
        remote.confctl(lab, dc, "select", f"name={name}", "set/pooled=yes")
    else:
        remote.haproxy(lab, lab.loadbalancer(dc), f"set server eventbus/{name} state ready")
    wait_for(lambda: pool_state(lab, name) == "UP", 60, f"{name} back in its pool")


@contextlib.contextmanager
def background_load(lab: Lab, rate: float) -> Iterator[None]:
    """Events posted to every datacenter's service address while the matrix runs: the
    runbook's traffic step waits for the repooled host to get requests again."""
    port = lab.settings["eventbus_port"]
    targets = [f"--target={dc}={lab.service_address(dc)}:{port}" for dc in lab.datacenters]
    load = subprocess.Popen(
        [sys.executable, "-m", "eventbus_lab.loadgen", *targets, f"--rate={rate}",
         "--clients=4", f"--output={BUILD / 'faults-load.json'}"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    say(f"load: {rate:.0f} events/s to each datacenter's service address")
    try:
        time.sleep(3)
        yield
    finally:
        load.send_signal(signal.SIGTERM)
        load.wait(120)


@dataclass
class Scenario:
    name: str
    fault: str
    expected: str
    run: Callable[[Lab], dict[str, Any]]
    judge: Callable[[dict[str, Any]], bool]


# -- the scenarios -------------------------------------------------------------------------------
def etcd_down_during_depool(lab: Lab) -> dict[str, Any]:
    host, conf = "kafka1001.eqiad.wmnet", "conf1001.eqiad.wmnet"
    mark = playbooks.log_mark()

    def stop_etcd() -> None:
        wait_for(lambda: started_since(mark), 120, "the run's START")
        remote.sh(lab, conf, "systemctl stop etcd")

    killer = in_background(stop_etcd)
    try:
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", host)
    finally:
        killer.join(130)
        remote.sh(lab, conf, "systemctl start etcd")
        time.sleep(3)
        remote.release_run_locks(lab)
    seen["pool_after"] = pool_state(lab, host)
    if seen["pool_after"] != "UP":
        repool(lab, host)
    return seen


def haproxy_socket_missing(lab: Lab) -> dict[str, Any]:
    host, lb = "kafka2001.codfw.wmnet", "conf2001.codfw.wmnet"
    remote.sh(lab, lb, f"mv {HAPROXY_SOCKET} {HAPROXY_SOCKET}.moved")
    try:
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", host)
    finally:
        remote.sh(lab, lb, f"mv {HAPROXY_SOCKET}.moved {HAPROXY_SOCKET}")
    seen["pool_after"] = pool_state(lab, host)
    return seen


def cut_when_depooled(lab: Lab, host: str, cut: Callable[[], None]) -> threading.Thread:
    def watch() -> None:
        wait_for(lambda: pool_state(lab, host).startswith(("DRAIN", "MAINT")), 120, "depool")
        cut()

    return in_background(watch)


def network_down_mid_run(lab: Lab) -> dict[str, Any]:
    host = "kafka2001.codfw.wmnet"
    namespace = lab.host(host).netns
    cutter = cut_when_depooled(lab, host, lambda: remote_link(namespace, up=False))
    try:
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", host)
    finally:
        cutter.join(130)
        remote_link(namespace, up=True)
    time.sleep(3)
    seen["pool_after"] = pool_state(lab, host)
    repool(lab, host)
    return seen


def remote_link(namespace: str, up: bool) -> None:
    subprocess.run(["ip", "-n", namespace, "link", "set", "eth0", "up" if up else "down"],
                   check=True)  # fmt: skip


@contextlib.contextmanager
def ssh_dropped_once_depooled(lab: Lab, host: str, target: str) -> Iterator[None]:
    """Port 22 of ``target`` dropped (nftables in its namespace) once ``host`` is depooled,
    for the duration of the block; the rule removed after it."""
    block = ["ip", "netns", "exec", lab.host(target).netns, "nft"]
    cutter = cut_when_depooled(lab, host, lambda: subprocess.run(
        [*block, "-f", "-"], input="table inet faultssh { chain in { type filter hook input "
        "priority 0; tcp dport 22 drop; }; }\n", text=True, check=True))  # fmt: skip
    try:
        yield
    finally:
        cutter.join(130)
        subprocess.run([*block, "delete", "table", "inet", "faultssh"], check=False)


def ssh_unreachable_after_depool(lab: Lab) -> dict[str, Any]:
    host = "kafka2002.codfw.wmnet"
    with ssh_dropped_once_depooled(lab, host, host):
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", host)
    seen["pool_after"] = pool_state(lab, host)
    if seen["pool_after"] != "UP":
        repool(lab, host)
    return seen


def two_concurrent_runs(lab: Lab) -> dict[str, Any]:
    mark = playbooks.log_mark()
    first: dict[str, Any] = {}
    thread = in_background(lambda: first.update(
        run(lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad")))  # fmt: skip
    wait_for(lambda: started_since(mark), 120, "the first run's START")
    seen = run(lab, "eventplatform.eventbus.reboot", "-l", "kafka1002.eqiad.wmnet")
    thread.join(600)
    seen["first_rc"] = first.get("rc")
    return seen


def operator_depools_another(lab: Lab) -> dict[str, Any]:
    first, other = "kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet"

    def operator() -> None:
        wait_for(lambda: pool_state(lab, first).startswith("DRAIN"), 120, f"{first} depooled")
        remote.confctl(lab, "eqiad", "select", f"name={other}", "set/pooled=no")

    thread = in_background(operator)
    try:
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad")
    finally:
        thread.join(130)
    seen["other_after"] = remote.confctl_get(lab, other)["pooled"]
    seen["first_after"] = pool_state(lab, first)
    repool(lab, other)
    return seen


def under_replicated(lab: Lab) -> dict[str, Any]:
    stopped = "kafka2002.codfw.wmnet"
    remote.sh(lab, stopped, "systemctl stop kafka")
    try:
        time.sleep(15)
        seen = run(lab, "eventplatform.eventbus.reboot", "-l", "kafka2001.codfw.wmnet")
    finally:
        remote.sh(lab, stopped, "systemctl start kafka")
    time.sleep(20)
    return seen


def broker_not_safe_to_stop(lab: Lab) -> dict[str, Any]:
    voter = "conf2001.codfw.wmnet"  # one of three voters down: a majority left, no URP
    remote.sh(lab, voter, "systemctl stop kafka")
    try:
        time.sleep(5)
        seen = run(lab, "eventplatform.eventbus.reboot", "-l", "kafka2001.codfw.wmnet")
    finally:
        remote.sh(lab, voter, "systemctl start kafka")
    time.sleep(15)
    return seen


def interrupted_run_resumed(lab: Lab) -> dict[str, Any]:
    first, second = "kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet"
    argv = playbooks.playbook_argv(
        lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad", reason="fault matrix"
    )
    say(f"ansible-playbook {' '.join(argv[5:])}, killed once {second} is depooled")
    cut = subprocess.Popen(argv, cwd=REPO, env=playbooks.ansible_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: pool_state(lab, second).startswith(("DRAIN", "MAINT")), 600,
                 f"{second} depooled by the first run")  # fmt: skip
    finally:
        os.killpg(cut.pid, signal.SIGKILL)  # the controller is lost: nothing runs its rescue
        cut.wait(30)
    seen: dict[str, Any] = {"left_by_the_cut": pool_state(lab, second)}
    mark = playbooks.log_mark()
    seen.update(run(lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad",
                    "-e", "runbook_resume=true"))  # fmt: skip
    lines = playbooks.log_since(mark)
    seen["start_line"] = next((line for line in lines if " START " in line), "")
    skipped = rf"{re.escape(first)}\S*: skipped \(done by the run this one resumed"
    seen["first_skipped"] = bool(re.search(skipped, seen["stdout"]))
    seen["second_after"] = pool_state(lab, second)
    failure = playbooks.failure_message(seen["stdout"]) if seen["rc"] else ""
    seen["message"] = f"{failure or seen['start_line'][-160:]}; {second} {seen['second_after']}"
    if seen["second_after"] != "UP":
        repool(lab, second)
    return seen


def pool_manager_unreachable(lab: Lab) -> dict[str, Any]:
    """codfw's pool is HAProxy's own, managed over SSH on its load balancer: port 22 of the
    load balancer dropped once kafka2001 is depooled, so its repool cannot be written."""
    host = "kafka2001.codfw.wmnet"
    with ssh_dropped_once_depooled(lab, host, lab.loadbalancer("codfw")):
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", host)
    seen["pool_after"] = pool_state(lab, host)
    if seen["pool_after"] != "UP":
        repool(lab, host)
    return seen


def other_member_fails_while_out(lab: Lab) -> dict[str, Any]:
    """codfw's pool of two: the service of kafka2002 stopped once kafka2001 is depooled for
    its rolling restart, which leaves the pool nobody to serve."""
    host, other = "kafka2001.codfw.wmnet", "kafka2002.codfw.wmnet"
    stopper = cut_when_depooled(lab, host, lambda: remote.sh(lab, other, "systemctl stop eventbus"))
    try:
        seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", host)
    finally:
        stopper.join(130)
        remote.sh(lab, other, "systemctl start eventbus")
    seen["pool_after"] = pool_state(lab, host)
    wait_for(lambda: pool_state(lab, other) == "UP", 120, f"{other} serving again")
    if seen["pool_after"] != "UP":
        repool(lab, host)
    return seen


def release_fails_test_event(lab: Lab) -> dict[str, Any]:
    """A deploy to kafka2002 of a release that refuses the deploy gate's test event."""
    host = "kafka2002.codfw.wmnet"
    source = REPO / "build" / "lab" / "eventbus-fails-test-event"
    version = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release_source.py"), str(source), "--post", "8",
         "--fails-test-event"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    links = "readlink /srv/deployment/eventbus/current"
    seen: dict[str, Any] = {
        "version": version,
        "current_before": remote.sh(lab, host, links).strip(),
    }
    release = ["-e", f"eventbus_version={version}", "-e", f"eventbus_source_dir={source}"]
    seen.update(run(lab, "eventplatform.eventbus.deploy", "-l", host, *release))
    seen["pool_after"] = pool_state(lab, host)
    seen["current_after"] = remote.sh(lab, host, links).strip()
    if seen["current_after"] != seen["current_before"]:  # put the lab back by hand
        back = shlex.quote(seen["current_before"])
        remote.sh(lab, host, f"ln -sfn {back} /srv/deployment/eventbus/current")
        remote.sh(lab, host, "systemctl restart eventbus")
    if pool_state(lab, host) != "UP":
        repool(lab, host)
    return seen


def reboot_during_kafka_roll(lab: Lab) -> dict[str, Any]:
    """A reboot of an eqiad host started while eqiad's Kafka roll runs: both stop brokers of
    one cluster, and the reboot holds the cluster's lock too."""
    mark = playbooks.log_mark()
    roll: dict[str, Any] = {}
    thread = in_background(lambda: roll.update(
        run(lab, "eventplatform.eventbus.kafka_rolling_restart", "-l", "eqiad")))  # fmt: skip
    wait_for(lambda: started_since(mark), 180, "the Kafka roll's START")
    seen = run(lab, "eventplatform.eventbus.reboot", "-l", "kafka1002.eqiad.wmnet")
    thread.join(900)
    seen["roll_rc"] = roll.get("rc")
    return seen


def resume_after_operator_depool(lab: Lab) -> dict[str, Any]:
    """The controller's rolling restart of eqiad SIGKILLed once kafka1002 is depooled; an
    operator then depools kafka1002 with confctl (the same state, another write); the run is
    resumed."""
    second = "kafka1002.eqiad.wmnet"
    argv = playbooks.playbook_argv(
        lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad", reason="fault matrix"
    )
    cut = subprocess.Popen(argv, cwd=REPO, env=playbooks.ansible_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: pool_state(lab, second).startswith(("DRAIN", "MAINT")), 600,
                 f"{second} depooled by the first run")  # fmt: skip
        time.sleep(8)  # past the run's record of what its depool wrote (the idle step runs)
    finally:
        os.killpg(cut.pid, signal.SIGKILL)
        cut.wait(30)
    remote.confctl(lab, "eqiad", "select", f"name={second}", "set/pooled=no")
    seen = run(lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad",
               "-e", "runbook_resume=true")  # fmt: skip
    seen["second_after"] = remote.confctl_get(lab, second)["pooled"]
    repool(lab, second)
    return seen


def says(*parts: str) -> Callable[[dict[str, Any]], bool]:
    def judge(seen: dict[str, Any]) -> bool:
        message = playbooks.failure_message(seen["stdout"])
        seen["message"] = message[:600]
        return seen["rc"] != 0 and all(p in message for p in parts)

    return judge


SCENARIOS = [
    Scenario(
        "etcd down during a depool",
        "conftool's etcd (conf1001) stopped as the rolling restart of kafka1001 starts",
        "stops at the first step that needs etcd (the lock's renewal), naming host and step; "
        "not left out silently",
        etcd_down_during_depool,
        says("kafka1001.eqiad.wmnet", "cannot reach etcd"),
    ),
    Scenario(
        "the HAProxy socket missing",
        "codfw's runtime API socket moved away before a rolling restart of kafka2001",
        "refused in pre-flight, nothing changed, the host still pooled",
        haproxy_socket_missing,
        lambda s: says("cannot reach the HAProxy runtime API")(s) and s["pool_after"] == "UP",
    ),
    Scenario(
        "a host's network down mid-run",
        "kafka2001's link set down once it is depooled",
        "stops at that host and step, LEFT DEPOOLED with the command to repool",
        network_down_mid_run,
        says("kafka2001.codfw.wmnet", "became unreachable", "LEFT DEPOOLED"),
    ),
    Scenario(
        "a host unreachable over SSH after its depool",
        "port 22 of kafka2002 dropped once it is depooled (the service still answers)",
        "stops at that step; the host, healthy, is repooled and the message says so",
        ssh_unreachable_after_depool,
        says("kafka2002.codfw.wmnet", "became unreachable", "was repooled"),
    ),
    Scenario(
        "two concurrent runs",
        "a reboot of kafka1002 started while a rolling restart of eqiad runs",
        "the second refused in pre-flight, naming holder, playbook, reason and age",
        two_concurrent_runs,
        lambda s: (
            says("held by", "running rolling restart", "fault matrix", "since")(s)
            and s["first_rc"] == 0
        ),
    ),
    Scenario(
        "an operator depools another host mid-run",
        "kafka1002 depooled with confctl while the run works on kafka1001",
        "the run stops at kafka1002's depool and leaves it alone (not repooled)",
        operator_depools_another,
        lambda s: (
            says("kafka1002.eqiad.wmnet", "by someone else")(s)
            and s["other_after"] == "no"
            and s["first_after"] == "UP"
        ),
    ),
    Scenario(
        "an interrupted run is resumed",
        "the controller's rolling restart of eqiad SIGKILLed once kafka1002 is depooled, then "
        "the same run again with runbook_resume=true",
        "the new run resumes: kafka1001 (done) skipped, kafka1002 taken through the cycle and "
        "repooled",
        interrupted_run_resumed,
        lambda s: (
            s["rc"] == 0
            and s["left_by_the_cut"].startswith(("DRAIN", "MAINT"))
            and "resuming" in s["start_line"]
            and s["first_skipped"]
            and s["second_after"] == "UP"
        ),
    ),
    Scenario(
        "an unreachable pool manager",
        "port 22 of codfw's load balancer (its pool manager) dropped once kafka2001 is depooled",
        "the repool fails, naming the pool manager; the message says the member's state "
        "cannot be read, never that it was repooled; no END PASS",
        pool_manager_unreachable,
        lambda s: (
            says("kafka2001.codfw.wmnet", "pool manager", "unreachable")(s)
            and "was repooled" not in playbooks.failure_message(s["stdout"])
        ),
    ),
    Scenario(
        "the pool's other member fails while a host is out",
        "kafka2002's service stopped once kafka2001 is depooled for its rolling restart "
        "(codfw's pool of two would serve nobody)",
        "the pool watcher repools kafka2001 at once (healthy); the run stops, saying the pool "
        "fell below its threshold and naming the member that stopped serving",
        other_member_fails_while_out,
        lambda s: (
            says("fell below its threshold", "kafka2002.codfw.wmnet", "repooled kafka2001")(s)
            and s["pool_after"] == "UP"
        ),
    ),
    Scenario(
        "a deploy whose release fails its test event",
        "a deploy of kafka2002 to a release that refuses the deploy gate's test event",
        "the run stops at the host's health step and never repools it on that release: the "
        "rescue switches it back to its previous release, and repools it once that passes",
        release_fails_test_event,
        lambda s: (
            says("kafka2002.codfw.wmnet", "'health'", "switched it back")(s)
            and s["current_after"] == s["current_before"]
            and s["pool_after"] == "UP"
        ),
    ),
    Scenario(
        "a reboot started while a Kafka roll runs",
        "a reboot of kafka1002 started once eqiad's Kafka roll has taken its lock",
        "the reboot refused in pre-flight: the cluster's lock is the roll's; the roll ends",
        reboot_during_kafka_roll,
        lambda s: says("held by", "running kafka rolling restart")(s) and s["roll_rc"] == 0,
    ),
    Scenario(
        "a resume after an operator depooled the host in between",
        "the rolling restart of eqiad SIGKILLed once kafka1002 is depooled, kafka1002 depooled "
        "again with confctl, then the run resumed with runbook_resume=true",
        "the resumed run takes the depool for the operator's: it refuses kafka1002, which "
        "stays depooled",
        resume_after_operator_depool,
        lambda s: (
            says("kafka1002.eqiad.wmnet", "written again since")(s) and s["second_after"] == "no"
        ),
    ),
    Scenario(
        "a cluster with an under-replicated partition",
        "kafka2002's broker stopped, then a reboot of kafka2001",
        "refused in pre-flight: not healthy enough, nothing changed",
        under_replicated,
        says("not healthy enough", "Nothing was changed"),
    ),
    Scenario(
        "a broker not safe to stop",
        "conf2001's controller stopped (two of three voters left), then a reboot of kafka2001",
        "refused: the KRaft quorum would lose its majority",
        broker_not_safe_to_stop,
        says("not safe to stop", "lose its majority"),
    ),
]


def count_load_failures(results: list[dict[str, Any]], load_report: Path) -> None:
    """Each scenario's failed requests of the background load (by datacenter and answer):
    some faults cost requests whatever the playbook does (a broker cut off holds its
    partitions' leadership until its session times out; an operator's depool can empty a
    pool); none may be lost (a 503'd event is in the failed-events log)."""
    if not load_report.exists():
        return
    load = json.loads(load_report.read_text())
    targets = load["targets"]
    for record in results:
        if (
            not load["started"]
            <= record.get("started", 0)
            <= record.get("ended", 0)
            <= load["stopped"]
        ):
            continue  # kept from an earlier run (--only)
        counts: dict[str, int] = {}
        for dc, target in targets.items():
            for failure in target["failures"]:
                if record["started"] <= failure["at"] <= record["ended"]:
                    kind = failure["error"] if failure["error"].startswith("HTTP") else "error"
                    counts[f"{dc} {kind}"] = counts.get(f"{dc} {kind}", 0) + 1
        record["load_failures"] = counts


def markdown(results: list[dict[str, Any]]) -> str:
    rows = "\n".join(
        f"| {r['name']} | {r['fault']} | {r['expected']} | "
        f"{'as expected' if r['ok'] else 'NOT as expected'}: exit {r['rc']}, "
        f"{r.get('message', '').replace('|', '/')[:300]} | "
        f"{', '.join(f'{k}: {v}' for k, v in r.get('load_failures', {}).items()) or 'none'} |"
        for r in results
    )
    head = "| scenario | fault | expected | seen | requests failed meanwhile |\n"
    return head + "|---|---|---|---|---|\n" + rows + "\n"


def run_scenarios(lab: Lab, args: argparse.Namespace, earlier: dict[str, Any]) -> list[dict]:
    results: list[dict[str, Any]] = []
    for scenario in SCENARIOS:
        chosen = not args.only or any(part in scenario.name for part in args.only)
        if not chosen and scenario.name in earlier:
            results.append(earlier[scenario.name])
        if not chosen:
            continue
        say(f"scenario: {scenario.name}")
        record: dict[str, Any] = {"name": scenario.name, "fault": scenario.fault,
                                  "expected": scenario.expected}  # fmt: skip
        record["started"] = time.time()
        try:
            seen = scenario.run(lab)
            record["ok"] = scenario.judge(seen)
            record.update({k: v for k, v in seen.items() if k != "stdout"})
        except (LabError, OSError) as err:
            record.update(ok=False, rc=None, message=f"the scenario broke: {err}")
        record["ended"] = time.time()
        verdict = "as expected" if record["ok"] else "NOT AS EXPECTED"
        say(f"  {verdict}: {record.get('message', '')[:200]}")
        results.append(record)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--only", action="append", help="run the scenarios whose name contains this (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=BUILD / "faults.json")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s per datacenter")
    args = parser.parse_args(argv)
    try:
        lab = load()
    except LabError as err:
        print(f"lab faults: {err}", file=sys.stderr)
        return 2
    if playbooks.install_collection().returncode:
        print("lab faults: the collection could not be installed (see above)", file=sys.stderr)
        return 2
    # With --only, the other scenarios keep what their last run saw.
    earlier = {}
    if args.only and args.output.exists():
        earlier = {r["name"]: r for r in json.loads(args.output.read_text())}
    with background_load(lab, args.rate):
        results = run_scenarios(lab, args, earlier)
    count_load_failures(results, BUILD / "faults-load.json")
    args.output.write_text(json.dumps(results, indent=2))
    table = markdown(results)
    print(table)
    if args.markdown:
        text = args.markdown.read_text()
        start, end = "<!-- matrix -->\n", "<!-- /matrix -->"
        head, _sep, rest = text.partition(start)
        _old, _sep, tail = rest.partition(end)
        args.markdown.write_text(head + start + table + end + tail)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
