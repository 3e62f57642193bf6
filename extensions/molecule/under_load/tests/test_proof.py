"""The proof, read from what the side effect recorded (verify only reads).

build/lab/proof.json: a converge of the running lab (a Kafka setting and the service's
configuration changed: it restarts nothing), the rolling restart, the reboot (kafka1001 and
kafka2002), the deploy (a new version), the Kafka roll and the upgrade's finalize ran while
clients posted events to both service addresses (the converge also installed Kafka 4.2.2 and
renewed the certificates): every playbook exited 0, no request failed, every acknowledged event
is in Kafka once.

build/lab/cases.json (scripts/lab_cases.py): the lab after the proof (every host pooled and on
the new version, the rebooted hosts booted again), then the failure and operator cases: a
host whose service is broken after its restart stops the rolling restart there; an
under-replicated partition makes the reboot refuse before it touches anything; replay puts a
produce failure into Kafka and reports an invalid one; a converge back to the old Kafka
release after the finalize is refused; check mode changes nothing; an
operator's depool is refused or left alone; a rollback switches every host back; a broken
release is caught by its canary and rolled back; a deploy whose release cannot be installed,
or a rollback with nothing to go back to, stops and leaves no run lock behind.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import MODEL, PROJECT, Lab, datacenter  # extensions/molecule/conftest.py

REPORT = PROJECT / "build" / "lab" / "proof.json"
CASES = PROJECT / "build" / "lab" / "cases.json"


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


@pytest.fixture(scope="module")
def cases() -> dict[str, Any]:
    return json.loads(CASES.read_text())


def task_results(stdout: str, task: str) -> list[str]:
    """The result lines (ok:, skipping:, failed:...) of every run of a task in a playbook's
    output."""
    lines, found, inside = stdout.splitlines(), [], False
    for line in lines:
        if line.startswith("TASK ["):
            inside = task in line
        elif inside and line.split(":", 1)[0] in ("ok", "changed", "skipping", "failed", "fatal"):
            found.append(line)
    return found


def case(cases: dict[str, Any], name: str) -> dict[str, Any]:
    seen = cases.get(name)
    assert seen is not None, f"case {name} did not run"
    assert "error" not in seen, f"case {name} could not complete:\n{seen.get('trace')}"
    return seen


def test_the_playbooks_ran_and_exited_0(proof: dict) -> None:
    runs = [(run["playbook"].split()[0], run["exit"]) for run in proof["playbooks"]]
    assert runs == [
        # a Kafka setting and the service's config changed, Kafka 4.2.2 installed, the
        # certificates renewed
        ("eventplatform.eventbus.site", 0),
        ("eventplatform.eventbus.rolling_restart", 0),
        ("eventplatform.eventbus.reboot", 0),
        ("eventplatform.eventbus.deploy", 0),
        ("eventplatform.eventbus.kafka_rolling_restart", 0),
        ("eventplatform.eventbus.kafka_finalize_upgrade", 0),
    ], [run.get("failure") for run in proof["playbooks"]]  # the failed one's message
    rolling = proof["playbooks"][1]
    assert sorted(rolling["hosts"]) == MODEL.eventbus
    for host, steps in rolling["hosts"].items():
        assert [s["step"] for s in steps] == [
            "silence", "depool", "idle", "restart", "health", "log check", "repool", "traffic",
            "unsilence",
        ], host  # fmt: skip
    rebooted = {host for host, steps in proof["playbooks"][2]["hosts"].items() if steps}
    assert rebooted == {"kafka1001.eqiad.wmnet", "kafka2002.codfw.wmnet"}
    deploy = proof["playbooks"][3]["hosts"]
    for canary in ("kafka1001.eqiad.wmnet", "kafka2001.codfw.wmnet"):  # first of each dc
        steps = [s["step"] for s in deploy[canary]]
        assert "canary" in steps[steps.index("traffic") :], (canary, steps)  # after it is back
    # the Kafka roll: every node of both clusters, controller-only nodes first, the active
    # controller last (the order is the report's)
    roll = proof["playbooks"][4]["hosts"]
    assert sorted(roll) == sorted([*MODEL.eventbus, *MODEL.group("conf")])
    for node, steps in roll.items():
        assert [s["step"] for s in steps] == [
            "silence", "safe to stop", "restart kafka", "kafka rejoined", "leaders", "grace",
            "unsilence",
        ], node  # fmt: skip


def test_a_converge_of_the_running_lab_restarted_nothing(proof: dict, lab: Lab) -> None:
    """The converge under load changed a Kafka setting and the service's configuration on
    every host and restarted nothing (every node and service kept running, none of the pool
    left); the rolling restart then restarted each service and the Kafka roll each node, one
    at a time, on what the converge wrote."""
    converge, rolling, roll = (proof["playbooks"][i] for i in (0, 1, 4))
    assert converge["restarted"] == []
    nodes = sorted([*MODEL.eventbus, *MODEL.group("conf")])
    assert {r.split("/")[0] for r in rolling["restarted"] if r.endswith("/eventbus")} == set(
        MODEL.eventbus
    )
    assert {r.split("/")[0] for r in roll["restarted"] if r.endswith("/kafka")} == set(nodes)
    for node in nodes:
        server = lab.host(node).check_output("cat /etc/kafka/server.properties")
        assert "log.cleaner.backoff.ms=15001" in server, node
    for host in MODEL.eventbus:
        config = lab.host(host).check_output("cat /etc/eventbus/config.yaml")
        assert "idle_timeout: 16" in config, host


def test_the_kafka_roll_brought_every_node_up_on_its_renewed_certificate(
    proof: dict, cases: dict
) -> None:
    """The converge under load renewed every node's certificate without restarting it; the
    Kafka roll then restarted each one on it: what each node serves is the certificate on its
    disk, and that one was signed during the converge."""
    renewal, roll = proof["playbooks"][0], proof["playbooks"][4]
    seen = case(cases, "after_proof")["certificates"]
    assert sorted(seen) == sorted([*MODEL.eventbus, *MODEL.group("conf")])
    for node, cert in seen.items():
        assert cert["served"] == cert["disk"], node
        # openssl writes notBefore to the second: a second of slack
        assert renewal["started_at"] - 1 <= cert["not_before"] <= renewal["ended_at"], node
        assert cert["not_before"] < roll["started_at"], node


def test_the_kafka_upgrade_rolled_every_node_and_was_finalized_last(
    proof: dict, cases: dict
) -> None:
    """The converge installed 4.2.2 beside 4.1.1 and restarted nothing (the reboot brought two
    nodes up on it, the clusters ran both releases until the roll); the Kafka roll brought
    every node up on it; the finalize then raised metadata.version from 4.1's level to 4.2's,
    once per cluster. Every node runs 4.2.2 now (its JVM's jar), and both clusters report
    4.2-IV1 finalized."""
    upgrade, roll, finalize = (proof["playbooks"][i] for i in (0, 4, 5))
    nodes = sorted([*MODEL.eventbus, *MODEL.group("conf")])
    assert upgrade["restarted"] == []
    assert {r.split("/")[0] for r in roll["restarted"] if r.endswith("/kafka")} == set(nodes)
    assert finalize["restarted"] == []
    after = case(cases, "after_proof")
    assert after["kafka"] == {
        node: {"release": "4.2.2", "current": "/opt/kafka/4.2.2"} for node in nodes
    }
    assert after["metadata_version"] == {"eqiad": "4.2-IV1", "codfw": "4.2-IV1"}
    finalized = {
        host: steps[-1]["step"]
        for host, steps in finalize["hosts"].items()
        if steps and steps[-1]["step"].startswith("metadata.version")
    }
    assert sorted(finalized.values()) == ["metadata.version 27 -> 29 finalized"] * 2, finalize[
        "hosts"
    ]
    assert {datacenter(host) for host in finalized} == {"eqiad", "codfw"}
    assert finalize["ended_at"] > roll["ended_at"]


def test_a_converge_back_to_the_old_kafka_was_refused(cases: dict) -> None:
    seen = case(cases, "kafka_downgrade")
    assert seen["run"]["rc"] != 0
    assert "finalized at 4.2-IV1; Kafka 4.1.1 supports up to 4.1-IV1" in seen["message"], seen[
        "message"
    ]
    assert "keep kafka_version at 4.2.2 or newer" in seen["message"]
    assert seen["current_before"] == seen["current_after"] == "/opt/kafka/4.2.2"
    assert seen["started_after"] == seen["started_before"]
    assert seen["release_after"] == "4.2.2"


def test_no_request_failed_and_every_acknowledged_event_is_in_kafka(proof: dict, dc: str) -> None:
    counts = proof["datacenters"][dc]
    assert counts["failed_requests"] == []
    # the load held its rate from before the first playbook started to after the last ended
    # (20 events/s through the six playbooks, ten minutes or more: 12,000 events and up)
    runs = proof["playbooks"]
    span = max(run["ended_at"] for run in runs) - min(run["started_at"] for run in runs)
    assert counts["acknowledged"] == counts["sent"] >= 0.9 * proof["rate"] * span > 8_000
    assert counts["lost"] == []
    assert counts["found_in_kafka"] == counts["acknowledged"]
    # the producer is idempotent: its retries after the broker's death write nothing twice
    assert counts["duplicated"] == []


def test_a_kafka_broker_was_sigkilled_during_the_run(proof: dict) -> None:
    assert proof["killed_broker"].get("host") == "kafka1002.eqiad.wmnet"
    assert "error" not in proof["killed_broker"]
    # killed 2 s after the run reached its first restart (kafka1001 depooled), not at a time
    # that depends on how long the pre-flight took
    assert proof["killed_broker"]["at"] >= proof["killed_broker"]["step_seen_at"] + 2
    assert proof["rate"] >= 20


def test_the_rebooted_hosts_have_a_new_boot(cases: dict) -> None:
    hosts = case(cases, "after_proof")["hosts"]
    for name in ("kafka1001.eqiad.wmnet", "kafka2002.codfw.wmnet"):
        assert hosts[name]["boots"] >= 3, name  # header, the boot before the reboot, this one


def test_every_host_ran_the_new_version_and_was_pooled(cases: dict, eventbus_host: str) -> None:
    version = (PROJECT / "build" / "lab" / "proof-version").read_text().strip()
    seen = case(cases, "after_proof")["hosts"][eventbus_host]
    assert seen["version"] == version
    assert seen["current"] == f"/srv/deployment/eventbus/releases/{version}"
    assert seen["previous"].startswith("/srv/deployment/eventbus/releases/")  # rollback target
    if seen["conftool"] is not None:
        assert seen["conftool"]["pooled"] == "yes"
    assert seen["haproxy"] == "UP"


def test_a_broken_service_stopped_the_rolling_restart_there(cases: dict) -> None:
    seen = case(cases, "broken_service")
    broken, out = seen["host"], seen["run"]["stdout"]
    assert seen["run"]["rc"] != 0
    assert f"rolling restart stopped at {broken}, step 'restart'" in out, out[-3000:]
    assert "is LEFT DEPOOLED" in out
    assert f"confctl select 'name={broken}' set/pooled=yes" in out
    assert seen["started_after"] == seen["started_before"]  # the others untouched
    assert seen["conftool"]["pooled"] == "no"
    # drained by the pool agent, and down by its health check
    assert seen["haproxy"].split()[0] in ("DRAIN", "DOWN")


def test_an_under_replicated_partition_made_reboot_refuse_first(cases: dict) -> None:
    seen = case(cases, "under_replicated")
    out = seen["run"]["stdout"]
    assert seen["run"]["rc"] != 0
    assert "not healthy enough" in out, out[-3000:]
    assert "under-replicated ['codfw." in out
    assert "Nothing was changed" in out
    assert seen["boot_after"] == seen["boot_before"]
    assert seen["started_after"] == seen["started_before"]
    assert seen["haproxy"] == "UP"


def test_replay_put_the_failed_event_in_kafka_and_reported_the_invalid_one(cases: dict) -> None:
    seen = case(cases, "replay")
    assert seen["run"]["rc"] == 0, seen["run"]["stdout"][-3000:]
    assert "read 1, produced 1, already present 0, invalid 0, failed 0" in seen["run"]["stdout"]
    assert seen["in_kafka"] is True
    assert "failed_events.log.replayed-" in seen["logs"]  # set aside: never replayed twice
    assert seen["again"]["rc"] != 0
    assert "read 1, produced 0, already present 0, invalid 1, failed 0" in seen["again"]["stdout"]
    assert "some events were invalid or could not be produced" in seen["again"]["stdout"]
    assert "failed_events.log.replay-failed-" in seen["logs_again"]


def test_check_mode_showed_the_plan_and_changed_nothing(cases: dict) -> None:
    seen = case(cases, "check_mode")
    out = seen["run"]["stdout"]
    assert seen["run"]["rc"] == 0, out[-3000:]
    assert "rolling restart: 2 host(s)" in out  # codfw's (the eqiad lane runs the canary)
    assert "(check mode: nothing was changed)" in out
    assert seen["started_after"] == seen["started_before"]
    for status in seen["haproxy"].values():
        assert set(status.values()) == {"UP"}


def test_an_operator_depool_was_refused_or_left_alone(cases: dict) -> None:
    seen = case(cases, "operator_depool")
    held, other = seen["held"], seen["other"]
    assert seen["refused"]["rc"] != 0
    assert f"{held} is depooled in its pool (haproxy), not by this run" in seen["refused"]["stdout"]
    assert seen["started_after_refusal"] == seen["started_before"]
    assert seen["skipped"]["rc"] == 0, seen["skipped"]["stdout"][-3000:]
    assert f"{held}: skipped (depooled by an operator, left alone)" in seen["skipped"]["stdout"]
    assert seen["started_after_skip"][other] != seen["started_before"][other]  # restarted
    assert seen["started_after_skip"][held] == seen["started_before"][held]  # not touched
    assert seen["haproxy_held"].startswith("DRAIN")  # and not repooled behind their back


def test_rollback_switched_every_host_back_to_the_previous_release(cases: dict) -> None:
    seen = case(cases, "rollback")
    assert sorted(seen["runs"]) == ["codfw", "eqiad"]  # a run per datacenter, side by side
    for dc, run in seen["runs"].items():
        assert run["rc"] == 0, (dc, run["stdout"][-3000:])
        assert "rollback: 2 host(s)" in run["stdout"], dc
        # no load during the cases: each datacenter was passive, and each host was confirmed
        # with the run's own test events through the service address
        sent = task_results(run["stdout"], "Send test events through the service address")
        assert any(line.startswith("ok: ") for line in sent), (dc, sent)
    assert set(seen["versions"].values()) == {seen["previous"]}
    for name, link in seen["previous_links"].items():
        assert link.endswith(f"/{seen['deployed']}"), name


def test_a_broken_release_was_caught_by_its_canary_and_rolled_back(cases: dict) -> None:
    seen = case(cases, "canary")
    out = seen["run"]["stdout"]
    assert seen["run"]["rc"] != 0
    assert "canary kafka1001.eqiad.wmnet failed: error ratio" in out, out[-3000:]
    assert "The canary was rolled back to its previous release and repooled" in out
    # the canary runs what it ran before, pooled and up; no other host was touched (its
    # datacenter's: codfw's lane restarts codfw's hosts meanwhile, the run is eqiad's)
    assert seen["current_after"] == seen["current_before"]
    others = [name for name in seen["started_before"] if name != "kafka1001.eqiad.wmnet"]
    assert others == ["kafka1002.eqiad.wmnet"]
    assert {n: seen["started_after"][n] for n in others} == {
        n: seen["started_before"][n] for n in others
    }
    assert seen["conftool"]["pooled"] == "yes"
    for status in seen["haproxy"].values():
        assert set(status.values()) == {"UP"}


def test_a_deploy_that_cannot_install_stopped_and_left_no_lock(cases: dict) -> None:
    seen = case(cases, "install_fails")
    out = seen["run"]["stdout"]
    assert seen["run"]["rc"] != 0
    assert "could not be installed" in out, out[-3000:] + seen["run"].get("stderr", "")
    assert "the run locks are released" in out
    assert seen["locks_left"] == []  # the next run is not refused
    assert "step 'install'" in seen["end_line"], seen["end_line"]
    assert set(seen["haproxy"].values()) == {"UP"}  # no host was depooled
    refused = seen["rollback"]
    assert refused["rc"] != 0
    assert "has no previous release to roll back to" in refused["stdout"], refused["stdout"][
        -3000:
    ] + refused.get("stderr", "")
    assert seen["locks_after_rollback"] == []


def test_maintenance_alerts_were_silenced_and_no_silence_is_left(proof: dict) -> None:
    """The lab's EventbusScrapeFailed fires when a restart makes a scrape fail: during the
    runs it was seen, and only ever suppressed by the run's silences; after the runs, no
    silence is active."""
    restarts = [a for a in proof["alerts"] if a["alertname"] == "EventbusScrapeFailed"]
    print(json.dumps(restarts, indent=1)[:2000])
    assert restarts, "no restart was seen by Prometheus: the proof needs one"
    assert {a["state"] for a in restarts} == {"suppressed"}
    assert all(a["silenced_by"] for a in restarts)
    silenced_ids = {i for host in proof["playbooks"][1]["silences"].values() for i in host}
    assert silenced_ids  # the rolling restart silenced its hosts
    assert proof["silences_left"] == []
