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
import os
import socket
import time

from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import (
    COMPARE_FAILED,
    KEY_NOT_FOUND,
    NODE_EXISTS,
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
# A pool's write lock: a key outside conftool's tree (confctl would read a key inside the
# pool's directory as a member), taken for the read, plan and write of one change.
WRITE_LOCK_PREFIX = "/eventbus-ops/pool-writes"
WRITE_LOCK_TTL = 30  # seconds: a writer that died frees the pool by then
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

    def exclusive(self, wait=None, sleep=time.sleep, clock=time.time):
        """The pool's write lock in etcd (``WRITE_LOCK_PREFIX``), held while one change is
        read, planned and written: etcd v2 has no transaction over several keys, so two
        writers that each read the pool before the other's write cannot both pass the
        threshold. Waits up to ``wait`` seconds (the client's timeout) for another writer."""
        return _EtcdWriteLock(self, wait if wait is not None else self.etcd.timeout, sleep, clock)


class _EtcdWriteLock(object):
    def __init__(self, pool, wait, sleep, clock):
        self.pool = pool
        self.key = WRITE_LOCK_PREFIX + pool.path
        self.token = "%s:%d:%s" % (socket.gethostname(), os.getpid(), os.urandom(6).hex())
        self.wait, self.sleep, self.clock = wait, sleep, clock

    def __enter__(self):
        deadline = self.clock() + self.wait
        while True:
            answer = self.pool._call(
                "put", self.key, self.token, prev_exist=False, ttl=WRITE_LOCK_TTL
            )
            if "node" in answer:
                return self
            if answer.get("errorCode") != NODE_EXISTS:
                raise PoolError(
                    "cannot take the pool's write lock %s in etcd: %s; the user needs write "
                    "access to %s/*" % (self.key, answer.get("message", answer), WRITE_LOCK_PREFIX)
                )
            if self.clock() >= deadline:
                held = self.pool._call("get", self.key).get("node", {}).get("value", "?")
                raise PoolError(
                    "another change of %s is being written (its write lock %s is held by %s "
                    "since less than %ss); nothing was written, run again"
                    % (self.pool.description, self.key, held, WRITE_LOCK_TTL)
                )
            self.sleep(0.1)

    def __exit__(self, *_exc):
        self.pool._call("delete", self.key, prev_value=self.token)
        return False
