"""kafka_metadata_version on a real KRaft cluster upgraded from Kafka 4.1.1 to 4.2.2 one node
at a time: the finalized metadata.version stays at 4.1's level while any node runs 4.1.1 (a
finalize is refused, naming those nodes), check mode validates without changing, the finalize
reaches every broker, and the level is never lowered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.collection import run_module
from tests.harness.kafka import KafkaCluster, resolve_bundle

OLD, NEW = "4.1.1", "4.2.2"
OLD_LEVEL, NEW_LEVEL = 27, 29  # kafka-features version-mapping of each release


@pytest.fixture
def old_cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(bundle=resolve_bundle(OLD), workdir=tmp_path / "kafka", size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def metadata_version(cluster: KafkaCluster, check: bool = False, **args: object) -> dict:
    return run_module(
        "kafka_metadata_version",
        {"bootstrap_servers": cluster.bootstrap_servers.split(","), **args},
        check=check,
    )


def test_finalize_only_once_every_node_runs_the_new_release(old_cluster: KafkaCluster) -> None:
    read = metadata_version(old_cluster)
    assert not read.get("failed"), read.get("msg")
    assert read["changed"] is False
    assert read["before"]["finalized"] == OLD_LEVEL
    assert read["before"]["highest"] == OLD_LEVEL
    assert sorted(read["before"]["supported"]) == ["1", "2", "3"]

    refused = metadata_version(old_cluster, level=NEW_LEVEL)
    assert refused["failed"] is True
    assert "broker(s) 1, 2, 3 support only up to" in refused["msg"], refused["msg"]
    assert metadata_version(old_cluster, highest=True)["changed"] is False  # 27 is the highest

    new_bundle = resolve_bundle(NEW)
    old_cluster.upgrade_node(1, new_bundle)
    half = metadata_version(old_cluster, level=NEW_LEVEL)
    assert half["failed"] is True
    assert "broker(s) 2, 3 support only up to 27 (4.1)" in half["msg"], half["msg"]
    assert "kafka_rolling_restart" in half["msg"]
    mixed = metadata_version(old_cluster)
    assert mixed["before"]["supported"]["1"][1] == NEW_LEVEL
    assert mixed["before"]["highest"] == OLD_LEVEL  # what every broker supports
    assert mixed["before"]["finalized"] == OLD_LEVEL

    for node_id in (2, 3):
        old_cluster.upgrade_node(node_id, new_bundle)
    checked = metadata_version(old_cluster, check=True, highest=True)
    assert not checked.get("failed"), checked.get("msg")
    assert checked["changed"] is True
    assert checked["level"] == NEW_LEVEL
    assert metadata_version(old_cluster)["before"]["finalized"] == OLD_LEVEL  # nothing changed

    finalized = metadata_version(old_cluster, highest=True)
    assert not finalized.get("failed"), finalized.get("msg")
    assert finalized["changed"] is True
    assert finalized["before"]["finalized"] == OLD_LEVEL
    assert set(finalized["after"]["finalized_by"].values()) == {NEW_LEVEL}
    assert metadata_version(old_cluster, highest=True)["changed"] is False

    lowered = metadata_version(old_cluster, level=OLD_LEVEL)
    assert lowered["failed"] is True
    assert "is not lowered" in lowered["msg"], lowered["msg"]
    assert metadata_version(old_cluster)["before"]["finalized"] == NEW_LEVEL


def test_bad_arguments_say_what_to_give(tmp_path: Path) -> None:
    nowhere = {"bootstrap_servers": ["127.0.0.1:1"]}
    both = run_module("kafka_metadata_version", {**nowhere, "level": 29, "highest": True})
    assert both["failed"] is True
    assert "not both" in both["msg"]
    zero = run_module("kafka_metadata_version", {**nowhere, "level": 0})
    assert zero["failed"] is True
    assert "version-mapping" in zero["msg"]
