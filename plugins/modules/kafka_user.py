#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_user
short_description: A Kafka user's SCRAM credential and the ACLs of its principal
version_added: 0.1.0
description:
  - Keeps one Kafka user as the task describes it, as Strimzi's KafkaUser does - a SCRAM
    credential (created through the Admin API, which KRaft clusters store in their metadata)
    and exactly the ACLs listed in O(acls) for the principal C(User:<name>). ACLs of that
    principal that the task does not list are removed.
  - Connect as a principal that may alter the cluster - one of the brokers' C(super.users),
    for example with the certificate of a broker or of the operator on the brokers' TLS listener.
  - A SCRAM credential cannot be read back, so with O(update_password=on_create) the password
    is set only when the user has no credential for O(mechanism); O(update_password=always)
    sets it on every run (and reports a change), which is how a password is rotated.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.kafka
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  diff_mode:
    support: none
    details: The changes are returned in RV(acls_added) and RV(acls_removed).
options:
  name:
    description:
      - The user name; its principal is C(User:<name>).
    type: str
    required: true
  state:
    description:
      - V(present) makes the credential and the ACLs what the task says; V(absent) removes the
        user's credentials and every ACL of its principal.
    type: str
    choices: [present, absent]
    default: present
  password:
    description:
      - The user's password. Required with O(state=present).
    type: str
  mechanism:
    description:
      - The SCRAM mechanism of the credential; credentials for the other mechanism are removed.
    type: str
    choices: [SCRAM-SHA-256, SCRAM-SHA-512]
    default: SCRAM-SHA-512
  iterations:
    description:
      - PBKDF2 iterations of the stored credential (Kafka accepts 4096 to 16384).
    type: int
    default: 8192
  update_password:
    description:
      - V(on_create) sets the password only for a user without a credential for O(mechanism);
        V(always) sets it on every run.
    type: str
    choices: [on_create, always]
    default: on_create
  acls:
    description:
      - Every ACL the principal C(User:<name>) should have; an empty list removes them all.
    type: list
    elements: dict
    default: []
    suboptions:
      resource_type:
        description: What the ACL is on.
        type: str
        required: true
        choices: [topic, group, cluster, transactional_id]
      name:
        description:
          - The resource's name (with O(acls[].pattern_type=prefixed), the prefix of the names);
            C(*) is every resource of that type. Not used for V(cluster).
        type: str
      pattern_type:
        description: How O(acls[].name) matches.
        type: str
        choices: [literal, prefixed]
        default: literal
      operations:
        description: The operations allowed (or denied).
        type: list
        elements: str
        required: true
        choices: [all, read, write, create, delete, alter, describe, cluster_action,
                  describe_configs, alter_configs, idempotent_write]
      permission:
        description: Allow or deny.
        type: str
        choices: [allow, deny]
        default: allow
      host:
        description: The client address the ACL applies to; C(*) is any.
        type: str
        default: "*"
seealso:
  - module: eventplatform.eventbus.kafka_topic_describe
  - name: Strimzi's KafkaUser
    description: The model of one user as one desired state.
    link: https://strimzi.io/docs/operators/latest/configuring.html#type-KafkaUser-reference
"""

EXAMPLES = r"""
- name: The service may produce to its datacenter's topics and nothing else
  eventplatform.eventbus.kafka_user:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9094]
    security_protocol: SSL
    ssl_cafile: /etc/kafka/tls/ca.pem
    ssl_certfile: /etc/kafka/tls/node.pem
    ssl_keyfile: /etc/kafka/tls/node.key
    name: eventbus
    password: "{{ vault_eventbus_kafka_password }}"
    acls:
      - resource_type: topic
        name: "eqiad."
        pattern_type: prefixed
        operations: [write, describe]
      - {resource_type: cluster, operations: [describe, idempotent_write]}

- name: Rotate a password
  eventplatform.eventbus.kafka_user:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9094]
    security_protocol: SSL
    ssl_cafile: /etc/kafka/tls/ca.pem
    ssl_certfile: /etc/kafka/tls/node.pem
    ssl_keyfile: /etc/kafka/tls/node.key
    name: eventbus-replay
    password: "{{ vault_replay_kafka_password }}"
    update_password: always
    acls:
      - resource_type: topic
        name: "eqiad."
        pattern_type: prefixed
        operations: [write, read, describe]
"""

RETURN = r"""
user:
  description: The user name.
  returned: always
  type: str
  sample: eventbus
password_set:
  description: Whether the password was (in check mode - would be) written.
  returned: always
  type: bool
mechanisms_before:
  description: The SCRAM mechanisms the user had a credential for before the task.
  returned: always
  type: list
  elements: str
  sample: [SCRAM-SHA-512]
acls_added:
  description: ACL entries created (in check mode - to create), one per operation.
  returned: always
  type: list
  elements: dict
  sample:
    - {resource_type: topic, name: "eqiad.", pattern_type: prefixed, operation: write,
       permission: allow, host: "*"}
acls_removed:
  description: ACL entries of the principal removed (in check mode - to remove).
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
    admin_session,
    kafka_module,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_users import (
    MECHANISMS,
    acl_argspec,
    apply_user,
    describe_entries,
    plan_user,
)


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        password=dict(type="str", no_log=True),
        mechanism=dict(type="str", choices=MECHANISMS, default="SCRAM-SHA-512"),
        iterations=dict(type="int", default=8192),
        update_password=dict(
            type="str", choices=["on_create", "always"], default="on_create", no_log=False
        ),
        acls=dict(type="list", elements="dict", default=[], options=acl_argspec()),
    )


def main():
    module = kafka_module(argument_spec())
    params = module.params
    if params["state"] == "present" and not params["password"]:
        module.fail_json(msg="kafka_user: state=present needs a password for %s" % params["name"])
    if not 4096 <= params["iterations"] <= 16384:
        module.fail_json(
            msg="kafka_user: iterations must be between 4096 and 16384 (Kafka's bounds)"
        )
    try:
        with admin_session(params) as admin:
            plan = plan_user(admin, params)
            changed = bool(
                plan["set_password"]
                or plan["remove_mechanisms"]
                or plan["acls_added"]
                or plan["acls_removed"]
            )
            if changed and not module.check_mode:
                apply_user(admin, params, plan)
    except KafkaModuleError as err:
        module.fail_json(msg=str(err), user=params["name"])
    module.exit_json(
        changed=changed,
        user=params["name"],
        password_set=plan["set_password"],
        mechanisms_before=plan["mechanisms_before"],
        acls_added=describe_entries(plan["acls_added"]),
        acls_removed=describe_entries(plan["acls_removed"]),
    )


if __name__ == "__main__":
    main()
