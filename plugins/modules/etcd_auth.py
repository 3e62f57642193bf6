#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: etcd_auth
short_description: etcd's v2 authentication - root, roles, users, no anonymous access
version_added: 0.1.0
description:
  - Keeps etcd's v2 authentication (the API conftool, the pool modules and the run lock use) as
    the task describes it - the C(root) user, each role with the key paths it may read and
    write, each user with its roles - then turns authentication on and, unless
    O(guest_access), takes every right away from the anonymous C(guest) role, so that a
    client without a login can neither read nor change the pools or the locks.
  - Roles and users the task does not list are left alone.
  - A password cannot be read back; with O(update_password=on_create) a user's password is
    set when the user is created, with V(always) on every run (a rotation).
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  diff_mode:
    support: none
    details: The changes are returned in RV(roles) and RV(users).
options:
  etcd_url:
    description: etcd's client URL; the v2 API must be on.
    type: str
    default: http://127.0.0.1:2379
  etcd_ca_path:
    description: CA bundle to verify etcd's certificate with, for an C(https) O(etcd_url).
    type: path
  root_password:
    description:
      - The C(root) user's password; the module logs in as C(root) with it (it creates C(root)
        with it when there is none).
    type: str
    required: true
  roles:
    description:
      - Roles and the key paths they may use (C(/conftool/*) is the tree under C(/conftool)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The role's name.
        type: str
        required: true
      read:
        description: Key paths the role may read.
        type: list
        elements: str
        default: []
      write:
        description: Key paths the role may write.
        type: list
        elements: str
        default: []
  users:
    description: Users and their roles (exactly these).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The user's name.
        type: str
        required: true
      password:
        description: The user's password.
        type: str
        required: true
      roles:
        description: The user's roles.
        type: list
        elements: str
        default: []
  update_password:
    description: V(on_create) sets a password when its user is created; V(always) on every run.
    type: str
    choices: [on_create, always]
    default: on_create
  guest_access:
    description: Leave the anonymous C(guest) role its rights (false takes them all away).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each answer from etcd.
    type: float
    default: 10.0
seealso:
  - module: eventplatform.eventbus.pool_member
  - module: eventplatform.eventbus.run_lock
  - name: etcd v2 authentication
    description: The API this module drives.
    link: https://etcd.io/docs/v2.3/auth_api/
"""

EXAMPLES = r"""
- name: Only logged-in users may read or change the pools and the run locks
  eventplatform.eventbus.etcd_auth:
    etcd_url: http://127.0.0.1:2379
    root_password: "{{ vault_etcd_root_password }}"
    roles:
      - {name: conftool-pools, read: ["/conftool/*"], write: ["/conftool/*"]}
      - {name: eventbus-locks, read: ["/eventbus-ops/*"], write: ["/eventbus-ops/*"]}
      - {name: pool-reader, read: ["/conftool/*"]}
    users:
      - name: eventbus-ops
        password: "{{ vault_etcd_ops_password }}"
        roles: [conftool-pools, eventbus-locks]
      - name: eventbus-pool-agent
        password: "{{ vault_etcd_agent_password }}"
        roles: [pool-reader]
"""

RETURN = r"""
enabled_before:
  description: Whether authentication was on before the task.
  returned: always
  type: bool
root_created:
  description: Whether the task created (in check mode - would create) the C(root) user.
  returned: always
  type: bool
roles:
  description: The roles created or changed (in check mode - to be), with what changes.
  returned: always
  type: dict
  sample: {"pool-reader": {"create": true, "read": ["/conftool/*"], "write": []}}
users:
  description: The users created or changed (in check mode - to be), with what changes.
  returned: always
  type: dict
  sample: {"eventbus-pool-agent": {"create": true, "roles": ["pool-reader"], "password": true}}
guest_revoked:
  description: Whether the anonymous role's rights were (in check mode - would be) taken away.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import EtcdClient
from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd_auth import (
    ROOT,
    EtcdAuthSetupError,
    apply_auth,
    changed,
    plan_auth,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            etcd_url=dict(type="str", default="http://127.0.0.1:2379"),
            etcd_ca_path=dict(type="path"),
            root_password=dict(type="str", required=True, no_log=True),
            roles=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    read=dict(type="list", elements="str", default=[]),
                    write=dict(type="list", elements="str", default=[]),
                ),
            ),
            users=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    password=dict(type="str", required=True, no_log=True),
                    roles=dict(type="list", elements="str", default=[]),
                ),
            ),
            update_password=dict(
                type="str", choices=["on_create", "always"], default="on_create", no_log=False
            ),
            guest_access=dict(type="bool", default=False),
            timeout=dict(type="float", default=10.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        client = EtcdClient(params["etcd_url"], params["timeout"], ca_path=params["etcd_ca_path"],
                            username=ROOT, password=params["root_password"])  # fmt: skip
    except ValueError as err:
        module.fail_json(msg="%s; set etcd_url to etcd's client URL" % err)
    try:
        plan = plan_auth(client, params)
        if changed(plan) and not module.check_mode:
            apply_auth(client, params, plan)
    except EtcdAuthSetupError as err:
        module.fail_json(msg=str(err))
    module.exit_json(
        changed=changed(plan),
        enabled_before=plan["enabled_before"],
        root_created=plan["root"] == "create",
        roles=plan["roles"],
        users=plan["users"],
        guest_revoked=bool(plan["guest"]),
    )


if __name__ == "__main__":
    main()
