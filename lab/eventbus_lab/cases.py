"""The lab's failure and operator cases, run after the proof under load (molecule under_load's
side effect); each changes the lab, runs a playbook, records what it saw, and puts the lab
back. The scenario's verify step only reads what was recorded (build/lab/cases.json).

    lab.py cases [--output build/lab/cases.json] [--version-file build/lab/proof-version]

Cases (after_proof first: the lab as the proof under load left it; then an eqiad lane and a
codfw lane side by side; the rollback of both datacenters; the canary in eqiad beside check
mode in codfw; then an operator's depool, in both):
  after_proof      each host's version, release links, pool state; the rebooted hosts' boots
  broken_service   a host whose service cannot start after its restart stops the rolling
                   restart there (left depooled, the others untouched); repooled by hand after
  under_replicated an under-replicated partition makes the reboot refuse before anything
  replay           replay puts a produce failure into Kafka, and reports an invalid one
  kafka_downgrade  after the proof finalized Kafka 4.2.2, a converge with the old release is
                   refused before the node's link or its running Kafka change
  check_mode       the rolling restart in check mode changes nothing (codfw)
  operator_depool  a host an operator depooled is refused, or with runbook_skip_depooled left
                   alone (and not repooled)
  rollback         a rollback switches every host back to its previous release (a run per
                   datacenter, side by side)
  canary           a deploy (eqiad) of a release that refuses valid events: its canary is
                   rolled back by itself, repooled, and no other host is touched
  install_fails    a deploy whose release cannot be built stops before any host is
                   depooled, writes END FAIL, and leaves no run lock behind; a rollback
                   refused for want of a previous release takes no lock either

Exits 0 once every case ran (whatever it saw); 2 when the lab could not be used.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventbus_lab import playbooks, remote
from eventbus_lab._run import progress as say
from eventbus_lab._run import wait_for
from eventbus_lab.inventory import RELEASE_PYTHON, REPO, Lab, LabError, load

BUILD = REPO / "build" / "lab"
FAILED_LOG = "/srv/log/eventbus/failed_events.log"


def run(lab: Lab, *args: str) -> dict[str, Any]:
    return playbooks.recorded(lab, *args)


def started(lab: Lab, names: list[str]) -> dict[str, str]:
    return {name: remote.service_started_at(lab, name) for name in names}


def in_sync(lab: Lab, dc: str) -> bool:
    described = remote.sh(lab, lab.brokers(dc)[0], "kafka topic --describe")
    pairs = re.findall(r"Replicas: ([\d,]+)\s+Isr: ([\d,]+)", described)
    return bool(pairs) and all(sorted(r.split(",")) == sorted(i.split(",")) for r, i in pairs)


# -- the cases ----------------------------------------------------------------------------------
def after_proof(lab: Lab) -> dict[str, Any]:
    hosts = {}
    for name in lab.eventbus:
        dc = lab.host(name).datacenter
        hosts[name] = {
            "version": remote.openapi_version(lab, name),
            "current": remote.sh(lab, name, "readlink /srv/deployment/eventbus/current").strip(),
            "previous": remote.sh(lab, name, "readlink /srv/deployment/eventbus/previous").strip(),
            "conftool": remote.confctl_get(lab, name) if dc == "eqiad" else None,
            "haproxy": remote.haproxy_status(lab, lab.loadbalancer(dc))[name],
            "boots": len(remote.sh(lab, name, "journalctl --list-boots --no-pager").splitlines()),
        }
    kafka = {
        name: {"release": remote.running_kafka_release(lab, name),
               "current": remote.sh(lab, name, "readlink /opt/kafka/current").strip()}
        for name in [*lab.eventbus, *lab.loadbalancers]
    }  # fmt: skip
    metadata = {
        dc: remote.finalized_metadata_version(lab, lab.brokers(dc)[0]) for dc in lab.datacenters
    }
    return {"hosts": hosts, "certificates": certificates(lab), "kafka": kafka,
            "metadata_version": metadata}  # fmt: skip


# On a Kafka node: the serial of the certificate it serves on its TLS port (broker: the
# clients'; controller-only: the controllers'), and of the one on disk with its notBefore.
CERTIFICATES = r"""
cd /etc/kafka/tls
served=$(openssl s_client -connect "$2:$1" -cert node.pem -key node.key -CAfile ca.pem \
  </dev/null 2>/dev/null | openssl x509 -noout -serial)
disk=$(openssl x509 -in /etc/kafka/tls/node.pem -noout -serial)
since=$(date -d "$(openssl x509 -in /etc/kafka/tls/node.pem -noout -startdate | cut -d= -f2)" +%s)
echo "$served $disk $since"
"""


def certificates(lab: Lab) -> dict[str, dict[str, Any]]:
    """Each Kafka node's served and on-disk certificates, after the proof renewed them (a
    converge under load) and rolled Kafka."""
    seen = {}
    for name in [*lab.eventbus, *lab.loadbalancers]:
        port = 9092 if name in lab.eventbus else 9093
        script = f"bash -c {shlex.quote(CERTIFICATES)} certificates {port} {name}"
        served, disk, since = remote.sh(lab, name, script).split()
        seen[name] = {"served": served, "disk": disk, "not_before": int(since)}
    return seen


def broken_service(lab: Lab) -> dict[str, Any]:
    broken = "kafka1001.eqiad.wmnet"  # the first host of the run
    others = [name for name in lab.eventbus if name != broken]
    seen: dict[str, Any] = {"host": broken, "started_before": started(lab, others)}
    remote.sh(lab, broken, "cp /etc/eventbus/config.yaml /root/config.yaml.good")
    remote.sh(lab, broken, "echo 'port: [' >> /etc/eventbus/config.yaml")  # cannot start
    try:
        # eqiad's run (the codfw cases run meanwhile): it stops at its first host
        seen["run"] = run(lab, "eventplatform.eventbus.rolling_restart", "-l", "eqiad",
                          "-e", "runbook_confirm_traffic=false")  # fmt: skip
        seen["started_after"] = started(lab, others)
        seen["conftool"] = remote.confctl_get(lab, broken)
        seen["haproxy"] = remote.haproxy_status(lab, lab.loadbalancer("eqiad"))[broken]
    finally:  # repair, then repool by hand as the message says
        remote.sh(lab, broken, "cp /root/config.yaml.good /etc/eventbus/config.yaml")
        remote.sh(lab, broken, "systemctl restart eventbus")
        remote.confctl(lab, "eqiad", "select", f"name={broken}", "set/pooled=yes")
    lb = lab.loadbalancer("eqiad")
    wait_for(lambda: remote.haproxy_status(lab, lb)[broken] == "UP", 60, f"{broken} repooled")
    return seen


def under_replicated(lab: Lab) -> dict[str, Any]:
    target, stopped = "kafka2001.codfw.wmnet", "kafka2002.codfw.wmnet"
    seen: dict[str, Any] = {
        "boot_before": remote.boot_id(lab, target),
        "started_before": remote.service_started_at(lab, target),
    }
    remote.sh(lab, stopped, "systemctl stop kafka")
    try:
        wait_for(lambda: not in_sync(lab, "codfw"), 60, "an under-replicated partition")
        seen["run"] = run(lab, "eventplatform.eventbus.reboot", "-l", target)
        seen["boot_after"] = remote.boot_id(lab, target)
        seen["started_after"] = remote.service_started_at(lab, target)
        seen["haproxy"] = remote.haproxy_status(lab, lab.loadbalancer("codfw"))[target]
    finally:
        remote.sh(lab, stopped, "systemctl start kafka")
    wait_for(lambda: in_sync(lab, "codfw"), 180, "codfw back in sync")
    return seen


def append_event_error(lab: Lab, name: str, raw_event: dict, code: str) -> None:
    """Append an EventError line to the host's failed-events log, as the service writes it,
    stamped a minute ago (a failure during an outage that is over: replay need not wait for
    the service's producer to give up on it)."""
    script = (
        "import json; from eventbus.failed_events import event_error; "
        f"r = event_error({json.dumps(raw_event)!r}, 'from the test', {code!r}); "
        "r['timestamp'] -= 60; print(json.dumps(r))"
    )
    inner = f"{RELEASE_PYTHON} -c {shlex.quote(script)} >> {FAILED_LOG}"
    remote.sh(lab, name, f"runuser -u eventbus -- sh -c {shlex.quote(inner)}")


def replay(lab: Lab) -> dict[str, Any]:
    name = "kafka2001.codfw.wmnet"
    event_id = f"replay-{uuid.uuid4()}"
    event = {"$schema": "/test/event/1.0.0", "meta": {"topic": "test.event", "id": event_id}}
    append_event_error(lab, name, event, "produce")  # as during a Kafka outage
    seen: dict[str, Any] = {"event_id": event_id}
    seen["run"] = run(lab, "eventplatform.eventbus.replay_failed_events", "-l", name)
    seen["in_kafka"] = event_id in remote.ids_in_kafka(lab, "codfw", "codfw.test.event")
    seen["logs"] = remote.sh(lab, name, "ls /srv/log/eventbus")
    invalid = {"$schema": "/test/event/1.0.0", "meta": {"topic": "test.event"}}  # no id
    append_event_error(lab, name, invalid, "validation")
    seen["again"] = run(lab, "eventplatform.eventbus.replay_failed_events", "-l", name)
    seen["logs_again"] = remote.sh(lab, name, "ls /srv/log/eventbus")
    return seen


def kafka_downgrade(lab: Lab) -> dict[str, Any]:
    """After the proof's upgrade was finalized, a converge with the old kafka_version (the
    role's default, as an inventory not yet updated would have it) is refused before the
    node's current link or its running Kafka change."""
    name = "kafka2001.codfw.wmnet"
    seen: dict[str, Any] = {
        "current_before": remote.sh(lab, name, "readlink /opt/kafka/current").strip(),
        "started_before": remote.units_started_at(lab, name, ("kafka",)),
    }
    seen["run"] = run(lab, "eventplatform.eventbus.site", "--tags", "kafka_install", "-l", name)
    seen["message"] = playbooks.failure_message(seen["run"]["stdout"])
    seen["current_after"] = remote.sh(lab, name, "readlink /opt/kafka/current").strip()
    seen["started_after"] = remote.units_started_at(lab, name, ("kafka",))
    seen["release_after"] = remote.running_kafka_release(lab, name)
    return seen


def check_mode(lab: Lab, dc: str = "codfw") -> dict[str, Any]:
    hosts = lab.brokers(dc)
    seen: dict[str, Any] = {"started_before": started(lab, hosts)}
    seen["run"] = run(lab, "eventplatform.eventbus.rolling_restart", "--check", "-l", dc)
    seen["started_after"] = started(lab, hosts)
    seen["haproxy"] = {dc: remote.haproxy_status(lab, lab.loadbalancer(dc))}
    return seen


def operator_depool(lab: Lab) -> dict[str, Any]:
    # two pools: with one of its two members held out, a pool can spare no other
    lb, held, other = lab.loadbalancer("codfw"), "kafka2002.codfw.wmnet", "kafka1001.eqiad.wmnet"
    seen: dict[str, Any] = {
        "held": held,
        "other": other,
        "started_before": started(lab, lab.eventbus),
    }
    # an operator depools it by hand (HAProxy's drain, what pool_member's depooled is)
    remote.haproxy(lab, lb, f"set server eventbus/{held} state drain")
    try:
        seen["refused"] = run(lab, "eventplatform.eventbus.rolling_restart")
        seen["started_after_refusal"] = started(lab, lab.eventbus)
        seen["skipped"] = run(
            lab, "eventplatform.eventbus.rolling_restart", "-l", f"{other},{held}",
            "-e", "runbook_skip_depooled=true", "-e", "runbook_confirm_traffic=false",
        )  # fmt: skip
        seen["started_after_skip"] = started(lab, [other, held])
        seen["haproxy_held"] = remote.haproxy_status(lab, lb)[held]
    finally:
        remote.haproxy(lab, lb, f"set server eventbus/{held} state ready")
    return seen


def per_datacenter(lab: Lab, *args: str) -> dict[str, dict[str, Any]]:
    """The playbook once per datacenter (``-l <dc>``), the runs side by side, as two operators
    would run it: {dc: what :func:`run` recorded}."""
    runs: dict[str, dict[str, Any]] = {}
    threads = [
        threading.Thread(target=lambda dc=dc: runs.update({dc: run(lab, *args, "-l", dc)}))
        for dc in lab.datacenters
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs


def rollback(lab: Lab, version: str) -> dict[str, Any]:
    source = (REPO / "files" / "eventbus" / "pyproject.toml").read_text()
    previous = re.search(r'^version = "([^"]+)"', source, re.M)
    seen: dict[str, Any] = {"deployed": version, "previous": previous.group(1) if previous else ""}
    # no load runs during the cases: both datacenters are passive, and each host's traffic is
    # confirmed with the run's own test events through the service address
    rollback_vars = ["-e", "eventbus_rollback=true"]
    # each datacenter's hosts switched back, one at a time, the two runs side by side
    seen["runs"] = per_datacenter(lab, "eventplatform.eventbus.deploy", *rollback_vars)
    seen["versions"] = {name: remote.openapi_version(lab, name) for name in lab.eventbus}
    seen["previous_links"] = {
        name: remote.sh(lab, name, "readlink /srv/deployment/eventbus/previous").strip()
        for name in lab.eventbus
    }
    return seen


def canary(lab: Lab) -> dict[str, Any]:
    source = BUILD / "eventbus-broken"
    made = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release_source.py"), str(source), "--post", "9",
         "--broken"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    version = made.stdout.strip()
    links = "readlink /srv/deployment/eventbus/current"
    seen: dict[str, Any] = {
        "version": version,
        # eqiad's hosts: the codfw lane's cases restart codfw's meanwhile
        "started_before": started(lab, lab.brokers("eqiad")),
        "current_before": {name: remote.sh(lab, name, links).strip() for name in lab.eventbus},
    }
    port = lab.settings["eventbus_port"]
    # traffic for the canary to be judged on: its datacenter's only (the run is eqiad's), at
    # the proof's rate; 20 s of it give the canary about 200 events (it needs 100)
    load = subprocess.Popen(
        [sys.executable, "-m", "eventbus_lab.loadgen", "--rate", "20", "--clients", "4",
         f"--target=eqiad={lab.service_address('eqiad')}:{port}",
         f"--output={BUILD / 'canary-load.json'}"],
    )  # fmt: skip
    try:
        # one datacenter's deploy: its first host is the canary (each datacenter's canary
        # works the same way; the proof's deploy has one in each)
        seen["run"] = run(
            lab, "eventplatform.eventbus.deploy", "-l", "eqiad",
            "-e", f"eventbus_version={version}", "-e", f"eventbus_source_dir={source}",
            "-e", "runbook_canary_window=20",
        )  # fmt: skip
    finally:
        load.send_signal(signal.SIGTERM)
        load.wait(120)
    seen["started_after"] = started(lab, lab.brokers("eqiad"))
    seen["current_after"] = {name: remote.sh(lab, name, links).strip() for name in lab.eventbus}
    seen["haproxy"] = {"eqiad": remote.haproxy_status(lab, lab.loadbalancer("eqiad"))}
    seen["conftool"] = remote.confctl_get(lab, "kafka1001.eqiad.wmnet")
    return seen


def install_fails(lab: Lab) -> dict[str, Any]:
    mark = playbooks.log_mark()
    source = BUILD / "no-such-release"
    seen: dict[str, Any] = {
        "run": run(lab, "eventplatform.eventbus.deploy", "-l", "eqiad",
                   "-e", "eventbus_version=0.0.1.post99", "-e", f"eventbus_source_dir={source}"),
        "locks_left": remote.run_locks(lab, ["eqiad"]),  # its runs' (codfw's lane runs meanwhile)
    }  # fmt: skip
    ended = [line for line in playbooks.log_since(mark) if " END FAIL " in line]
    seen["end_line"] = ended[-1] if ended else ""
    seen["haproxy"] = remote.haproxy_status(lab, lab.loadbalancer("eqiad"))
    # one host's previous release, taken away for a moment: its rollback has nothing to go to
    previous = "/srv/deployment/eventbus/previous"
    host = lab.eventbus[0]
    remote.sh(lab, host, f"if [ -L {previous} ]; then mv {previous} {previous}.away; fi")
    try:
        seen["rollback"] = run(lab, "eventplatform.eventbus.deploy", "-l", host,
                               "-e", "eventbus_rollback=true")  # fmt: skip
    finally:
        remote.sh(lab, host, f"if [ -L {previous}.away ]; then mv {previous}.away {previous}; fi")
    seen["locks_after_rollback"] = remote.run_locks(lab, ["eqiad"])
    return seen


LabCase = tuple[str, Callable[[], dict[str, Any]]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--output", type=Path, default=BUILD / "cases.json")
    parser.add_argument("--version-file", type=Path, default=BUILD / "proof-version")
    args = parser.parse_args(argv)
    try:
        lab = load()
        version = args.version_file.read_text().strip()
    except (LabError, OSError) as err:
        print(f"lab cases: {err}", file=sys.stderr)
        return 2
    # Stages run one after the other; the lanes of a stage side by side (each lane's cases one
    # after the other): a lane keeps to one datacenter, so lanes never meet. The rollback
    # comes before the canary (the canary's own rollback changes its host's previous release);
    # it and the operator's depool (two pools) touch both datacenters: a stage each.
    stages: list[list[list[LabCase]]] = [
        [[("after_proof", lambda: after_proof(lab))]],
        [
            [("broken_service", lambda: broken_service(lab)),  # eqiad
             ("install_fails", lambda: install_fails(lab))],
            [("under_replicated", lambda: under_replicated(lab)),  # codfw
             ("replay", lambda: replay(lab)),
             ("kafka_downgrade", lambda: kafka_downgrade(lab))],
        ],
        [[("rollback", lambda: rollback(lab, version))]],  # both datacenters
        [[("canary", lambda: canary(lab))], [("check_mode", lambda: check_mode(lab))]],
        [[("operator_depool", lambda: operator_depool(lab))]],  # both datacenters
    ]  # fmt: skip
    seen: dict[str, Any] = {}
    lock = threading.Lock()

    def lane(cases: list[LabCase]) -> None:
        for name, case in cases:
            say(f"case {name}")
            started = time.monotonic()
            try:
                result = case()
            except Exception as err:  # noqa: BLE001 - recorded; verify says which case broke
                result = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
                say(f"case {name} could not complete: {err}")
            result["seconds"] = round(time.monotonic() - started, 1)
            with lock:
                seen[name] = result
                args.output.write_text(json.dumps(seen, indent=2))

    for stage in stages:
        threads = [threading.Thread(target=lane, args=(cases,)) for cases in stage]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
