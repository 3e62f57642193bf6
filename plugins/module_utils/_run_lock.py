# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run lock in etcd (v2 keys API), as spicerack's locks: one rolling operation at a time
on a pool or a Kafka cluster.

The key ``<prefix>/<scope>`` holds JSON: who holds it (``holder``, user@controller), the
``playbook``, the required ``reason``, when it ``started`` and was last ``renewed``, its
``ttl`` (seconds a holder has between two renewals), its ``run_id``, and the run's progress
(``done``: hosts finished; ``depooled``: hosts the run took out of their pool and has not
put back). Every write is a compare-and-swap on the key's index, so two runs cannot both
take it. etcd keeps the key for days (its own TTL), so an interrupted run's progress
survives until its holder resumes it:

* free, or held by this run: taken (renewed);
* held by another run whose renewal is older than its ttl: taken over, with a warning; when
  the same holder runs the same playbook again, the new run resumes the old one's progress;
* held by the same holder and playbook with ``resume`` (the operator says the other run is
  gone, e.g. after a Ctrl-C): resumed at once;
* otherwise refused, naming holder, playbook, reason and age.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import (
    COMPARE_FAILED,
    KEY_NOT_FOUND,
    NODE_EXISTS,
    EtcdAuthError,
    EtcdClient,
    EtcdUnavailableError,
)

DEFAULT_PREFIX = "/eventbus-ops/locks"
RECORD_TTL = 7 * 24 * 3600  # how long etcd keeps a lock record nobody renews or releases


class LockError(Exception):
    """The lock cannot be taken or changed; the message says why and what to do."""

    def __init__(self, message, lock=None):
        super(LockError, self).__init__(message)
        self.lock = lock


def age_text(seconds):
    seconds = int(max(0, seconds))
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    return "%.1f h" % (seconds / 3600.0)


class RunLock(object):
    def __init__(self, etcd_url, scope, prefix=DEFAULT_PREFIX, timeout=10.0, ca_path=None,
                 clock=time.time, username=None, password=None):  # fmt: skip
        try:
            self.etcd = EtcdClient(
                etcd_url, timeout, ca_path=ca_path, username=username, password=password
            )
        except ValueError as err:
            raise LockError("%s; set the lock's etcd URL" % err) from None
        self.key = "%s/%s" % (prefix.rstrip("/"), scope.strip("/"))
        self.clock = clock

    def _call(self, method, *args, **kwargs):
        try:
            return getattr(self.etcd, method)(*args, **kwargs)[0]
        except EtcdUnavailableError as err:
            raise LockError(
                "%s: the run lock %s cannot be checked; nothing was changed" % (err, self.key)
            ) from err
        except EtcdAuthError as err:
            raise LockError(
                "%s (etcd_username, etcd_password): the run lock %s cannot be checked; nothing "
                "was changed" % (err, self.key)
            ) from err

    def read(self):
        """(lock dict or None, modifiedIndex or None)."""
        answer = self._call("get", self.key)
        if answer.get("errorCode") == KEY_NOT_FOUND:
            return None, None
        if "node" not in answer:
            raise LockError("etcd answered %s for %s" % (answer.get("message", answer), self.key))
        try:
            lock = json.loads(answer["node"].get("value") or "{}")
        except ValueError:
            lock = {"holder": "?", "playbook": "?", "reason": "unreadable lock record"}
        return lock, answer["node"]["modifiedIndex"]

    def _write(self, lock, index):
        value = json.dumps(lock, sort_keys=True)
        if index is None:
            answer = self._call("put", self.key, value, prev_exist=False, ttl=RECORD_TTL)
        else:
            answer = self._call("put", self.key, value, prev_index=index, ttl=RECORD_TTL)
        if answer.get("errorCode") in (COMPARE_FAILED, NODE_EXISTS):
            raise LockError(
                "the run lock %s changed while it was being taken (another run?); nothing was "
                "changed, run again" % self.key
            )
        if "node" not in answer:
            raise LockError("writing the run lock %s failed: %s" % (self.key, answer))
        return answer["node"]["modifiedIndex"]

    def describe(self, lock):
        now = self.clock()
        return "%s running %s for %r since %s ago (last renewed %s ago)" % (
            lock.get("holder", "?"),
            lock.get("playbook", "?"),
            lock.get("reason", ""),
            age_text(now - float(lock.get("started", now))),
            age_text(now - float(lock.get("renewed", now))),
        )

    def acquire(self, holder, playbook, reason, run_id, ttl, resume=False):
        """Take the lock for this run. Returns (changed, lock, notes): ``notes`` has
        ``resumed`` (the earlier run's done and depooled hosts carried over) and
        ``took_over`` (the earlier run's description) when that happened."""
        now = self.clock()
        current, index = self.read()
        notes = {"resumed": False, "took_over": None}
        carried = {"done": [], "depooled": []}
        if current is not None and current.get("run_id") == run_id:
            current["renewed"] = now
            current["ttl"] = ttl
            self._write(current, index)
            return True, current, notes
        if current is not None:
            expired = now - float(current.get("renewed", 0)) > float(current.get("ttl", 0))
            same = current.get("holder") == holder and current.get("playbook") == playbook
            if not expired and not (same and resume):
                raise LockError(
                    "refusing to start: the run lock %s is held by %s. Nothing was changed. "
                    "Wait for it to end%s"
                    % (
                        self.key,
                        self.describe(current),
                        (
                            ", or if that run is gone (interrupted), run again with "
                            "-e runbook_resume=true to continue it"
                        )
                        if same
                        else "",
                    ),
                    current,
                )
            notes["took_over"] = self.describe(current)
            if same:
                notes["resumed"] = True
                carried = {
                    "done": list(current.get("done") or []),
                    "depooled": list(current.get("depooled") or []),
                }
        lock = {
            "holder": holder,
            "playbook": playbook,
            "reason": reason,
            "run_id": run_id,
            "started": now,
            "renewed": now,
            "ttl": ttl,
            "done": carried["done"],
            "depooled": carried["depooled"],
        }
        self._write(lock, index)
        return True, lock, notes

    def update(self, run_id, done=None, depooled=None, undepooled=None):
        """Renew this run's lock, recording a host done, depooled, or put back."""
        current, index = self.read()
        if current is None or current.get("run_id") != run_id:
            raise LockError(
                "this run no longer holds the run lock %s (%s); stopping"
                % (self.key, self.describe(current) if current else "it is gone")
            )
        current["renewed"] = self.clock()
        for key, host, add in (("done", done, True), ("depooled", depooled, True),
                               ("depooled", undepooled, False)):  # fmt: skip
            if host is None:
                continue
            hosts = list(current.get(key) or [])
            if add and host not in hosts:
                hosts.append(host)
            if not add and host in hosts:
                hosts.remove(host)
            current[key] = hosts
        self._write(current, index)
        return current

    def release(self, run_id):
        """Remove the lock if this run holds it; (changed, what was there)."""
        current, index = self.read()
        if current is None:
            return False, None
        if current.get("run_id") != run_id:
            return False, current
        answer = self._call("delete", self.key, prev_index=index)
        if answer.get("errorCode") == COMPARE_FAILED:
            raise LockError("the run lock %s changed while being released" % self.key)
        return True, current
