# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kafka cluster health, computed from plain metadata (no client library needed).

The inputs are the shapes kafka-python's admin client returns (topics from a metadata
request, ``min.insync.replicas`` per topic, the live brokers, the KRaft quorum); the
output is what ``kafka_topic_describe`` returns. Keeping this pure makes every rule
unit-testable with hand-written metadata.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

NO_LEADER = -1
# Voters long-poll the quorum leader: measured on a healthy 3-voter cluster, no voter's last
# catch-up lagged the leader's clock by more than 500 ms; a stopped voter's lag grows by a
# second every second. Four times the healthy worst case tells them apart.
VOTER_LAG_LIMIT_MS = 2000


def partition_name(topic, partition):
    return "%s-%d" % (topic, partition)


def select_topics(raw_topics, names=None, pattern=None, include_internal=False):
    """Filter metadata by explicit names, a regular expression (full match) and internal-ness.

    Returns (selected raw topics, names asked for that the cluster does not have).
    """
    by_name = dict((t["name"], t) for t in raw_topics if t.get("error_code", 0) == 0)
    if names:
        missing = sorted(n for n in names if n not in by_name)
        selected = [by_name[n] for n in names if n in by_name]
    else:
        missing = []
        selected = list(by_name.values())
    if pattern:
        regex = re.compile(pattern)
        selected = [t for t in selected if regex.fullmatch(t["name"])]
    if not include_internal and not names:
        selected = [
            t for t in selected if not t.get("is_internal") and not t["name"].startswith("__")
        ]
    return sorted(selected, key=lambda t: t["name"]), missing


def describe_partition(topic, raw, min_isr):
    replicas = list(raw["replica_nodes"])
    isr = list(raw["isr_nodes"])
    leader = raw["leader_id"]
    preferred = replicas[0] if replicas else None
    return {
        "topic": topic,
        "partition": raw["partition_index"],
        "leader": leader if leader != NO_LEADER else None,
        "preferred_leader": preferred,
        "replicas": replicas,
        "isr": isr,
        "offline_replicas": list(raw.get("offline_replicas") or []),
        "under_replicated": len(isr) < len(replicas),
        "under_min_isr": len(isr) < min_isr,
        "offline": leader == NO_LEADER,
        "leader_is_preferred": leader != NO_LEADER and leader == preferred,
    }


def describe_topics(raw_topics, min_isr_by_topic, default_min_isr=1):
    """Per topic: partitions (sorted), replication factor and min.insync.replicas."""
    topics = {}
    for raw in raw_topics:
        name = raw["name"]
        min_isr = min_isr_by_topic.get(name, default_min_isr)
        partitions = sorted(
            (describe_partition(name, p, min_isr) for p in raw["partitions"]),
            key=lambda p: p["partition"],
        )
        topics[name] = {
            "partition_count": len(partitions),
            "replication_factor": max([len(p["replicas"]) for p in partitions] or [0]),
            "min_insync_replicas": min_isr,
            "internal": bool(raw.get("is_internal")),
            "partitions": partitions,
        }
    return topics


def _all_partitions(topics):
    for info in topics.values():
        yield from info["partitions"]


def quorum_summary(raw_quorum):
    """Voters, leader and which voters are caught up, from DescribeQuorum's answer."""
    if not raw_quorum:
        return None
    part = raw_quorum["topics"][0]["partitions"][0]
    voters = sorted(v["replica_id"] for v in part["current_voters"])
    # Timestamps are the quorum leader's clock; its own entry is "now". A voter that has not
    # caught up for VOTER_LAG_LIMIT_MS is down or cut off; -1 means the leader never saw it.
    stamps = dict(
        (v["replica_id"], v.get("last_caught_up_timestamp", -1)) for v in part["current_voters"]
    )
    now = stamps.get(part["leader_id"], max(stamps.values() or [-1]))
    in_sync = sorted(v for v, ts in stamps.items() if ts >= 0 and now - ts <= VOTER_LAG_LIMIT_MS)
    return {
        "leader_id": part["leader_id"],
        "leader_epoch": part["leader_epoch"],
        "high_watermark": part["high_watermark"],
        "voters": voters,
        "voters_in_sync": in_sync,
        "observers": sorted(o["replica_id"] for o in part.get("observers", [])),
        "has_majority": len(in_sync) * 2 > len(voters),
    }


def summarize(topics, brokers, quorum=None, controller_id=None):
    """Cluster-wide findings an operator gates on."""
    leader_count = dict((str(b), 0) for b in brokers)
    under_replicated, under_min_isr, offline, not_preferred = [], [], [], []
    partition_count = 0
    for p in _all_partitions(topics):
        partition_count += 1
        name = partition_name(p["topic"], p["partition"])
        if p["leader"] is not None:
            leader_count[str(p["leader"])] = leader_count.get(str(p["leader"]), 0) + 1
        if p["under_replicated"]:
            under_replicated.append(name)
        if p["under_min_isr"]:
            under_min_isr.append(name)
        if p["offline"]:
            offline.append(name)
        elif not p["leader_is_preferred"]:
            not_preferred.append(name)
    healthy = not (under_replicated or under_min_isr or offline)
    if quorum is not None:
        healthy = healthy and quorum["has_majority"]
    return {
        "topic_count": len(topics),
        "partition_count": partition_count,
        "brokers": sorted(brokers),
        "controller_id": controller_id,
        "under_replicated_partitions": under_replicated,
        "under_min_isr_partitions": under_min_isr,
        "offline_partitions": offline,
        "not_preferred_leader_partitions": not_preferred,
        "leader_count": leader_count,
        "quorum": quorum,
        "healthy": healthy,
    }


def broker_impact(topics, broker_id, brokers, quorum=None, unreadable=None):
    """What stopping ``broker_id`` would do - Strimzi's KafkaAvailability.canRoll, over every
    topic of the cluster (internal ones included). ``safe_to_stop`` is false, with reasons,
    when stopping it would leave a partition offline or under min.insync.replicas, when it is
    an out-of-sync replica of a partition already under min.insync.replicas (its restart
    delays the catch-up that partition waits for), when a topic's metadata or
    min.insync.replicas could not be read (``unreadable``: fail closed), or when the KRaft
    quorum would lose its majority. A topic whose replication factor is at or below its
    min.insync.replicas cannot lose any replica and stay writable: it is reported in
    ``warnings`` and does not block the roll (else it would block every roll, Strimzi 2964)."""
    leads, replicates, reasons, warnings = [], [], [], []
    for name, why in sorted((unreadable or {}).items()):
        reasons.append("topic %s cannot be judged: %s" % (name, why))
    for p in _all_partitions(topics):
        if broker_id not in p["replicas"]:
            continue
        name = partition_name(p["topic"], p["partition"])
        replicates.append(name)
        if p["leader"] == broker_id:
            leads.append(name)
        topic = topics[p["topic"]]
        min_isr = topic["min_insync_replicas"]
        if topic["replication_factor"] <= min_isr:
            warning = (
                "%s has replication factor %d and min.insync.replicas=%d: it cannot lose a "
                "replica and stay writable, and does not block the roll"
                % (p["topic"], topic["replication_factor"], min_isr)
            )
            if warning not in warnings:
                warnings.append(warning)
            continue
        if broker_id not in p["isr"]:
            if p["under_min_isr"]:
                reasons.append(
                    "%s is already under min.insync.replicas=%d (in sync %s), and broker %d is "
                    "a replica still catching up" % (name, min_isr, p["isr"], broker_id)
                )
            continue  # not in sync: stopping it changes nothing else for this partition
        remaining = [b for b in p["isr"] if b != broker_id]
        if not remaining:
            reasons.append(
                "%s would go offline: broker %d is its only in-sync replica" % (name, broker_id)
            )
        elif len(remaining) < min_isr:
            reasons.append(
                "%s would have %d in-sync replica(s) %s, below min.insync.replicas=%d"
                % (name, len(remaining), remaining, min_isr)
            )
    if quorum is not None and broker_id in quorum["voters"]:
        left = [v for v in quorum["voters_in_sync"] if v != broker_id]
        if len(left) * 2 <= len(quorum["voters"]):
            reasons.append(
                "the KRaft quorum would lose its majority: %d of %d voters would remain in sync %s"
                % (len(left), len(quorum["voters"]), left)
            )
    return {
        "id": broker_id,
        "registered": broker_id in brokers,
        "is_quorum_voter": bool(quorum and broker_id in quorum["voters"]),
        "leads": leads,
        "replicates": replicates,
        "safe_to_stop": not reasons,
        "reasons": reasons,
        "warnings": warnings,
    }


def unreadable_topics(raw_topics, min_isr_by_topic):
    """{topic: why} for topics whose metadata came with an error, or whose
    min.insync.replicas Kafka did not answer."""
    result = {}
    for raw in raw_topics:
        if raw.get("error_code", 0) != 0:
            result[raw["name"]] = "metadata error code %s" % raw["error_code"]
        elif raw["name"] not in min_isr_by_topic:
            result[raw["name"]] = "its min.insync.replicas was not answered"
    return result
