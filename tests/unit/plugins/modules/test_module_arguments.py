"""Argument checks of the modules, which fail before any server is contacted."""

from __future__ import annotations

import os
from contextlib import nullcontext

import pytest
from ansible_collections.eventplatform.eventbus.plugins.modules import (
    kafka_leader_election,
    kafka_topic_describe,
    pool_member,
    tcp_idle_check,
)

CONFTOOL = {
    "backend": "conftool",
    "datacenter": "eqiad",
    "cluster": "eventbus",
    "service": "eventbus",
}
HAPROXY = {
    "backend": "haproxy",
    "haproxy_socket": "/run/haproxy/admin.sock",
    "haproxy_backend": "eventbus",
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({**CONFTOOL, "name": "h"}, "nothing to do"),
        # one definition for both backends: depooled is HAProxy's drain, no state of its own
        ({**CONFTOOL, "name": "h", "state": "drained"}, "value of state must be one of"),
        ({**HAPROXY, "name": "h", "state": "drained"}, "value of state must be one of"),
        (
            {**CONFTOOL, "name": "h", "state": "depooled", "wait": True, "wait_sessions": True},
            "wait_sessions needs",
        ),
        ({**CONFTOOL, "name": "h", "weight": -1}, "weight must be 0 or more"),
        (
            {"backend": "conftool", "name": "h", "state": "pooled"},
            "missing: datacenter, cluster, service",
        ),
        (
            {"backend": "haproxy", "name": "h", "state": "pooled", "haproxy_backend": "b"},
            "haproxy_socket, haproxy_address",
        ),
        (
            {**HAPROXY, "haproxy_address": "127.0.0.1:1", "name": "h", "state": "pooled"},
            "mutually exclusive",
        ),
        ({**CONFTOOL, "name": "h", "state": "gone"}, "value of state must be one of"),
        ({**CONFTOOL, "name": "h", "state": "pooled", "nonsense": 1}, "Unsupported parameters"),
    ],
)
def test_pool_member_rejects_bad_arguments(run_main, args, message):
    result = run_main(pool_member.main, args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_kafka_modules_require_bootstrap_servers(run_main):
    for module in (kafka_topic_describe, kafka_leader_election):
        result = run_main(module.main, {})
        assert result["failed"] is True
        assert "bootstrap_servers" in result["msg"]


def test_kafka_topic_describe_rejects_a_bad_pattern_before_connecting(run_main, monkeypatch):
    monkeypatch.setattr(kafka_topic_describe, "admin_session", lambda params: nullcontext(object()))
    monkeypatch.setattr(
        kafka_topic_describe,
        "fetch_cluster_metadata",
        lambda admin, topics: {"topics": [], "min_isr": {}, "brokers": [1], "quorum": None},
    )
    result = run_main(
        kafka_topic_describe.main, {"bootstrap_servers": ["k:9092"], "topic_pattern": "("}
    )
    assert result["failed"] is True
    assert "not a valid regular expression" in result["msg"]


def test_tcp_idle_check_needs_root(run_main, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = run_main(tcp_idle_check.main, {})
    assert result["failed"] is True
    assert "needs root" in result["msg"]


def test_tcp_idle_check_window_and_timeout(run_main, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    result = run_main(tcp_idle_check.main, {"window": 10, "timeout": 5})
    assert result["failed"] is True
    assert "timeout at least one window" in result["msg"]
