# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd's v2 authentication as one desired state: the root user, roles with the key paths they
may read and write, users with their roles, no access for the anonymous (guest) role, and
authentication on. ``plan_auth()`` reads what etcd holds and says what differs;
``apply_auth()`` changes it, in an order that never locks the caller out (root, roles and
users first; authentication on; then the guest role emptied).

Standard library only (through the collection's etcd client), like ``_etcd``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import (
    EtcdAuthError,
    EtcdUnavailableError,
)

ROOT = "root"
GUEST = "guest"


class EtcdAuthSetupError(Exception):
    """What the operator must fix; the message says what."""


def _call(client, method, what, payload=None):
    try:
        body = client.auth(method, what, payload)
    except EtcdUnavailableError as err:
        raise EtcdAuthSetupError("%s; check etcd_url and that etcd runs" % err) from err
    except EtcdAuthError as err:
        raise EtcdAuthSetupError(
            "%s: with authentication on, root_password must be root's password" % err
        ) from err
    status = body.get("status", 0)
    if status == 404:
        return None
    if status >= 300:
        raise EtcdAuthSetupError(
            "etcd refused %s /v2/auth/%s: %s" % (method, what, body.get("message", body))
        )
    return body


def _role_names(user):
    return sorted(r["role"] if isinstance(r, dict) else r for r in user.get("roles") or [])


def _permissions(role):
    kv = ((role or {}).get("permissions") or {}).get("kv") or {}
    return set(kv.get("read") or []), set(kv.get("write") or [])


def plan_auth(client, params):
    """The changes that make etcd's v2 auth what ``params`` describe."""
    enabled = bool((_call(client, "GET", "enable") or {}).get("enabled"))
    plan = dict(enabled_before=enabled, root=None, roles={}, users={}, guest=None, enable=False)
    if _call(client, "GET", "users/" + ROOT) is None:
        plan["root"] = "create"
    for role in params["roles"]:
        read, write = set(role["read"]), set(role["write"])
        current = _call(client, "GET", "roles/" + role["name"])
        if current is None:
            plan["roles"][role["name"]] = dict(create=True, read=sorted(read), write=sorted(write))
            continue
        have_read, have_write = _permissions(current)
        if (have_read, have_write) != (read, write):
            plan["roles"][role["name"]] = dict(
                create=False,
                grant_read=sorted(read - have_read),
                grant_write=sorted(write - have_write),
                revoke_read=sorted(have_read - read),
                revoke_write=sorted(have_write - write),
            )
    for user in params["users"]:
        current = _call(client, "GET", "users/" + user["name"])
        wanted = sorted(set(user["roles"]))
        if current is None:
            plan["users"][user["name"]] = dict(create=True, roles=wanted, password=True)
            continue
        have = _role_names(current)
        change = dict(create=False, password=params["update_password"] == "always")
        if have != wanted:
            change.update(
                grant=sorted(set(wanted) - set(have)), revoke=sorted(set(have) - set(wanted))
            )
        if change["password"] or "grant" in change:
            plan["users"][user["name"]] = change
    if not enabled:
        plan["enable"] = True
    if not params["guest_access"]:
        guest = _call(client, "GET", "roles/" + GUEST) if enabled else None
        read, write = _permissions(guest)
        # before authentication is on, etcd makes the guest role (read and write /*) on enable
        if not enabled or read or write:
            plan["guest"] = dict(read=sorted(read) or ["/*"], write=sorted(write) or ["/*"])
    return plan


def changed(plan):
    return bool(plan["root"] or plan["roles"] or plan["users"] or plan["enable"] or plan["guest"])


def apply_auth(client, params, plan):
    passwords = dict((u["name"], u["password"]) for u in params["users"])
    if plan["root"]:
        _call(client, "PUT", "users/" + ROOT, dict(user=ROOT, password=params["root_password"]))
    for name, change in plan["roles"].items():
        if change["create"]:
            payload = dict(role=name, permissions=dict(kv=dict(read=change["read"],
                                                               write=change["write"])))  # fmt: skip
        else:
            payload = dict(
                role=name,
                grant=dict(kv=dict(read=change["grant_read"], write=change["grant_write"])),
                revoke=dict(kv=dict(read=change["revoke_read"], write=change["revoke_write"])),
            )
        _call(client, "PUT", "roles/" + name, payload)
    for name, change in plan["users"].items():
        if change["create"]:
            payload = dict(user=name, password=passwords[name], roles=change["roles"])
            _call(client, "PUT", "users/" + name, payload)
            continue
        if change.get("grant"):
            _call(client, "PUT", "users/" + name, dict(user=name, grant=change["grant"]))
        if change.get("revoke"):
            _call(client, "PUT", "users/" + name, dict(user=name, revoke=change["revoke"]))
        if change["password"]:
            _call(client, "PUT", "users/" + name, dict(user=name, password=passwords[name]))
    if plan["enable"]:
        _call(client, "PUT", "enable")
    if plan["guest"]:
        guest = _call(client, "GET", "roles/" + GUEST)
        read, write = _permissions(guest)
        if read or write:
            payload = dict(role=GUEST, revoke=dict(kv=dict(read=sorted(read), write=sorted(write))))
            _call(client, "PUT", "roles/" + GUEST, payload)
