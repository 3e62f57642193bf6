# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run lock in etcd (v2 keys API), as spicerack's locks: one rolling operation at a time
on a pool or a Kafka cluster.

The key ``<prefix>/<scope>`` holds JSON: who holds it (``holder``, operator@controller), the
``playbook``, the required ``reason``, the run's ``parameters`` (its limit, hosts and
settings, as the playbook gives them), when it ``started`` and was last ``renewed``, its
``ttl`` (seconds a holder has between two renewals), its ``run_id``, and the run's progress
(``done``: hosts finished; ``depooled``: hosts the run took out of their pool, or was about
to, and has not put back; ``wrote``: for each of those, the member as the run's depool left
it, so that a resumed run repools only a member nobody changed since). Every write is a
compare-and-swap on the key's index, so two runs cannot both take it:

* free, or held by this run: taken (renewed);
* held by another run whose renewal is older than its ttl: taken over afresh, with a
  warning that names the hosts that run left depooled (their progress is not carried over);
* ``resume`` (the operator's word that the other run is gone, e.g. after a Ctrl-C): the
  other run's progress is carried over, only when it has the same holder, playbook and
  parameters and was renewed within its ttl plus ``resume_window``; otherwise refused,
  saying which of those differs;
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
# how long after its ttl ran out an interrupted run may still be resumed (seconds)
DEFAULT_RESUME_WINDOW = 900


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

    def acquire(self, holder, playbook, reason, run_id, ttl, resume=False, parameters=None,
                resume_window=DEFAULT_RESUME_WINDOW):  # fmt: skip
        """Take the lock for this run. Returns (changed, lock, notes): ``notes`` has
        ``resumed`` (the earlier run's progress carried over), ``took_over`` (the earlier
        run's description) and ``left_depooled`` (the hosts a run taken over afresh had
        recorded as depooled)."""
        now = self.clock()
        current, index = self.read()
        notes = {"resumed": False, "took_over": None, "left_depooled": []}
        parameters = parameters or {}
        carried = {"done": [], "depooled": [], "wrote": {}}
        if current is not None and current.get("run_id") == run_id:
            current["renewed"] = now
            current["ttl"] = ttl
            self._write(current, index)
            return True, current, notes
        if current is not None:
            silent_for = now - float(current.get("renewed", 0))
            expired = silent_for > float(current.get("ttl", 0))
            differs = self._differences(current, holder, playbook, parameters)
            if resume:
                self._check_resumable(current, differs, silent_for, resume_window)
                notes["resumed"] = True
                carried = {
                    "done": list(current.get("done") or []),
                    "depooled": list(current.get("depooled") or []),
                    "wrote": dict(current.get("wrote") or {}),
                }
            elif not expired:
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
                        if not differs
                        else "",
                    ),
                    current,
                )
            else:
                notes["left_depooled"] = list(current.get("depooled") or [])
            notes["took_over"] = self.describe(current)
        lock = {
            "holder": holder,
            "playbook": playbook,
            "reason": reason,
            "parameters": parameters,
            "run_id": run_id,
            "started": now,
            "renewed": now,
            "ttl": ttl,
            "done": carried["done"],
            "depooled": carried["depooled"],
            "wrote": carried["wrote"],
        }
        self._write(lock, index)
        return True, lock, notes

    @staticmethod
    def _differences(current, holder, playbook, parameters):
        """What makes the held lock's run another than this one: a list of phrases."""
        differs = []
        if current.get("holder") != holder:
            differs.append("it is held by %s, not %s" % (current.get("holder", "?"), holder))
        if current.get("playbook") != playbook:
            differs.append("it runs %s, not %s" % (current.get("playbook", "?"), playbook))
        theirs = current.get("parameters") or {}
        for name in sorted(set(theirs) | set(parameters)):
            if theirs.get(name) != parameters.get(name):
                differs.append(
                    "its %s was %s, this run's is %s"
                    % (name, json.dumps(theirs.get(name)), json.dumps(parameters.get(name)))
                )
        return differs

    def _check_resumable(self, current, differs, silent_for, resume_window):
        if differs:
            raise LockError(
                "refusing to resume: runbook_resume=true continues only an interrupted run of the "
                "same operator, playbook, limit and parameters, and the run lock %s is another "
                "run's (%s): %s. Nothing was changed. Run again with the same ones, or without "
                "runbook_resume once that run has ended or its lock has gone stale"
                % (self.key, self.describe(current), "; ".join(differs)),
                current,
            )
        limit = float(current.get("ttl", 0)) + resume_window
        if silent_for > limit:
            left = current.get("depooled") or []
            raise LockError(
                "refusing to resume: the interrupted run's lock %s was last renewed %s ago, "
                "past its ttl plus the resume window (%s): its record of what it did is too old "
                "to act on. Nothing was changed. Check the hosts it recorded as depooled (%s), "
                "then run again without runbook_resume (its progress is not carried over)"
                % (self.key, age_text(silent_for), age_text(limit), ", ".join(left) or "none"),
                current,
            )

    def update(self, run_id, done=None, depooled=None, undepooled=None, wrote=None):
        """Renew this run's lock, recording a host done, depooled (about to be: ``wrote``
        None; or with the member as the depool left it), or put back."""
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
        written = dict(current.get("wrote") or {})
        if depooled is not None and wrote is not None:
            written[depooled] = wrote
        if undepooled is not None:
            written.pop(undepooled, None)
        current["wrote"] = written
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
