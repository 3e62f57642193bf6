# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pool membership, independent of where the pool lives (conftool keys or HAProxy).

A store (_conftool.ConftoolPool, _haproxy.HAProxyPool) reads the members of a pool as
``{name: {"state": ..., "weight": ..., "serving": bool}}`` and applies one member's change;
``plan_change`` decides what to change and whether the pool can afford it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

# One definition of a pool member's state, as conftool's ``pooled`` means it for PyBal/LVS:
# pooled (yes) takes new connections; depooled (no) takes none, its current ones finish and
# it stays health-checked; inactive is out of the pool's configuration. HAProxy maps them to
# ready, drain and maint (see _haproxy.py).
POOLED = "pooled"
DEPOOLED = "depooled"
INACTIVE = "inactive"
STATES = (POOLED, DEPOOLED, INACTIVE)


# The share of a pool's intended members (all but the inactive ones) that must stay serving
# when a member is taken out: PyBal's depool-threshold, and its default.
DEFAULT_THRESHOLD = 0.5


class PoolError(Exception):
    """A failure worth reporting to the operator as is."""


def required_serving(members, threshold=DEFAULT_THRESHOLD):
    """How many members must stay serving: ``threshold`` of the intended ones (those not
    inactive), rounded up, and at least one."""
    intended = sum(1 for m in members.values() if m["state"] != INACTIVE)
    # (rounded first: 0.7 * 10 is 7.000000000000001 in floating point)
    needed = math.ceil(round(threshold * intended, 9))
    return max(1, needed), intended


def plan_change(
    members, name, state=None, weight=None, min_pooled=None, force=False, threshold=None
):
    """Return ``(before, after)`` for member ``name``; raise PoolError when the member is
    unknown or when taking it out of service would leave too few members serving: fewer
    than ``min_pooled`` others when given, else fewer than ``threshold`` (default
    DEFAULT_THRESHOLD) of the pool's intended members (its members not inactive, counted
    before the change: a member set inactive still counts)."""
    if name not in members:
        raise PoolError(
            "member %s is not in the pool; members are: %s"
            % (name, ", ".join(sorted(members)) or "none")
        )
    before = dict(members[name])
    after = dict(before)
    if state is not None:
        after["state"] = state
    if weight is not None:
        after["weight"] = weight
    if (after["state"], after["weight"]) != (before["state"], before["weight"]):
        after.pop("index", None)  # a write's index is known once it is read back
    # HAProxy members carry their health check's verdict; conftool ones cannot know it.
    after["serving"] = (
        after["state"] == POOLED and after["weight"] > 0 and after.get("health", "up") == "up"
    )

    in_service = before["state"] == POOLED and before["weight"] > 0
    taking_out = in_service and not (after["state"] == POOLED and after["weight"] > 0)
    if taking_out and not force:
        others_serving = sorted(n for n, m in members.items() if n != name and m["serving"])
        if min_pooled is not None:
            needed, why = min_pooled, "min_pooled"
        else:
            share = DEFAULT_THRESHOLD if threshold is None else threshold
            needed, intended = required_serving(members, share)
            why = "threshold %s of the %d members not inactive, at least one" % (share, intended)
        if len(others_serving) < needed:
            out = sorted(n for n, m in members.items() if n != name and not m["serving"])
            raise PoolError(
                "refusing to take %s out of the pool: %d other member(s) would be left serving %s, "
                "fewer than the %d required (%s); not serving now: %s. Repool those first, "
                "or set force=true if this is really intended"
                % (name, len(others_serving), others_serving, needed, why, ", ".join(out) or "none")
            )
    return before, after


def public_view(member):
    """What the module returns about a member (internal bookkeeping removed)."""
    return dict((k, v) for k, v in member.items() if not k.startswith("_"))


def read_pool(store, name=None):
    """pool_member_info's result: every member, the serving ones, and ``name``'s own."""
    members = store.members()
    result = dict(
        pool=dict((n, public_view(m)) for n, m in members.items()),
        serving=sorted(n for n, m in members.items() if m["serving"]),
    )
    if name is not None:
        if name not in members:
            raise PoolError(
                "member %s is not in %s; members are: %s"
                % (name, store.description, ", ".join(sorted(members)) or "none")
            )
        result["member"] = result["pool"][name]
    return result


class _NoLock(object):
    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False


def _exclusive(store):
    """The store's pool-wide write lock; a store without one (a test's) writes unlocked."""
    exclusive = getattr(store, "exclusive", None)
    return exclusive() if exclusive is not None else _NoLock()


def set_membership(
    store,
    name,
    state=None,
    weight=None,
    min_pooled=None,
    force=False,
    check_mode=False,
    wait=False,
    wait_timeout=60.0,
    wait_sessions=False,
    sleep=None,
    clock=None,
    threshold=None,
):
    """Read the pool, plan, write unless in check mode, optionally wait until the change is
    in effect. The read, the plan and the write hold the store's pool-wide write lock
    (``store.exclusive()``): a change is a compare-and-swap over the whole pool, so two
    writers taking out two different members cannot both pass the threshold. Returns the
    module result (changed, before, after, pool)."""
    import time

    sleep = sleep or time.sleep
    clock = clock or time.time
    if check_mode:
        members = store.members()
        before, after = plan_change(members, name, state, weight, min_pooled, force, threshold)
        changed = (before["state"], before["weight"]) != (after["state"], after["weight"])
    else:
        with _exclusive(store):
            members = store.members()
            before, after = plan_change(members, name, state, weight, min_pooled, force, threshold)
            changed = (before["state"], before["weight"]) != (after["state"], after["weight"])
            if changed:
                store.apply(name, before, after)

    result = dict(changed=changed, before=public_view(before), after=public_view(after))
    if wait and not check_mode:
        deadline = clock() + wait_timeout
        while True:
            now = store.members()[name]
            in_effect = (now["state"], now["weight"]) == (after["state"], after["weight"])
            sessions = None
            if in_effect and wait_sessions and after["state"] != POOLED:
                sessions = store.current_sessions(name)
                in_effect = sessions == 0
            if in_effect:
                result["after"] = public_view(now)
                break
            if clock() >= deadline:
                raise PoolError(
                    "%s: %s did not reach state=%s weight=%s%s within %ss "
                    "(now state=%s weight=%s%s)"
                    % (
                        store.description,
                        name,
                        after["state"],
                        after["weight"],
                        " with no sessions" if wait_sessions else "",
                        wait_timeout,
                        now["state"],
                        now["weight"],
                        "" if sessions is None else ", %d session(s)" % sessions,
                    )
                )
            sleep(0.25)
    if check_mode:
        result["pool"] = dict(
            (n, public_view(after if n == name else m)) for n, m in members.items()
        )
    else:
        result["pool"] = dict((n, public_view(m)) for n, m in store.members().items())
        result["after"] = result["pool"][name]
    return result
