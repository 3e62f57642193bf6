"""run_lock against a real etcd (v2 API): one run at a time per scope, refusals that name the
holder, stale locks taken over with a warning, an interrupted run resumed by its holder."""

from __future__ import annotations

import json
import time

from tests.harness._net import free_port
from tests.harness.collection import run_module
from tests.harness.etcd import EtcdServer

SCOPE = "pool/eqiad/eventbus/eventbus"
KEY = f"/eventbus-ops/locks/{SCOPE}"


def lock(etcd: EtcdServer, run_id: str, **args: object) -> dict:
    return run_module(
        "run_lock",
        {
            "etcd_url": etcd.url,
            "scope": SCOPE,
            "run_id": run_id,
            "holder": "alice@cumin1001",
            "playbook": "rolling_restart",
            "reason": "T1234",
            **args,
        },
    )


def test_one_run_at_a_time_and_a_clear_refusal(etcd: EtcdServer) -> None:
    first = lock(etcd, "run-1")
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    assert first["lock"]["holder"] == "alice@cumin1001"
    assert json.loads(etcd.get(KEY))["run_id"] == "run-1"

    other = lock(etcd, "run-2", holder="bob@cumin2002", playbook="reboot", reason="T9")
    assert other["failed"] is True
    message = other["msg"]
    assert "held by alice@cumin1001 running rolling_restart for 'T1234' since" in message
    assert "Nothing was changed" in message
    assert json.loads(etcd.get(KEY))["run_id"] == "run-1"

    renewed = lock(etcd, "run-1")  # the same run: renewed
    assert not renewed.get("failed"), renewed.get("msg")
    progress = lock(etcd, "run-1", state="progress", done="kafka1001.eqiad.wmnet",
                    depooled="kafka1002.eqiad.wmnet")  # fmt: skip
    assert progress["lock"]["done"] == ["kafka1001.eqiad.wmnet"]
    assert progress["lock"]["depooled"] == ["kafka1002.eqiad.wmnet"]

    released = lock(etcd, "run-1", state="released")
    assert released["changed"] is True
    assert etcd.get(KEY) is None
    assert lock(etcd, "run-1", state="released")["changed"] is False


def test_a_stale_lock_is_taken_over_and_the_same_holder_resumes(etcd: EtcdServer) -> None:
    interrupted = lock(etcd, "run-1", ttl=1)
    assert not interrupted.get("failed")
    lock(etcd, "run-1", state="progress", done="kafka1001.eqiad.wmnet",
         depooled="kafka1002.eqiad.wmnet")  # fmt: skip
    time.sleep(2.5)  # its ttl passes without a renewal

    resumed = lock(etcd, "run-2")  # the same holder and playbook: resumes
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["resumed"] is True
    assert "alice@cumin1001 running rolling_restart" in resumed["took_over"]
    assert resumed["lock"]["done"] == ["kafka1001.eqiad.wmnet"]
    assert resumed["lock"]["depooled"] == ["kafka1002.eqiad.wmnet"]
    assert any("took over the run lock" in w for w in resumed.get("warnings", []))

    lock(etcd, "run-2", ttl=1)
    time.sleep(2.5)
    stranger = lock(etcd, "run-3", holder="bob@cumin2002", playbook="reboot", reason="T9")
    assert not stranger.get("failed"), stranger.get("msg")
    assert stranger["resumed"] is False  # another holder takes over, starting afresh
    assert stranger["lock"]["done"] == []
    lock(etcd, "run-3", state="released", holder="bob@cumin2002")


def test_resume_at_once_when_the_holder_says_the_run_is_gone(etcd: EtcdServer) -> None:
    assert not lock(etcd, "run-1").get("failed")
    lock(etcd, "run-1", state="progress", done="kafka1001.eqiad.wmnet")
    refused = lock(etcd, "run-2")
    assert refused["failed"] is True
    assert "-e runbook_resume=true" in refused["msg"]  # the same holder is told how
    resumed = lock(etcd, "run-2", resume=True)
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["resumed"] is True
    assert resumed["lock"]["done"] == ["kafka1001.eqiad.wmnet"]
    # another holder cannot claim that
    other = lock(etcd, "run-3", holder="bob@cumin2002", resume=True)
    assert other["failed"] is True
    lock(etcd, "run-2", state="released")


def test_a_reason_is_required_and_check_mode_writes_nothing(etcd: EtcdServer) -> None:
    blank = lock(etcd, "run-1", reason="  ")
    assert blank["failed"] is True
    assert "a reason is required" in blank["msg"]
    checked = run_module(
        "run_lock",
        {"etcd_url": etcd.url, "scope": SCOPE, "run_id": "run-1", "playbook": "reboot",
         "reason": "T1"},
        check=True,
    )  # fmt: skip
    assert not checked.get("failed"), checked.get("msg")
    assert etcd.get(KEY) is None


def test_unreachable_etcd_fails_clearly() -> None:
    down = run_module(
        "run_lock",
        {"etcd_url": f"http://127.0.0.1:{free_port()}", "scope": SCOPE, "run_id": "r",
         "playbook": "reboot", "reason": "T1"},
    )  # fmt: skip
    assert down["failed"] is True
    assert "cannot reach etcd" in down["msg"]
    assert "nothing was changed" in down["msg"]
