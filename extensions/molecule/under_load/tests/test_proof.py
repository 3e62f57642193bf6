"""The proof: side_effect ran rolling_restart.yml, reboot.yml (kafka1001 and kafka2002) and
deploy.yml (a new version) while clients posted events to both service addresses
(build/lab/proof.json). Every playbook exited 0, no request failed, every acknowledged event
is in Kafka, every host is pooled and runs the new version. Then the failure cases: a host
whose service is broken after its restart stops the rolling restart there, and a cluster
with an under-replicated partition makes reboot.yml refuse before it touches anything."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PROJECT, RELEASE_PYTHON, Lab, datacenter  # extensions/molecule/conftest.py

REPORT = PROJECT / "build" / "lab" / "proof.json"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def proof() -> dict:
    report = json.loads(REPORT.read_text())
    print(
        json.dumps(
            {
                dc: {k: v for k, v in c.items() if k != "lost"}
                for dc, c in report["datacenters"].items()
            }
        )
    )
    return report


def playbook(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{key: value for key, value in os.environ.items() if key != "ANSIBLE_FORCE_COLOR"},
        "ANSIBLE_NOCOLOR": "1",  # the output is read
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        # the collection as installed from its tarball (the scenario's dependency step)
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / "build" / "installed"),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(PROJECT / "inventories" / "lab"), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def started_at(lab: Lab, name: str) -> str:
    return lab.host(name).check_output(
        "systemctl show --property ActiveEnterTimestampMonotonic --value eventbus"
    )


def boot_id(lab: Lab, name: str) -> str:
    return lab.host(name).check_output("cat /proc/sys/kernel/random/boot_id")


def test_the_three_playbooks_ran_and_exited_0(proof: dict) -> None:
    runs = [(run["playbook"].split()[0], run["exit"]) for run in proof["playbooks"]]
    assert runs == [
        ("eventplatform.eventbus.rolling_restart", 0),
        ("eventplatform.eventbus.reboot", 0),
        ("eventplatform.eventbus.deploy", 0),
    ]
    rolling = proof["playbooks"][0]
    assert sorted(rolling["hosts"]) == sorted(Lab("").eventbus)
    for host, steps in rolling["hosts"].items():
        assert [s["step"] for s in steps] == [
            "depool", "idle", "restart", "health", "log check", "repool", "traffic",
        ], host  # fmt: skip
    rebooted = {host for host, steps in proof["playbooks"][1]["hosts"].items() if steps}
    assert rebooted == {"kafka1001.eqiad.wmnet", "kafka2002.codfw.wmnet"}


def test_no_request_failed_and_every_acknowledged_event_is_in_kafka(proof: dict, dc: str) -> None:
    counts = proof["datacenters"][dc]
    assert counts["failed_requests"] == []
    assert counts["acknowledged"] == counts["sent"] > 500
    assert counts["lost"] == []
    assert counts["found_in_kafka"] == counts["acknowledged"]


def test_the_rebooted_hosts_have_a_new_boot(lab: Lab) -> None:
    for name in ("kafka1001.eqiad.wmnet", "kafka2002.codfw.wmnet"):
        boots = lab.host(name).check_output("journalctl --list-boots --no-pager").splitlines()
        assert len(boots) >= 3, name  # header, the boot before the reboot, this one


def test_every_host_runs_the_new_version_and_is_pooled(
    lab: Lab, eventbus_host: str, tmp_path: Path
) -> None:
    version = (PROJECT / "build" / "lab" / "proof-version").read_text().strip()
    assert lab.openapi_version(eventbus_host) == version
    current = lab.host(eventbus_host).file("/srv/deployment/eventbus/current")
    assert current.linked_to == f"/srv/deployment/eventbus/releases/{version}"
    previous = lab.host(eventbus_host).file("/srv/deployment/eventbus/previous")
    assert previous.is_symlink  # the rollback target
    dc = datacenter(eventbus_host)
    if dc == "eqiad":
        assert lab.confctl_get(eventbus_host, tmp_path)["pooled"] == "yes"
    assert lab.haproxy_status(lab.loadbalancer(dc))[eventbus_host] == "UP"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_a_broken_service_stops_the_rolling_restart_there(lab: Lab, tmp_path: Path) -> None:
    broken = "kafka1001.eqiad.wmnet"  # the first host of the run
    others = [name for name in lab.eventbus if name != broken]
    before = {name: started_at(lab, name) for name in others}
    node = lab.host(broken)
    node.check_output("cp /etc/eventbus/config.yaml /root/config.yaml.good")
    node.check_output("echo 'port: [' >> /etc/eventbus/config.yaml")  # the service cannot start
    try:
        run = playbook(
            "eventplatform.eventbus.rolling_restart", "-e", "eventbus_confirm_traffic=false"
        )
        assert run.returncode != 0
        out = run.stdout
        assert f"rolling restart stopped at {broken}, step 'restart'" in out, out[-3000:]
        assert "is LEFT DEPOOLED" in out
        hint = f"confctl select 'name={broken}' set/pooled=yes"
        assert hint in out
        assert {name: started_at(lab, name) for name in others} == before  # untouched
        assert lab.confctl_get(broken, tmp_path)["pooled"] == "no"
        # drained by the pool agent, and down by its health check
        status = lab.haproxy_status(lab.loadbalancer("eqiad"))[broken]  # e.g. "DRAIN 1/2"
        assert status.split()[0] in ("DRAIN", "DOWN")
    finally:  # repair, then repool by hand as the message says
        node.check_output("cp /root/config.yaml.good /etc/eventbus/config.yaml")
        node.check_output("systemctl restart eventbus")
        lab.confctl("eqiad", tmp_path, "select", f"name={broken}", "set/pooled=yes")
    wait_for(lambda: lab.haproxy_status(lab.loadbalancer("eqiad"))[broken] == "UP", 30, "repooled")


def in_sync(lab: Lab, dc: str) -> bool:
    described = lab.host(lab.broker(dc)).check_output("kafka topic --describe")
    pairs = re.findall(r"Replicas: ([\d,]+)\s+Isr: ([\d,]+)", described)
    return bool(pairs) and all(sorted(r.split(",")) == sorted(i.split(",")) for r, i in pairs)


def test_an_under_replicated_partition_makes_reboot_refuse_first(lab: Lab) -> None:
    target, stopped = "kafka2001.codfw.wmnet", "kafka2002.codfw.wmnet"
    boot_before, started_before = boot_id(lab, target), started_at(lab, target)
    lab.host(stopped).check_output("systemctl stop kafka")
    try:
        wait_for(lambda: not in_sync(lab, "codfw"), 60, "an under-replicated partition")
        run = playbook("eventplatform.eventbus.reboot", "-l", target)
        assert run.returncode != 0
        assert "not healthy enough" in run.stdout, run.stdout[-3000:]
        assert "under-replicated ['codfw." in run.stdout
        assert "Nothing was changed" in run.stdout
        assert boot_id(lab, target) == boot_before
        assert started_at(lab, target) == started_before
        assert lab.haproxy_status(lab.loadbalancer("codfw"))[target] == "UP"
    finally:
        lab.host(stopped).check_output("systemctl start kafka")
    wait_for(lambda: in_sync(lab, "codfw"), 180, "codfw back in sync")


def append_event_error(lab: Lab, name: str, raw_event: dict, code: str) -> None:
    """Append an EventError line to the host's failed-events log, as the service writes it."""
    script = (
        "import json; from eventbus.failed_events import event_error; "
        f"print(json.dumps(event_error({json.dumps(raw_event)!r}, 'from the test', {code!r})))"
    )
    lab.host(name).check_output(
        "runuser -u eventbus -- sh -c "
        + shlex.quote(
            f"{RELEASE_PYTHON} -c {shlex.quote(script)} >> /srv/log/eventbus/failed_events.log"
        )
    )


def test_replay_failed_events_puts_them_in_kafka_and_reports(lab: Lab) -> None:
    name = "kafka2001.codfw.wmnet"
    event_id = f"replay-{uuid.uuid4()}"
    event = {"$schema": "/test/event/1.0.0", "meta": {"topic": "test.event", "id": event_id}}
    append_event_error(lab, name, event, "produce")  # as during a Kafka outage
    run = playbook("eventplatform.eventbus.replay_failed_events", "-l", name)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "read 1, produced 1, invalid 0, failed 0" in run.stdout
    assert event_id in lab.ids_in_kafka("codfw", "test.event")
    logs = lab.host(name).check_output("ls /srv/log/eventbus")
    assert "failed_events.log.replayed-" in logs  # set aside: never replayed twice

    invalid = {"$schema": "/test/event/1.0.0", "meta": {"topic": "test.event"}}  # no id
    append_event_error(lab, name, invalid, "validation")
    again = playbook("eventplatform.eventbus.replay_failed_events", "-l", name)
    assert again.returncode != 0
    assert "read 1, produced 0, invalid 1, failed 0" in again.stdout
    assert "some events were invalid or could not be produced" in again.stdout
    assert "failed_events.log.replay-failed-" in lab.host(name).check_output("ls /srv/log/eventbus")


def test_check_mode_shows_the_plan_and_changes_nothing(lab: Lab) -> None:
    before = {name: started_at(lab, name) for name in lab.eventbus}
    run = playbook("eventplatform.eventbus.rolling_restart", "--check")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "rolling restart: 4 host(s)" in run.stdout
    assert "(check mode: nothing was changed)" in run.stdout
    assert {name: started_at(lab, name) for name in lab.eventbus} == before
    for dc in ("eqiad", "codfw"):
        assert set(lab.haproxy_status(lab.loadbalancer(dc)).values()) == {"UP"}


def test_an_operator_depool_is_refused_or_left_alone(lab: Lab) -> None:
    lb, held = lab.loadbalancer("codfw"), "kafka2002.codfw.wmnet"
    before = {name: started_at(lab, name) for name in lab.eventbus}
    lab.haproxy(lb, f"set server eventbus/{held} state maint")  # an operator took it out
    try:
        refused = playbook("eventplatform.eventbus.rolling_restart")
        assert refused.returncode != 0
        assert f"{held} is depooled in its pool (haproxy), not by this run" in refused.stdout
        assert {name: started_at(lab, name) for name in lab.eventbus} == before

        other = "kafka1001.eqiad.wmnet"
        skipped = playbook(
            "eventplatform.eventbus.rolling_restart",
            "-l",
            f"{other},{held}",
            "-e",
            "eventbus_skip_depooled=true",
            "-e",
            "eventbus_confirm_traffic=false",
        )
        assert skipped.returncode == 0, skipped.stdout[-3000:]
        assert f"{held}: skipped (depooled by an operator, left alone)" in skipped.stdout
        assert started_at(lab, other) != before[other]  # restarted
        assert started_at(lab, held) == before[held]  # not touched
        assert lab.haproxy_status(lb)[held] == "MAINT"  # and not repooled behind their back
    finally:
        lab.haproxy(lb, f"set server eventbus/{held} state ready")


def test_rollback_switches_every_host_back_to_the_previous_release(lab: Lab) -> None:
    version = (PROJECT / "build" / "lab" / "proof-version").read_text().strip()
    source = (PROJECT / "files" / "eventbus" / "pyproject.toml").read_text()
    previous = re.search(r'^version = "([^"]+)"', source, re.M).group(1)
    run = playbook(
        "eventplatform.eventbus.deploy",
        "-e",
        "eventbus_rollback=true",
        "-e",
        "eventbus_confirm_traffic=false",
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "rollback: 4 host(s)" in run.stdout
    for name in lab.eventbus:
        assert lab.openapi_version(name) == previous, name
        node = lab.host(name)
        assert node.file("/srv/deployment/eventbus/previous").linked_to.endswith(f"/{version}")
