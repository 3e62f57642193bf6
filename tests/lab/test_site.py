"""playbooks/site.yml on the lab: the kafka role converges both datacenters' clusters (two
combined nodes and a controller-only conf host each) and the eventbus role the service on
the four eventbus hosts; a second run changes nothing. The clusters are what the runbook
expects (topics on both brokers, three KRaft voters) and each host's service puts an event
into its datacenter's Kafka."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from pathlib import Path

from tests.harness._net import wait_until
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


def test_site_converges_and_is_idempotent(running_lab: None) -> None:
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


CONSUME = Path(__file__).with_name("consume_ids.py")
RELEASE_PYTHON = "/srv/deployment/eventbus/current/bin/python"
ADDRESSES = {
    "kafka1001.eqiad.wmnet": ("10.77.0.11", "eqiad"),
    "kafka1002.eqiad.wmnet": ("10.77.0.12", "eqiad"),
    "kafka2001.codfw.wmnet": ("10.77.0.21", "codfw"),
    "kafka2002.codfw.wmnet": ("10.77.0.22", "codfw"),
}


def test_each_host_service_puts_events_into_its_datacenter_kafka(running_lab: None) -> None:
    def healthy(address: str) -> bool:
        with urllib.request.urlopen(f"http://{address}:8085/healthz", timeout=5) as response:
            return response.status == 200

    for address, _dc in ADDRESSES.values():  # after a boot, Kafka and the service take a moment
        wait_until(lambda a=address: healthy(a), 180, f"eventbus on {address} healthy")
    sent: dict[str, list[str]] = {"eqiad": [], "codfw": []}
    for host, (address, dc) in ADDRESSES.items():
        event_id = f"lab-{uuid.uuid4()}"
        event = {
            "$schema": "/mediawiki/page/edit/1.0.0",
            "meta": {"topic": "mediawiki.page_edit", "id": event_id},
            "page_id": 1,
            "rev_id": 2,
        }
        request = urllib.request.Request(
            f"http://{address}:8085/v1/events",
            data=json.dumps(event).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201, host
        with urllib.request.urlopen(
            f"http://{address}:8085/v1/_test/events", timeout=30
        ) as response:
            assert response.status == 201, host
        sent[dc].append(event_id)
    for dc, host in (("eqiad", "kafka1002.eqiad.wmnet"), ("codfw", "kafka2001.codfw.wmnet")):
        args = f"{CONSUME} {host}:9092 {dc}.mediawiki.page_edit executable={RELEASE_PYTHON}"
        ids = json.loads(ansible(host, "ansible.builtin.script", args)[host]["stdout"])
        assert set(sent[dc]) <= set(ids)
        other = "codfw" if dc == "eqiad" else "eqiad"
        assert not set(sent[other]) & set(ids)  # each event went to its own datacenter
