# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Kafka user as one desired state: its SCRAM credential and every ACL of its principal.

The model is Strimzi's KafkaUser (authentication scram-sha-512, authorization simple): the
module owns the ACLs whose principal is ``User:<name>``; the ones the task does not list are
removed. ``plan_user()`` compares what the cluster holds with what the task asks for;
``apply_user()`` makes the change. Both read the cluster with kafka-python's admin client.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
)

try:
    from kafka import errors as kafka_errors
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )
except ImportError:  # reported by kafka_module()
    pass

RESOURCE_TYPES = ["topic", "group", "cluster", "transactional_id"]
PATTERN_TYPES = ["literal", "prefixed"]
OPERATIONS = [
    "all",
    "read",
    "write",
    "create",
    "delete",
    "alter",
    "describe",
    "cluster_action",
    "describe_configs",
    "alter_configs",
    "idempotent_write",
]
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
CLUSTER_RESOURCE_NAME = "kafka-cluster"


def acl_argspec():
    return dict(
        resource_type=dict(type="str", required=True, choices=RESOURCE_TYPES),
        name=dict(type="str"),
        pattern_type=dict(type="str", default="literal", choices=PATTERN_TYPES),
        operations=dict(type="list", elements="str", required=True, choices=OPERATIONS),
        permission=dict(type="str", default="allow", choices=["allow", "deny"]),
        host=dict(type="str", default="*"),
    )


def _key(resource_type, name, pattern_type, operation, permission, host):
    """One ACL entry, comparable: all names lower-case as the module's options spell them."""
    return (resource_type, name, pattern_type, operation, permission, host)


def desired_acls(acls):
    """The entries the task asks for, one per operation; a cluster ACL's name is fixed."""
    entries = set()
    for acl in acls:
        if acl["resource_type"] == "cluster":
            name = CLUSTER_RESOURCE_NAME
        elif not acl.get("name"):
            raise KafkaModuleError(
                "an ACL on a %s needs a name (a topic name, or with pattern_type=prefixed a "
                "prefix such as 'eqiad.')" % acl["resource_type"]
            )
        else:
            name = acl["name"]
        pattern = "literal" if acl["resource_type"] == "cluster" else acl["pattern_type"]
        for operation in acl["operations"]:
            entries.add(
                _key(acl["resource_type"], name, pattern, operation, acl["permission"], acl["host"])
            )
    return entries


def _from_kafka(acl):
    pattern = acl.resource_pattern
    return _key(
        pattern.resource_type.name.lower(),
        pattern.resource_name,
        pattern.pattern_type.name.lower(),
        acl.operation.name.lower(),
        acl.permission_type.name.lower(),
        acl.host,
    )


def _to_kafka(principal, entry):
    resource_type, name, pattern_type, operation, permission, host = entry
    return ACL(
        principal=principal,
        host=host,
        operation=ACLOperation[operation.upper()],
        permission_type=ACLPermissionType[permission.upper()],
        resource_pattern=ResourcePattern(
            ResourceType[resource_type.upper()], name, ACLResourcePatternType[pattern_type.upper()]
        ),
    )


def _check_error(what, error):
    """Raise KafkaModuleError for a kafka-python error (an instance, or the class a response
    carries); nothing for None or NoError."""
    if error is None:
        return
    kind = error if isinstance(error, type) else type(error)
    if kind is not kafka_errors.NoError:
        if issubclass(kind, kafka_errors.SecurityDisabledError):
            raise KafkaModuleError(
                "%s: the cluster has no authorizer (authorizer.class.name is not set), so it keeps "
                "no ACLs; configure the StandardAuthorizer or leave acls out" % what
            )
        if issubclass(kind, kafka_errors.ClusterAuthorizationFailedError):
            raise KafkaModuleError(
                "%s: the connecting principal may not manage ACLs (it needs ALTER on the cluster, "
                "or to be one of the brokers' super.users)" % what
            )
        raise KafkaModuleError("%s failed: %s" % (what, error))


def read_acls(admin, principal):
    acl_filter = ACLFilter(
        principal=principal,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    try:
        acls, error = admin.describe_acls(acl_filter)
    except kafka_errors.KafkaError as err:
        _check_error("reading the ACLs of %s" % principal, err)
        raise
    _check_error("reading the ACLs of %s" % principal, error)
    return set(_from_kafka(acl) for acl in acls)


def read_mechanisms(admin, name):
    """The SCRAM mechanisms the user has a credential for (empty: no such user)."""
    try:
        described = admin.describe_user_scram_credentials([name])
    except kafka_errors.KafkaError as err:
        raise KafkaModuleError(
            "reading the SCRAM credentials of %s failed: %s" % (name, err)
        ) from err
    found = described.get(name) or {}
    if (
        found.get("error")
        and "not exist" not in found["error"]
        and "Attempt to describe" not in found["error"]
    ):
        raise KafkaModuleError(
            "reading the SCRAM credentials of %s failed: %s" % (name, found["error"])
        )
    return sorted(
        info["mechanism"].name.replace("_", "-") for info in found.get("credential_infos") or []
    )


def plan_user(admin, params):
    """What would change: {'set_password', 'remove_mechanisms', 'acls_added', 'acls_removed'}."""
    name = params["name"]
    principal = "User:%s" % name
    mechanisms = read_mechanisms(admin, name)
    current_acls = read_acls(admin, principal)
    if params["state"] == "absent":
        return dict(
            set_password=False,
            remove_mechanisms=mechanisms,
            acls_added=set(),
            acls_removed=current_acls,
            mechanisms_before=mechanisms,
        )
    wanted_acls = desired_acls(params["acls"] or [])
    mechanism = params["mechanism"]
    set_password = mechanism not in mechanisms or params["update_password"] == "always"
    return dict(
        set_password=set_password,
        remove_mechanisms=[m for m in mechanisms if m != mechanism],
        acls_added=wanted_acls - current_acls,
        acls_removed=current_acls - wanted_acls,
        mechanisms_before=mechanisms,
    )


def apply_user(admin, params, plan):
    name = params["name"]
    principal = "User:%s" % name
    alterations = [UserScramCredentialDeletion(name, m) for m in plan["remove_mechanisms"]]
    if plan["set_password"]:
        alterations.append(
            UserScramCredentialUpsertion(
                name, params["mechanism"], params["password"], iterations=params["iterations"]
            )
        )
    if alterations:
        try:
            errors = admin.alter_user_scram_credentials(alterations)
        except kafka_errors.KafkaError as err:
            raise KafkaModuleError(
                "changing the SCRAM credentials of %s failed: %s" % (name, err)
            ) from err
        failed = dict((user, message) for user, message in errors.items() if message)
        if failed:
            raise KafkaModuleError(
                "Kafka refused the SCRAM credentials of %s: %s" % (name, failed.get(name, failed))
            )
    if plan["acls_added"]:
        try:
            result = admin.create_acls(
                [_to_kafka(principal, e) for e in sorted(plan["acls_added"])]
            )
        except kafka_errors.KafkaError as err:
            _check_error("creating ACLs for %s" % principal, err)
            raise
        failed = result.get("failed") or []
        if failed:
            _check_error("creating ACLs for %s" % principal, failed[0][1])
    if plan["acls_removed"]:
        filters = [_to_kafka(principal, e) for e in sorted(plan["acls_removed"])]
        try:
            results = admin.delete_acls(filters)
        except kafka_errors.KafkaError as err:
            _check_error("removing ACLs of %s" % principal, err)
            raise
        for _filter, _matching, error in results:
            _check_error("removing ACLs of %s" % principal, error)


def describe_entries(entries):
    """ACL entries as the module returns them."""
    return [
        dict(
            resource_type=e[0],
            name=e[1],
            pattern_type=e[2],
            operation=e[3],
            permission=e[4],
            host=e[5],
        )
        for e in sorted(entries)
    ]
