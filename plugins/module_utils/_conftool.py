# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pools kept in etcd (v2 keys API) the way Wikimedia's conftool keeps them.

A member is the key ``<prefix>/<datacenter>/<cluster>/<service>/<fqdn>`` holding JSON such as
``{"pooled": "yes", "weight": 10}``; ``pooled`` is ``yes``, ``no`` or ``inactive``. Writes use
etcd's compare-and-swap (``prevIndex``), so a concurrent change is detected, never overwritten,
and a failed write leaves the key as it was.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import (
    COMPARE_FAILED,
    KEY_NOT_FOUND,
    EtcdAuthError,
    EtcdClient,
    EtcdUnavailableError,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    DEPOOLED,
    INACTIVE,
    POOLED,
    PoolError,
)

DEFAULT_PREFIX = "/conftool/v1/pools"
POOLED_VALUES = {"yes": POOLED, "no": DEPOOLED, "inactive": INACTIVE}
STATE_VALUES = dict((v, k) for k, v in POOLED_VALUES.items())


def decode_member(key, raw_value):
    """Parse one stored value; PoolError naming the key when it is not a conftool node."""
    try:
        value = json.loads(raw_value)
    except ValueError:
        raise PoolError(
            "etcd key %s does not hold JSON: %r; fix or remove it with confctl" % (key, raw_value)
        ) from None
    if not isinstance(value, dict) or value.get("pooled") not in POOLED_VALUES:
        raise PoolError(
            'etcd key %s holds %r, not a conftool node ({"pooled": yes|no|inactive, "weight": N}); '
            "fix it with confctl" % (key, raw_value)
        )
    weight = value.get("weight", 0)
    if not isinstance(weight, int) or isinstance(weight, bool):
        raise PoolError(
            "etcd key %s has a non-integer weight %r; fix it with confctl" % (key, weight)
        )
    state = POOLED_VALUES[value["pooled"]]
    return {
        "state": state,
        "weight": weight,
        "serving": state == POOLED and weight > 0,
        "_value": value,
    }


def encode_member(member):
    value = dict(member.get("_value") or {})
    value["pooled"] = STATE_VALUES[member["state"]]
    value["weight"] = member["weight"]
    return json.dumps(value, sort_keys=True)


class ConftoolPool(object):
    def __init__(
        self,
        etcd_url,
        datacenter,
        cluster,
        service,
        prefix=DEFAULT_PREFIX,
        timeout=10,
        validate_certs=True,
        ca_path=None,
        username=None,
        password=None,
    ):
        try:
            self.etcd = EtcdClient(
                etcd_url,
                timeout,
                ca_path=ca_path,
                validate_certs=validate_certs,
                username=username,
                password=password,
            )
        except ValueError as err:
            raise PoolError("%s; set etcd_url to etcd's client URL" % err) from None
        self.path = "/".join([prefix.rstrip("/"), datacenter, cluster, service])
        self._index = {}

    @property
    def etcd_url(self):
        return self.etcd.url

    @property
    def description(self):
        return "conftool pool %s in etcd at %s" % (self.path, self.etcd_url)

    def _call(self, method, *args, **kwargs):
        try:
            return getattr(self.etcd, method)(*args, **kwargs)[0]
        except EtcdUnavailableError as err:
            raise PoolError("%s; check etcd_url and that etcd is running" % err) from err
        except EtcdAuthError as err:
            raise PoolError("%s (etcd_username, etcd_password)" % err) from err

    def members(self):
        answer = self._call("get", self.path)
        if answer.get("errorCode") == KEY_NOT_FOUND:
            raise PoolError(
                "%s does not exist: check datacenter, cluster and service" % self.description
            )
        if "node" not in answer:
            raise PoolError("etcd answered %s for %s" % (answer.get("message", answer), self.path))
        result = {}
        for node in answer["node"].get("nodes", []):
            if node.get("dir"):
                continue
            name = node["key"].rsplit("/", 1)[-1]
            result[name] = decode_member(node["key"], node["value"])
            # which write the key holds: a resumed run repools a member only while it still
            # holds the run's own depool
            result[name]["index"] = node["modifiedIndex"]
            self._index[name] = node["modifiedIndex"]
        return result

    def apply(self, name, before, after):
        """Write ``after`` only if the key still holds what was read (compare-and-swap)."""
        key = "%s/%s" % (self.path, name)
        answer = self._call("put", key, encode_member(after), prev_index=self._index[name])
        if answer.get("errorCode") == COMPARE_FAILED:
            raise PoolError(
                "%s changed while this task ran (someone else wrote it); nothing was written, "
                "run again" % key
            )
        if "node" not in answer:
            raise PoolError("writing %s failed: %s" % (key, answer.get("message", answer)))
