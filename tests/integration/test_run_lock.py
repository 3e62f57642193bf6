"""run_lock against a real etcd (v2 API): one run at a time per scope, refusals that name the
holder, stale locks taken over afresh with a warning, an interrupted run resumed only when
asked, by the same holder, playbook and parameters, within its ttl plus the resume window."""

from __future__ import annotations

import json
import time

import pytest

from tests.harness._net import free_port
from tests.harness.collection import run_module
from tests.harness.etcd import EtcdServer

SCOPE = "pool/eqiad/eventbus/eventbus"
KEY = f"/eventbus-ops/locks/{SCOPE}"


@pytest.fixture(autouse=True)
def no_lock_left(etcd: EtcdServer) -> object:
    """Each test starts with no lock, whatever an earlier one left when it failed."""
    etcd.delete_tree("/eventbus-ops")
    yield
    etcd.delete_tree("/eventbus-ops")


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


PARAMETERS = {"limit": "eqiad", "hosts": ["kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet"]}
WROTE = {"state": "depooled", "weight": 10, "index": 42}


def interrupted(etcd: EtcdServer, ttl: int = 900) -> None:
    """A run that did kafka1001 and depooled kafka1002, then stopped renewing."""
    assert not lock(etcd, "run-1", ttl=ttl, parameters=PARAMETERS).get("failed")
    lock(etcd, "run-1", state="progress", done="kafka1001.eqiad.wmnet")
    lock(etcd, "run-1", state="progress", depooled="kafka1002.eqiad.wmnet")  # ahead
    recorded = lock(etcd, "run-1", state="progress", depooled="kafka1002.eqiad.wmnet",
                    wrote=WROTE)  # fmt: skip
    assert recorded["lock"]["depooled"] == ["kafka1002.eqiad.wmnet"]
    assert recorded["lock"]["wrote"] == {"kafka1002.eqiad.wmnet": WROTE}


def test_a_stale_lock_is_taken_over_afresh_unless_resume_is_asked(etcd: EtcdServer) -> None:
    interrupted(etcd, ttl=1)
    time.sleep(2.5)  # its ttl passes without a renewal

    fresh = lock(etcd, "run-2", parameters=PARAMETERS)  # the same holder, not asked: afresh
    assert not fresh.get("failed"), fresh.get("msg")
    assert fresh["resumed"] is False
    assert "alice@cumin1001 running rolling_restart" in fresh["took_over"]
    assert fresh["lock"]["done"] == []
    assert fresh["lock"]["depooled"] == []
    assert fresh["lock"]["wrote"] == {}
    assert fresh["left_depooled"] == ["kafka1002.eqiad.wmnet"]
    warnings = " ".join(fresh.get("warnings", []))
    assert "took over the run lock" in warnings
    assert "kafka1002.eqiad.wmnet as depooled; this run does not repool them" in warnings
    lock(etcd, "run-2", state="released")

    interrupted(etcd, ttl=1)
    time.sleep(2.5)
    resumed = lock(etcd, "run-3", resume=True, parameters=PARAMETERS)
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["resumed"] is True
    assert resumed["lock"]["done"] == ["kafka1001.eqiad.wmnet"]
    assert resumed["lock"]["depooled"] == ["kafka1002.eqiad.wmnet"]
    assert resumed["lock"]["wrote"] == {"kafka1002.eqiad.wmnet": WROTE}
    assert resumed["left_depooled"] == []
    # the repool clears both records of the host
    back = lock(etcd, "run-3", state="progress", undepooled="kafka1002.eqiad.wmnet")
    assert back["lock"]["depooled"] == []
    assert back["lock"]["wrote"] == {}

    lock(etcd, "run-3", ttl=1)
    time.sleep(2.5)
    stranger = lock(etcd, "run-4", holder="bob@cumin2002", playbook="reboot", reason="T9")
    assert not stranger.get("failed"), stranger.get("msg")
    assert stranger["resumed"] is False  # another holder takes over, starting afresh
    assert stranger["lock"]["done"] == []
    lock(etcd, "run-4", state="released", holder="bob@cumin2002")


def test_resume_at_once_when_the_holder_says_the_run_is_gone(etcd: EtcdServer) -> None:
    interrupted(etcd)
    refused = lock(etcd, "run-2", parameters=PARAMETERS)
    assert refused["failed"] is True
    assert "-e runbook_resume=true" in refused["msg"]  # the same holder is told how
    resumed = lock(etcd, "run-2", resume=True, parameters=PARAMETERS)
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["resumed"] is True
    assert resumed["lock"]["done"] == ["kafka1001.eqiad.wmnet"]
    # another holder cannot claim that, nor is it told to try
    other = lock(etcd, "run-3", holder="bob@cumin2002", resume=True, parameters=PARAMETERS)
    assert other["failed"] is True
    assert "refusing to resume" in other["msg"]
    assert "it is held by alice@cumin1001, not bob@cumin2002" in other["msg"]
    assert "Nothing was changed" in other["msg"]
    assert json.loads(etcd.get(KEY))["run_id"] == "run-2"
    lock(etcd, "run-2", state="released")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"playbook": "reboot"}, "it runs rolling_restart, not reboot"),
        ({"parameters": {**PARAMETERS, "limit": "eqiad:!kafka1001*"}},
         'its limit was "eqiad", this run\'s is "eqiad:!kafka1001*"'),
        ({"parameters": {"limit": "eqiad"}}, "its hosts was ["),
        ({"parameters": {}}, "its limit was"),
    ],
)  # fmt: skip
def test_resume_only_of_the_same_playbook_and_parameters(
    etcd: EtcdServer, change: dict, said: str
) -> None:
    interrupted(etcd)
    refused = lock(etcd, "run-2", **{"resume": True, "parameters": PARAMETERS, **change})
    assert refused["failed"] is True
    assert said in refused["msg"], refused["msg"]
    assert json.loads(etcd.get(KEY))["run_id"] == "run-1"  # untouched
    lock(etcd, "run-1", state="released")


def test_no_resume_past_the_ttl_and_the_window(etcd: EtcdServer) -> None:
    interrupted(etcd, ttl=1)
    time.sleep(2.5)  # past ttl (1 s) plus the window (0 s)
    late = lock(etcd, "run-2", resume=True, resume_window=0, parameters=PARAMETERS)
    assert late["failed"] is True
    assert "too old to act on" in late["msg"]
    assert "kafka1002.eqiad.wmnet" in late["msg"]  # the hosts to check are named
    assert json.loads(etcd.get(KEY))["run_id"] == "run-1"
    in_time = lock(etcd, "run-2", resume=True, resume_window=60, parameters=PARAMETERS)
    assert not in_time.get("failed"), in_time.get("msg")
    assert in_time["resumed"] is True
    lock(etcd, "run-2", state="released")


def test_wrote_needs_a_depooled_host(etcd: EtcdServer) -> None:
    assert not lock(etcd, "run-1").get("failed")
    bad = lock(etcd, "run-1", state="progress", wrote=WROTE)
    assert bad["failed"] is True
    assert "depooled" in bad["msg"]
    lock(etcd, "run-1", state="released")


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
