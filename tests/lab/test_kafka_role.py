"""The kafka role on the lab: converges both datacenters' clusters (two combined nodes and
a controller-only conf host each), a second run changes nothing, and the clusters are what
the runbook expects: topics replicated on both brokers, three KRaft voters."""

from __future__ import annotations

import re

from tests.lab.conftest import ansible, needs_lab, playbook

pytestmark = needs_lab
TOPICS = [
    "mediawiki.page_delete",
    "mediawiki.page_edit",
    "mediawiki.page_move",
    "mediawiki.page_restore",
    "mediawiki.revision_visibility_set",
    "test",
    "test.event",
]


def recap(output: str) -> dict[str, dict[str, int]]:
    hosts = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        hosts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return hosts


def test_kafka_role_converges_and_is_idempotent(running_lab: None) -> None:
    first = playbook("playbooks/site.yml")
    assert first.returncode == 0, first.stdout[-3000:]
    second = playbook("playbooks/site.yml")
    assert second.returncode == 0, second.stdout[-3000:]
    counts = recap(second.stdout)
    assert len(counts) == 6
    assert {host: c["changed"] for host, c in counts.items()} == dict.fromkeys(counts, 0)


def test_clusters_have_the_runbook_topics_and_a_three_voter_quorum(running_lab: None) -> None:
    for dc, host, brokers in (
        ("eqiad", "kafka1001.eqiad.wmnet", "1001,1002"),
        ("codfw", "kafka2002.codfw.wmnet", "2001,2002"),
    ):
        described = ansible(host, "ansible.builtin.command", "kafka topic --describe")[host]["line"]
        for topic in TOPICS:
            assert f"Topic: {dc}.{topic}\t" in described.replace("\\t", "\t")
        isrs = re.findall(r"Isr: ([\d,]+)", described)
        assert isrs
        assert all(sorted(isr.split(",")) == brokers.split(",") for isr in isrs)
        quorum = ansible(
            host, "ansible.builtin.command", "kafka metadata-quorum describe --status"
        )[host]["line"]
        voters = sorted(int(v) for v in re.findall(r'"id": (\d+)', quorum))
        assert voters == sorted([*map(int, brokers.split(",")), int(brokers[:1] + "000")])
