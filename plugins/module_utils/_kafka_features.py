# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's finalized ``metadata.version`` (KIP-584, KIP-778) and what each broker supports.

A Kafka upgrade rolls every node onto the new release first; the metadata version stays at the
old release's level, so that any node can still go back to the old release. Once every node
runs the new release and the cluster is healthy, the operator finalizes: the metadata version
is raised to a level every broker supports (the controllers check their quorum themselves).
After that the old release cannot start on this cluster any more: a finalize is one way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
)

try:
    from kafka import errors as kafka_errors
    from kafka.protocol.metadata import ApiVersionsRequest
except ImportError:  # kafka_module() fails first, saying what to install
    kafka_errors = None
    ApiVersionsRequest = None

METADATA_VERSION = "metadata.version"
# the metadata version of each Kafka release's newest stable level (kafka-features
# version-mapping --release-version X), for messages; levels outside it are shown as numbers
RELEASE_LEVELS = {
    "3.7": 19,
    "3.8": 20,
    "3.9": 21,
    "4.0": 25,
    "4.1": 27,
    "4.2": 29,
}
WAIT_PAUSE = 0.5


def level_name(level):
    """``29 (4.2)`` for a level some release ends at, the number alone otherwise."""
    for release, release_level in RELEASE_LEVELS.items():
        if release_level == level:
            return "%d (%s)" % (level, release)
    return "%s" % level


def _broker_features(admin, broker_id):
    """One broker's ApiVersions answer: the features it supports and those finalized."""
    manager = getattr(admin, "_manager", None)
    if manager is None or ApiVersionsRequest is None:
        raise KafkaModuleError(
            "this kafka-python cannot ask one broker for its features: install kafka-python "
            ">= 3.0 on the host that runs the module"
        )

    async def ask():
        request = ApiVersionsRequest(
            client_software_name=manager.config["client_software_name"],
            client_software_version=manager.config["client_software_version"],
            min_version=3,
        )
        return await manager.send(request, node_id=broker_id)

    response = manager.run(ask)
    if response.error_code:
        raise KafkaModuleError(
            "broker %d refused ApiVersions (error %d)" % (broker_id, response.error_code)
        )
    supported = {f.name: [f.min_version, f.max_version] for f in response.supported_features or []}
    finalized = {f.name: f.max_version_level for f in response.finalized_features or []}
    return supported, finalized


def read_metadata_version(admin):
    """Every registered broker's supported range and finalized level of metadata.version.

    Returns ``brokers`` (ids), ``supported`` ({id: [min, max]}), ``finalized`` (the highest
    level any broker reports: a new level reaches the brokers one by one), ``finalized_by``
    ({id: level}) and ``highest`` (the highest level every broker supports).
    """
    try:
        cluster = admin.describe_cluster()
        brokers = sorted(int(b["broker_id"]) for b in cluster["brokers"])
        supported, finalized_by = {}, {}
        for broker in brokers:
            broker_supported, broker_finalized = _broker_features(admin, broker)
            if METADATA_VERSION not in broker_supported:
                raise KafkaModuleError(
                    "broker %d does not report %s support: it runs a Kafka older than 3.3 or "
                    "in ZooKeeper mode, which this collection does not manage"
                    % (broker, METADATA_VERSION)
                )
            supported[broker] = broker_supported[METADATA_VERSION]
            finalized_by[broker] = broker_finalized.get(METADATA_VERSION)
    except kafka_errors.KafkaError as err:
        raise KafkaModuleError("reading the brokers' features failed: %s" % err) from err
    if not brokers:
        raise KafkaModuleError("the cluster lists no broker: is Kafka starting?")
    known = [level for level in finalized_by.values() if level is not None]
    return dict(
        brokers=brokers,
        supported=supported,
        finalized=max(known) if known else None,
        finalized_by=finalized_by,
        highest=min(r[1] for r in supported.values()),
    )


def finalize_metadata_version(admin, level, check_mode, wait_timeout):
    """Raise metadata.version to ``level`` (``None``: the highest every broker supports).

    Refuses a downgrade, and a level some broker does not support (naming the brokers still on
    the old release). In check mode the controller validates the change without making it.
    Waits until every broker reports the new level. Returns ``changed``, ``before`` and the
    state read afterwards."""
    before = read_metadata_version(admin)
    current = before["finalized"]
    if current is None:
        raise KafkaModuleError(
            "no broker reports a finalized %s: the cluster was not formatted in KRaft mode "
            "by a Kafka of 3.3 or later" % METADATA_VERSION
        )
    target = before["highest"] if level is None else level
    if target < current:
        raise KafkaModuleError(
            "%s is %s; %s is lower: a finalized metadata version is not lowered by this "
            "module (the old release's nodes cannot read the new metadata; see Kafka's "
            "downgrade notes)" % (METADATA_VERSION, level_name(current), level_name(target))
        )
    if target == current:
        return dict(changed=False, before=before, after=before, level=target)
    behind = sorted(
        b for b, (low, high) in before["supported"].items() if not low <= target <= high
    )
    if behind:
        raise KafkaModuleError(
            "%s %s cannot be finalized: broker(s) %s support only up to %s. Roll them onto "
            "the new Kafka release first (eventplatform.eventbus.kafka_rolling_restart after "
            "a converge with the new kafka_version), then finalize"
            % (
                METADATA_VERSION,
                level_name(target),
                ", ".join(str(b) for b in behind),
                ", ".join(level_name(before["supported"][b][1]) for b in behind),
            )
        )
    try:
        answer = admin.update_features({METADATA_VERSION: target}, validate_only=check_mode)
    except kafka_errors.KafkaError as err:
        raise KafkaModuleError(
            "the controller refused %s %s: %s" % (METADATA_VERSION, level_name(target), err)
        ) from err
    if answer.get(METADATA_VERSION) != "OK":
        raise KafkaModuleError(
            "the controller refused %s %s: %s"
            % (METADATA_VERSION, level_name(target), answer.get(METADATA_VERSION))
        )
    if check_mode:
        return dict(changed=True, before=before, after=before, level=target)
    deadline = time.monotonic() + wait_timeout
    while True:
        after = read_metadata_version(admin)
        if all(found == target for found in after["finalized_by"].values()):
            return dict(changed=True, before=before, after=after, level=target)
        if time.monotonic() >= deadline:
            raise KafkaModuleError(
                "%s %s was accepted by the controller, but after %.0f s brokers report %s: "
                "check their logs; run the module again to read the state"
                % (METADATA_VERSION, level_name(target), wait_timeout, after["finalized_by"])
            )
        time.sleep(WAIT_PAUSE)
