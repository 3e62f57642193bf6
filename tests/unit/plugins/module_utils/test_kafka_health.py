"""Rules of _kafka_health on hand-written metadata shaped like kafka-python's answers."""

from __future__ import annotations

import pytest
from ansible_collections.eventplatform.eventbus.plugins.module_utils import _kafka_health as health


def raw_partition(index, leader, replicas, isr, offline=()):
    return {
        "partition_index": index,
        "leader_id": leader,
        "replica_nodes": list(replicas),
        "isr_nodes": list(isr),
        "offline_replicas": list(offline),
        "error_code": 0,
    }


def raw_topic(name, *partitions, internal=False):
    return {"name": name, "error_code": 0, "is_internal": internal, "partitions": list(partitions)}


def raw_quorum(voters, down=(), stale=()):
    return {
        "topics": [
            {
                "partitions": [
                    {
                        "leader_id": voters[0],
                        "leader_epoch": 2,
                        "high_watermark": 40,
                        "current_voters": [
                            {
                                "replica_id": v,
                                "last_caught_up_timestamp": -1
                                if v in down
                                else 1000
                                if v in stale
                                else 90000,
                            }
                            for v in voters
                        ],
                        "observers": [],
                    }
                ]
            }
        ]
    }


HEALTHY = [
    raw_topic("eqiad.test.event", raw_partition(0, 1, [1, 2, 3], [1, 2, 3])),
    raw_topic(
        "eqiad.mediawiki.page_edit",
        raw_partition(1, 2, [2, 3, 1], [2, 3, 1]),
        raw_partition(0, 3, [1, 3, 2], [1, 3, 2]),
    ),
    raw_topic("__consumer_offsets", raw_partition(0, 1, [1, 2, 3], [1, 2, 3]), internal=True),
]


def described(raw_topics, min_isr=2):
    return health.describe_topics(raw_topics, {t["name"]: min_isr for t in raw_topics})


def test_describe_sorts_partitions_and_names_the_preferred_leader():
    topics = described(HEALTHY)
    page_edit = topics["eqiad.mediawiki.page_edit"]
    assert [p["partition"] for p in page_edit["partitions"]] == [0, 1]
    first = page_edit["partitions"][0]
    assert first["preferred_leader"] == 1
    assert first["leader"] == 3
    assert first["leader_is_preferred"] is False
    assert page_edit["replication_factor"] == 3
    assert page_edit["min_insync_replicas"] == 2


def test_summary_of_a_healthy_cluster():
    summary = health.summarize(
        described(HEALTHY), [1, 2, 3], health.quorum_summary(raw_quorum([1, 2, 3]))
    )
    assert summary["healthy"] is True
    assert summary["partition_count"] == 4
    assert summary["under_replicated_partitions"] == []
    assert summary["not_preferred_leader_partitions"] == ["eqiad.mediawiki.page_edit-0"]
    assert summary["leader_count"] == {"1": 2, "2": 1, "3": 1}


def test_shrunken_isr_is_under_replicated_and_under_min_isr():
    topics = described([raw_topic("t", raw_partition(0, 1, [1, 2, 3], [1], offline=[2, 3]))])
    summary = health.summarize(topics, [1])
    assert summary["under_replicated_partitions"] == ["t-0"]
    assert summary["under_min_isr_partitions"] == ["t-0"]
    assert summary["healthy"] is False


def test_partition_without_leader_is_offline():
    topics = described([raw_topic("t", raw_partition(0, -1, [2, 3], [], offline=[2, 3]))])
    summary = health.summarize(topics, [1])
    assert summary["offline_partitions"] == ["t-0"]
    assert topics["t"]["partitions"][0]["leader"] is None
    assert summary["not_preferred_leader_partitions"] == []


@pytest.mark.parametrize(
    ("isr", "min_isr", "safe", "reason_part"),
    [
        ([1, 2, 3], 2, True, None),
        ([1, 2], 2, False, "below min.insync.replicas=2"),
        ([1], 1, False, "would go offline"),
        ([2, 3], 2, True, None),  # broker 1 already out of the ISR: stopping it changes nothing
        ([1, 2], 1, True, None),
    ],
)
def test_safe_to_stop_follows_min_isr(isr, min_isr, safe, reason_part):
    topics = described([raw_topic("t", raw_partition(0, isr[0], [1, 2, 3], isr))], min_isr)
    impact = health.broker_impact(topics, 1, [1, 2, 3])
    assert impact["safe_to_stop"] is safe
    if reason_part:
        assert reason_part in impact["reasons"][0]
        assert impact["reasons"][0].startswith("t-0 ")
    else:
        assert impact["reasons"] == []


def test_broker_impact_lists_leaderships_and_replicas():
    impact = health.broker_impact(described(HEALTHY), 3, [1, 2, 3])
    assert impact["leads"] == ["eqiad.mediawiki.page_edit-0"]
    assert sorted(impact["replicates"]) == sorted(
        [
            "eqiad.test.event-0",
            "eqiad.mediawiki.page_edit-0",
            "eqiad.mediawiki.page_edit-1",
            "__consumer_offsets-0",
        ]
    )


def test_stopping_a_voter_that_would_break_the_quorum_majority_is_unsafe():
    quorum = health.quorum_summary(raw_quorum([1, 2, 3], down=[2]))
    assert quorum["voters_in_sync"] == [1, 3]
    assert quorum["has_majority"] is True
    impact = health.broker_impact({}, 3, [1, 3], quorum)
    assert health.broker_impact({}, 2, [1, 3], quorum)["safe_to_stop"] is True
    assert impact["safe_to_stop"] is False
    assert "quorum would lose its majority" in impact["reasons"][0]
    # a broker that is not a voter does not touch the quorum
    assert health.broker_impact({}, 7, [1, 3, 7], quorum)["safe_to_stop"] is True


@pytest.mark.parametrize(
    ("names", "pattern", "internal", "expected", "missing"),
    [
        (None, None, False, ["eqiad.mediawiki.page_edit", "eqiad.test.event"], []),
        (
            None,
            None,
            True,
            ["__consumer_offsets", "eqiad.mediawiki.page_edit", "eqiad.test.event"],
            [],
        ),
        (None, r"eqiad\.test\..*", False, ["eqiad.test.event"], []),
        (None, r"test", False, [], []),  # the pattern must match the whole name
        (["eqiad.test.event", "nope"], None, False, ["eqiad.test.event"], ["nope"]),
        (["__consumer_offsets"], None, False, ["__consumer_offsets"], []),  # named explicitly
    ],
)
def test_select_topics(names, pattern, internal, expected, missing):
    selected, not_found = health.select_topics(HEALTHY, names, pattern, internal)
    assert [t["name"] for t in selected] == expected
    assert not_found == missing


def test_a_voter_that_stopped_fetching_is_not_in_sync():
    # the leader (1) still lists voter 3 with the timestamp of its last fetch, 89 s ago
    quorum = health.quorum_summary(raw_quorum([1, 2, 3], stale=[3]))
    assert quorum["voters_in_sync"] == [1, 2]
    quorum = health.quorum_summary(raw_quorum([1, 2, 3], down=[2], stale=[3]))
    assert quorum["voters_in_sync"] == [1]
    assert quorum["has_majority"] is False


# -- Strimzi's canRoll, over every topic ------------------------------------------------------
def test_an_out_of_sync_replica_of_a_partition_under_min_isr_is_not_safe_to_stop():
    # isr [1] of replicas [1, 2, 3], min ISR 2: broker 3 is catching up; stopping it delays that
    topics = described([raw_topic("t", raw_partition(0, 1, [1, 2, 3], [1]))], 2)
    impact = health.broker_impact(topics, 3, [1, 2, 3])
    assert impact["safe_to_stop"] is False
    assert "t-0 is already under min.insync.replicas=2" in impact["reasons"][0]
    # an out-of-sync replica of a partition that still has enough in sync is fine
    fine = described([raw_topic("t", raw_partition(0, 1, [1, 2, 3], [1, 2]))], 2)
    assert health.broker_impact(fine, 3, [1, 2, 3])["safe_to_stop"] is True


def test_internal_topics_count_for_safety():
    raw = [raw_topic("__consumer_offsets", raw_partition(0, 2, [1, 2], [2]), internal=True)]
    impact = health.broker_impact(described(raw, 1), 2, [1, 2])
    assert impact["safe_to_stop"] is False
    assert "__consumer_offsets-0 would go offline" in impact["reasons"][0]


@pytest.mark.parametrize(
    ("unreadable", "reason"),
    [
        ({"t": "metadata error code 5"}, "topic t cannot be judged: metadata error code 5"),
        ({"t": "its min.insync.replicas was not answered"}, "was not answered"),
    ],
)
def test_what_cannot_be_read_fails_closed(unreadable, reason):
    impact = health.broker_impact(described(HEALTHY), 1, [1, 2, 3], unreadable=unreadable)
    assert impact["safe_to_stop"] is False
    assert reason in impact["reasons"][0]


def test_unreadable_topics_are_found():
    raw = [*HEALTHY, {"name": "broken", "error_code": 5, "partitions": []}]
    min_isr = {t["name"]: 2 for t in HEALTHY if t["name"] != "eqiad.test.event"}
    assert health.unreadable_topics(raw, min_isr) == {
        "broken": "metadata error code 5",
        "eqiad.test.event": "its min.insync.replicas was not answered",
    }


@pytest.mark.parametrize(("replicas", "min_isr"), [([1], 1), ([1, 2], 2), ([1, 2], 3)])
def test_a_topic_that_cannot_lose_a_replica_warns_and_does_not_block(replicas, min_isr):
    topics = described([raw_topic("rf", raw_partition(0, 1, replicas, replicas))], min_isr)
    impact = health.broker_impact(topics, 1, [1, 2, 3])
    assert impact["safe_to_stop"] is True
    (warning,) = impact["warnings"]
    assert f"rf has replication factor {len(replicas)} and min.insync.replicas={min_isr}" in warning


def test_a_steady_cluster_needs_consecutive_healthy_samples() -> None:
    """One unhealthy sample starts the count again; the wait ends at the count, or fails
    past its timeout naming what the last sample found."""
    from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
        KafkaModuleError,
    )
    from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_describe import (
        wait_until_steady,
    )

    healthy = {"summary": {"healthy": True}}
    sick = {"summary": {"healthy": False, "under_replicated_partitions": ["eqiad.a-0"]}}
    unregistered = {"summary": {"healthy": True}, "broker": {"id": 3, "registered": False}}
    now = [0.0]

    def run(samples: list, count: int, timeout: float = 100.0) -> dict:
        queue = list(samples)
        now[0] = 0.0

        def sleep(seconds: float) -> None:
            now[0] += seconds

        return wait_until_steady(lambda: dict(queue.pop(0)), count, 2.0, timeout,
                                 clock=lambda: now[0], sleep=sleep)  # fmt: skip

    done = run([healthy, sick, healthy, unregistered, healthy, healthy, healthy], 3)
    assert done["samples"] == 7  # the streak restarted after the sick and unregistered ones
    assert done["waited"] == 12.0
    with pytest.raises(KafkaModuleError) as err:
        run([healthy, sick, healthy, sick, healthy] * 10, 3, timeout=9.0)
    assert "not healthy in 3 consecutive samples 2.0s apart within 9.0s" in str(err.value)
    with pytest.raises(KafkaModuleError) as err:
        run([unregistered] * 10, 2, timeout=3.0)
    assert "broker 3 is not registered" in str(err.value)
