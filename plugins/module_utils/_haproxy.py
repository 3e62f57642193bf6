# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pools kept by HAProxy itself, changed through its runtime API (unix socket or TCP).

A member is a server of a backend. Its pool state is its administrative state, with the
meaning conftool's ``pooled`` has for PyBal and LVS (one definition, used by the pool
modules and by the load balancer's pool agent alike):

* pooled   = ``ready``: takes new connections;
* depooled = ``drain``: takes no new connection, its current ones finish, and its health
  check goes on (so a depooled host that is broken shows as down);
* inactive = ``maint``: out of the pool's configuration, health checks stopped.

A member is "serving" only when it is ready *and* its health check says it is up.

This file and ``_pool.py`` import the standard library only: the pool agent imports them on
the load balancer, where the distribution's Python runs without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import os
import socket
import tempfile
import time

from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    DEPOOLED,
    INACTIVE,
    POOLED,
    PoolError,
)

# srv_admin_state bits (haproxy include/haproxy/server-t.h)
ADMF_FMAINT, ADMF_IMAINT, ADMF_CMAINT, ADMF_FDRAIN, ADMF_IDRAIN, ADMF_RMAINT, ADMF_HMAINT = (
    0x01,
    0x02,
    0x04,
    0x08,
    0x10,
    0x20,
    0x40,
)
MAINT_MASK = ADMF_FMAINT | ADMF_IMAINT | ADMF_CMAINT | ADMF_RMAINT | ADMF_HMAINT
DRAIN_MASK = ADMF_FDRAIN | ADMF_IDRAIN
OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}
RUNTIME_STATES = {POOLED: "ready", DEPOOLED: "drain", INACTIVE: "maint"}
POOL_STATES = dict((runtime, state) for state, runtime in RUNTIME_STATES.items())
ERROR_PREFIXES = (
    "No such",
    "Can't find",
    "Permission denied",
    "Unknown command",
    "Require",
    "Invalid",
    "Backend is using",
)


def parse_servers_state(text):
    """Rows of ``show servers state`` (format version 1) as dicts keyed by the header."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("# be_id")), None)
    if header is None:
        raise PoolError("unexpected answer to 'show servers state': %r" % text[:200])
    names = header[2:].split()
    rows = [line.split() for line in lines if not line.startswith("#")]
    # the first line is the format version ("1"); server rows have every header field
    return [dict(zip(names, fields)) for fields in rows if len(fields) >= len(names)]


def parse_stat_csv(text):
    """``show stat`` CSV as dicts; the header line starts with '# '."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise PoolError("unexpected answer to 'show stat': %r" % text[:200])
    names = lines[0][2:].split(",")
    return [dict(zip(names, line.split(","))) for line in lines[1:]]


def admin_state(row):
    """``ready``, ``drain`` or ``maint``: a server's administrative state, from any source."""
    admin = int(row["srv_admin_state"])
    if admin & MAINT_MASK:
        return "maint"
    if admin & DRAIN_MASK:
        return "drain"
    return "ready"


def member_from_row(row):
    state = POOL_STATES[admin_state(row)]
    health = OP_STATES.get(int(row["srv_op_state"]), "unknown")
    return {
        "state": state,
        "weight": int(row["srv_uweight"]),
        "health": health,
        "serving": state == POOLED and health == "up" and int(row["srv_uweight"]) > 0,
    }


class HAProxyRuntime(object):
    """One command per connection, as the runtime API answers in non-interactive mode."""

    def __init__(self, socket_path=None, address=None, timeout=10):
        self.socket_path = socket_path
        self.address = address
        self.timeout = timeout

    @property
    def endpoint(self):
        return self.socket_path or self.address

    def _connect(self):
        if self.socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = self.socket_path
        else:
            host, _sep, port = self.address.rpartition(":")
            sock = socket.socket(
                socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
            )
            target = (host.strip("[]"), int(port))
        sock.settimeout(self.timeout)
        try:
            sock.connect(target)
        except (OSError, socket.error) as err:
            sock.close()
            raise PoolError(
                "cannot reach the HAProxy runtime API at %s: %s; check the socket path or address "
                "and that HAProxy runs with 'stats socket ... level admin'" % (self.endpoint, err)
            ) from err
        return sock

    def command(self, line):
        sock = self._connect()
        try:
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (OSError, socket.error) as err:
            raise PoolError(
                "HAProxy runtime API at %s failed during %r: %s" % (self.endpoint, line, err)
            ) from err
        finally:
            sock.close()
        answer = b"".join(chunks).decode("utf-8", "replace")
        if answer.strip().startswith(ERROR_PREFIXES):
            raise PoolError("HAProxy refused %r: %s" % (line, answer.strip()))
        return answer

    def servers_state(self, backend=None):
        """Rows of ``show servers state [backend]``."""
        command = "show servers state" + (" %s" % backend if backend else "")
        return parse_servers_state(self.command(command))


class HAProxyPool(object):
    def __init__(self, runtime, backend):
        self.runtime = runtime
        self.backend = backend

    @property
    def description(self):
        return "HAProxy backend %s at %s" % (self.backend, self.runtime.endpoint)

    def members(self):
        rows = self.runtime.servers_state(self.backend)
        if not rows:
            raise PoolError("%s has no servers" % self.description)
        return dict((row["srv_name"], member_from_row(row)) for row in rows)

    def apply(self, name, before, after):
        target = "%s/%s" % (self.backend, name)
        if after["weight"] != before["weight"]:
            self.runtime.command("set server %s weight %d" % (target, after["weight"]))
        if after["state"] != before["state"]:
            self.runtime.command(
                "set server %s state %s" % (target, RUNTIME_STATES[after["state"]])
            )

    def current_sessions(self, name):
        rows = parse_stat_csv(self.runtime.command("show stat"))
        for row in rows:
            if row.get("pxname") == self.backend and row.get("svname") == name:
                return int(row.get("scur") or 0)
        raise PoolError("server %s not found in 'show stat' of %s" % (name, self.description))

    def exclusive(self, wait=None, sleep=time.sleep, clock=time.time):
        """The backend's write lock on this host (a lock file in /run/lock): HAProxy's runtime
        API changes one server at a time, so the read, plan and write of one change hold it,
        and two writers on the pool manager cannot both pass the threshold."""
        return _FileWriteLock(self, wait if wait is not None else self.runtime.timeout, sleep,
                              clock)  # fmt: skip


class _FileWriteLock(object):
    def __init__(self, pool, wait, sleep, clock):
        where = pool.runtime.endpoint + "/" + pool.backend
        directory = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
        self.path = os.path.join(
            directory,
            "eventbus-pool-%s.lock" % hashlib.sha256(where.encode()).hexdigest()[:16],
        )
        self.pool, self.wait, self.sleep, self.clock = pool, wait, sleep, clock
        self.fd = None

    def __enter__(self):
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise PoolError("cannot open the pool's write lock %s: %s" % (self.path, err)) from err
        deadline = self.clock() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError:
                if self.clock() >= deadline:
                    os.close(self.fd)
                    raise PoolError(
                        "another change of %s is being written (its write lock %s is held); "
                        "nothing was written, run again" % (self.pool.description, self.path)
                    ) from None
                self.sleep(0.1)

    def __exit__(self, *_exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        return False
