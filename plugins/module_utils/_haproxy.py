# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pools kept by HAProxy itself, changed through its runtime API (unix socket or TCP).

A member is a server of a backend. Its pool state comes from its administrative state:
``ready`` is pooled, ``drain`` (no new connections, except persistent ones) is drained,
``maint`` is depooled. Health checks stay on in every state, so a member is "serving"
only when it is ready *and* its health check says it is up.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    DEPOOLED,
    DRAINED,
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
RUNTIME_STATES = {POOLED: "ready", DRAINED: "drain", DEPOOLED: "maint"}
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


def member_from_row(row):
    admin = int(row["srv_admin_state"])
    if admin & MAINT_MASK:
        state = DEPOOLED
    elif admin & DRAIN_MASK:
        state = DRAINED
    else:
        state = POOLED
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


class HAProxyPool(object):
    def __init__(self, runtime, backend):
        self.runtime = runtime
        self.backend = backend

    @property
    def description(self):
        return "HAProxy backend %s at %s" % (self.backend, self.runtime.endpoint)

    def members(self):
        rows = parse_servers_state(self.runtime.command("show servers state %s" % self.backend))
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
