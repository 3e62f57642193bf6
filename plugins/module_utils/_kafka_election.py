# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leader elections: which partitions an election would move, running it, confirming it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
    fetch_cluster_metadata,
    request_leader_election,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_health import (
    describe_topics,
    partition_name,
    select_topics,
)

PREFERRED = "preferred"
UNCLEAN = "unclean"
ELECTION_TYPE_CODES = {PREFERRED: 0, UNCLEAN: 1}


def selected_partitions(topics, topic_names=None, partitions=None):
    """Described partitions restricted to the given topics and/or (topic, partition) pairs."""
    wanted = set((p["topic"], p["partition"]) for p in (partitions or []))
    names = set(topic_names or [])
    for info in topics.values():
        for p in info["partitions"]:
            if (
                (not names and not wanted)
                or p["topic"] in names
                or (p["topic"], p["partition"]) in wanted
            ):
                yield p


def plan_election(partitions, election_type):
    """Split partitions into those the election would move and those it cannot help.

    Preferred: a partition moves when its leader is not its preferred replica and the
    preferred replica is in sync. Unclean: a partition without a leader moves when some
    replica is alive to take over (Kafka then picks one, possibly losing data).
    """
    moves, blocked = [], []
    for p in partitions:
        name = partition_name(p["topic"], p["partition"])
        if election_type == PREFERRED:
            if p["leader_is_preferred"]:
                continue
            if p["preferred_leader"] in p["isr"]:
                moves.append(
                    dict(
                        partition=name,
                        topic=p["topic"],
                        index=p["partition"],
                        leader_before=p["leader"],
                        leader_expected=p["preferred_leader"],
                    )
                )
            else:
                blocked.append(
                    dict(
                        partition=name,
                        reason="preferred leader %s is not in the ISR %s"
                        % (p["preferred_leader"], p["isr"]),
                    )
                )
        elif p["offline"]:
            moves.append(
                dict(
                    partition=name,
                    topic=p["topic"],
                    index=p["partition"],
                    leader_before=None,
                    leader_expected=None,
                )
            )
    return moves, blocked


def _describe(admin, topic_names):
    metadata = fetch_cluster_metadata(admin, topic_names)
    selected, missing = select_topics(metadata["topics"], topic_names, include_internal=True)
    if missing:
        raise KafkaModuleError("topic(s) not found in the cluster: %s" % ", ".join(missing))
    return describe_topics(selected, metadata["min_isr"])


def _leaders(topics):
    return dict(
        ((p["topic"], p["partition"]), p["leader"])
        for info in topics.values()
        for p in info["partitions"]
    )


def _election_errors(response):
    errors = {}
    for result in getattr(response, "replica_election_results", None) or []:
        for part in result.partition_result:
            # 84 ELECTION_NOT_NEEDED is not a failure
            if part.error_code not in (0, 84):
                errors[partition_name(result.topic, part.partition_id)] = part.error_message or (
                    "error code %d" % part.error_code
                )
    return errors


def run_leader_election(
    admin, election_type, topic_names=None, partitions=None, check_mode=False, wait_timeout=30.0
):
    """Plan, and unless in check mode run, an election; return the module result."""
    names = sorted(set((topic_names or []) + [p["topic"] for p in (partitions or [])])) or None
    before = _describe(admin, names)
    moves, blocked = plan_election(
        selected_partitions(before, topic_names, partitions), election_type
    )
    result = dict(
        changed=bool(moves), election_type=election_type, blocked=blocked, failed_partitions=[]
    )
    if check_mode or not moves:
        result["moved"] = [
            dict(
                partition=m["partition"],
                leader_before=m["leader_before"],
                leader_after=m["leader_expected"],
            )
            for m in moves
        ]
        return result

    request = {}
    for m in moves:
        request.setdefault(m["topic"], []).append(m["index"])
    response = request_leader_election(admin, ELECTION_TYPE_CODES[election_type], request)
    errors = _election_errors(response)

    # The controller answers before every broker's metadata shows the new leader: wait.
    deadline = time.time() + wait_timeout
    while True:
        leaders = _leaders(_describe(admin, names))
        pending = [m for m in moves if m["partition"] not in errors and not _moved(m, leaders)]
        if not pending or time.time() >= deadline:
            break
        time.sleep(0.5)

    result["moved"] = [
        dict(
            partition=m["partition"],
            leader_before=m["leader_before"],
            leader_after=leaders.get((m["topic"], m["index"])),
        )
        for m in moves
        if _moved(m, leaders)
    ]
    result["failed_partitions"] = [
        dict(partition=p, reason=reason) for p, reason in sorted(errors.items())
    ] + [
        dict(partition=m["partition"], reason="leader did not move within %ds" % wait_timeout)
        for m in pending
    ]
    result["changed"] = bool(result["moved"])
    return result


def _moved(move, leaders):
    leader = leaders.get((move["topic"], move["index"]))
    if move["leader_expected"] is not None:
        return leader == move["leader_expected"]
    return leader is not None
