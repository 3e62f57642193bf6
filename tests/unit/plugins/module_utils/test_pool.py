"""Pool rules and the parsing of conftool values and HAProxy runtime answers."""

from __future__ import annotations

import json

import pytest
from ansible_collections.eventplatform.eventbus.plugins.module_utils import _conftool, _haproxy
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    PoolError,
    plan_change,
    set_membership,
)


def pool(*serving: bool) -> dict:
    return {
        f"host{i}": {"state": "pooled" if up else "depooled", "weight": 10, "serving": up}
        for i, up in enumerate(serving, 1)
    }


@pytest.mark.parametrize(
    ("members", "min_pooled", "force", "allowed"),
    [
        (pool(True, True), None, False, True),
        (pool(True, True, True), None, False, True),
        (pool(True, False), None, False, False),  # default: at most one member out
        (pool(True, True, False), None, False, False),
        (pool(True, True, False), 1, False, True),
        (pool(True, False), 0, False, True),
        (pool(True, False), None, True, True),
    ],
)
def test_safety_threshold(members, min_pooled, force, allowed):
    if allowed:
        before, after = plan_change(members, "host1", "depooled", None, min_pooled, force)
        assert before["state"] == "pooled"
        assert after == {"state": "depooled", "weight": 10, "serving": False}
    else:
        with pytest.raises(PoolError, match="refusing to take host1 out"):
            plan_change(members, "host1", "depooled", None, min_pooled, force)


def test_pooling_and_weight_changes_are_never_refused():
    members = pool(False, False)
    _before, after = plan_change(members, "host1", "pooled", 5)
    assert after == {"state": "pooled", "weight": 5, "serving": True}


def test_a_pooled_haproxy_member_that_is_down_is_not_serving():
    members = {"a": {"state": "depooled", "weight": 10, "health": "down", "serving": False}}
    _before, after = plan_change(members, "a", "pooled")
    assert after["serving"] is False


class FakeStore:
    description = "fake pool"

    def __init__(self, members: dict) -> None:
        self._members = members
        self.writes: list[tuple[str, dict]] = []
        self.sessions = [2, 1, 0]

    def members(self) -> dict:
        return {n: dict(m) for n, m in self._members.items()}

    def apply(self, name: str, before: dict, after: dict) -> None:
        self.writes.append((name, after))
        self._members[name] = dict(after)

    def current_sessions(self, name: str) -> int:
        return self.sessions.pop(0)


def test_set_membership_check_mode_writes_nothing():
    store = FakeStore(pool(True, True))
    result = set_membership(store, "host1", "depooled", check_mode=True)
    assert result["changed"] is True
    assert result["pool"]["host1"]["state"] == "depooled"
    assert store.writes == []


def test_set_membership_waits_for_sessions_then_reports():
    store = FakeStore(pool(True, True))
    result = set_membership(
        store, "host1", "depooled", wait=True, wait_sessions=True, sleep=lambda s: None
    )
    assert store.sessions == []  # polled until zero
    assert result["after"]["state"] == "depooled"
    assert len(store.writes) == 1


def test_set_membership_wait_times_out_with_what_it_saw():
    store = FakeStore(pool(True, True))
    store.sessions = [3] * 100
    ticks = iter(range(1000))
    with pytest.raises(PoolError, match=r"did not reach state=depooled .* 3 session\(s\)"):
        set_membership(
            store,
            "host1",
            "depooled",
            wait=True,
            wait_sessions=True,
            wait_timeout=5,
            sleep=lambda s: None,
            clock=lambda: next(ticks),
        )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "does not hold JSON"),
        ('{"pooled": "maybe", "weight": 1}', "not a conftool node"),
        ('["yes"]', "not a conftool node"),
        ('{"pooled": "yes", "weight": "10"}', "non-integer weight"),
    ],
)
def test_malformed_conftool_values_are_named(raw, message):
    with pytest.raises(PoolError, match=message):
        _conftool.decode_member("/conftool/v1/pools/x/y/z/h", raw)


def test_conftool_round_trip_keeps_unknown_fields():
    member = _conftool.decode_member("k", '{"pooled": "inactive", "weight": 0, "extra": 1}')
    assert member["state"] == "inactive"
    member["state"] = "pooled"
    member["weight"] = 10
    assert json.loads(_conftool.encode_member(member)) == {
        "pooled": "yes",
        "weight": 10,
        "extra": 1,
    }


# Verbatim answer of HAProxy 2.6 to "show servers state eventbus" (header wrapped here).
SERVERS_STATE_HEADER = "# " + " ".join(
    [
        "be_id",
        "be_name",
        "srv_id",
        "srv_name",
        "srv_addr",
        "srv_op_state",
        "srv_admin_state",
        "srv_uweight",
        "srv_iweight",
        "srv_time_since_last_change",
        "srv_check_status",
        "srv_check_result",
        "srv_check_health",
        "srv_check_state",
        "srv_agent_state",
        "bk_f_forced_id",
        "srv_f_forced_id",
        "srv_fqdn",
        "srv_port",
        "srvrecord",
        "srv_use_ssl",
        "srv_check_port",
        "srv_check_addr",
        "srv_agent_addr",
        "srv_agent_port",
    ]
)
SERVERS_STATE = f"""1
{SERVERS_STATE_HEADER}
3 eventbus 1 a 127.0.0.1 2 0 10 10 2 15 3 2 6 0 0 0 - 33223 - 0 0 - - 0
3 eventbus 2 b 127.0.0.1 0 1 5 10 0 15 3 0 14 0 0 0 - 44311 - 0 0 - - 0
3 eventbus 3 c 127.0.0.1 2 8 10 10 0 15 3 0 14 0 0 0 - 44312 - 0 0 - - 0

"""


def test_parse_servers_state_into_pool_members():
    rows = _haproxy.parse_servers_state(SERVERS_STATE)
    members = {row["srv_name"]: _haproxy.member_from_row(row) for row in rows}
    assert members == {
        "a": {"state": "pooled", "weight": 10, "health": "up", "serving": True},
        # maint (admin state 1): out of the pool's configuration; drain (8): depooled
        "b": {"state": "inactive", "weight": 5, "health": "down", "serving": False},
        "c": {"state": "depooled", "weight": 10, "health": "up", "serving": False},
    }


def test_unexpected_runtime_answer_is_an_error():
    with pytest.raises(PoolError, match="unexpected answer"):
        _haproxy.parse_servers_state("Can't find backend.\n")
