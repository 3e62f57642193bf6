# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is anyone still opening connections to this port? (the runbook's tcpdump SYN check)

Two ways to count new connections (inbound SYNs without ACK) over a window:

* ``tcpdump``: packet capture, as the runbook does by hand; yields the source of each SYN.
* ``nftables``: a kernel counter - a temporary nftables table that only counts (policy
  accept, nothing is filtered) with per-source counters, removed again after the window.

Both count only SYNs to ``port``, optionally only those to one ``destination`` address (the
runbook's ``dst eventbus.svc...``: traffic goes to the service address while the load
balancer's health checks go to the host's own address), and skip ``ignore_sources``.
Established connections are read from /proc/net/tcp and /proc/net/tcp6.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import re
import select
import socket
import struct
import subprocess
import time

TCPDUMP_SOURCE = re.compile(r"\bIP6? ([0-9A-Fa-f:.]+)\.\d+ > ")
ESTABLISHED = "01"


class IdleCheckError(Exception):
    """A failure worth reporting to the operator as is, with the samples taken so far and,
    once ``run`` has them, the partial result the module returns with its failure."""

    def __init__(self, message, samples=None, result=None):
        super(IdleCheckError, self).__init__(message)
        self.samples = samples or []
        self.result = result or {}


def networks(sources):
    try:
        return [ipaddress.ip_network(s, strict=False) for s in sources or []]
    except ValueError as err:
        raise IdleCheckError("ignore_sources: %s" % err) from err


def resolve(destination):
    """Addresses of ``destination`` (an address or a name), IPv4 first."""
    if not destination:
        return []
    try:
        infos = socket.getaddrinfo(destination, None, 0, socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise IdleCheckError("cannot resolve destination %s: %s" % (destination, err)) from err
    addresses = sorted(set(info[4][0] for info in infos), key=lambda a: (":" in a, a))
    return addresses


class Sample(object):
    def __init__(self, sources, window):
        self.sources = sources  # {address: SYN count}
        self.window = window

    @property
    def count(self):
        return sum(self.sources.values())

    @property
    def rate(self):
        return self.count / self.window if self.window else 0.0

    def top_sources(self, limit=5):
        ranked = sorted(self.sources.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [dict(address=a, count=n) for a, n in ranked]


# -- tcpdump --------------------------------------------------------------------------------
def tcpdump_filter(port, destinations, ignore):
    parts = ["tcp dst port %d" % port, "(tcp[tcpflags] & (tcp-syn|tcp-ack)) == tcp-syn"]
    if destinations:
        parts.append("(" + " or ".join("dst host %s" % d for d in destinations) + ")")
    for net in ignore:
        parts.append("not src net %s" % net.with_prefixlen)
    return " and ".join(parts)


def count_tcpdump_sources(lines):
    sources = {}
    for line in lines:
        match = TCPDUMP_SOURCE.search(line)
        if match:
            sources[match.group(1)] = sources.get(match.group(1), 0) + 1
    return sources


class TcpdumpSampler(object):
    method = "tcpdump"

    def __init__(self, binary, port, destinations, ignore, interface="any"):
        self.binary = binary
        self.filter = tcpdump_filter(port, destinations, ignore)
        self.interface = interface

    def sample(self, window):
        argv = [self.binary, "-n", "-l", "-q", "-p", "-Q", "in", "-i", self.interface, self.filter]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # The window starts once tcpdump says it is listening. Read the raw descriptor:
            # a buffered readline() can swallow that line and leave select() waiting.
            banner = b""
            deadline = time.time() + 10
            while b"listening on" not in banner and time.time() < deadline:
                ready, _w, _x = select.select([proc.stderr], [], [], 0.5)
                if ready:
                    chunk = os.read(proc.stderr.fileno(), 4096)
                    if not chunk:
                        break
                    banner += chunk
            if b"listening on" not in banner:
                raise IdleCheckError(
                    "tcpdump did not start capturing: %s"
                    % banner.decode("utf-8", "replace").strip()
                )
            started = time.time()
            time.sleep(window)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=10)
        elapsed = time.time() - started
        err = err.decode("utf-8", "replace")
        if proc.returncode not in (0, -15) and "packets captured" not in err:
            raise IdleCheckError("tcpdump failed (%s): %s" % (proc.returncode, err.strip()))
        return Sample(count_tcpdump_sources(out.decode("utf-8", "replace").splitlines()), elapsed)


# -- nftables -------------------------------------------------------------------------------
def nft_ruleset(table, port, destinations, ignore):
    """A table that only counts SYNs (policy accept), with per-source counters."""
    rules = []
    for family, proto, set_name, addr_type in (
        ("ip", "ip", "src4", "ipv4_addr"),
        ("ip6", "ip6", "src6", "ipv6_addr"),
    ):
        dests = [d for d in destinations if (":" in d) == (family == "ip6")]
        if destinations and not dests:
            continue
        ignored = [n.with_prefixlen for n in ignore if n.version == (6 if family == "ip6" else 4)]
        rule = "meta nfproto %s tcp dport %d tcp flags & (syn | ack) == syn" % (
            "ipv6" if family == "ip6" else "ipv4",
            port,
        )
        if dests:
            rule += " %s daddr { %s }" % (proto, ", ".join(dests))
        if ignored:
            rule += " %s saddr != { %s }" % (proto, ", ".join(ignored))
        rule += " add @%s { %s saddr }" % (set_name, proto)
        rules.append((set_name, addr_type, rule))
    lines = ["table inet %s {" % table]
    for set_name, addr_type, _rule in rules:
        lines.append("  set %s { type %s; flags dynamic; counter; }" % (set_name, addr_type))
    lines.append("  chain input {")
    lines.append("    type filter hook input priority -300; policy accept;")
    lines.extend("    " + rule for _s, _t, rule in rules)
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def nft_set_counts(listing):
    """{address: packets} from ``nft -j list table`` output."""
    sources = {}
    for item in json.loads(listing).get("nftables", []):
        for elem in (item.get("set") or {}).get("elem", []):
            entry = elem.get("elem", {}) if isinstance(elem, dict) else {}
            address = entry.get("val")
            packets = (entry.get("counter") or {}).get("packets", 0)
            if isinstance(address, str) and packets:
                sources[address] = sources.get(address, 0) + packets
    return sources


class NftablesSampler(object):
    method = "nftables"

    def __init__(self, binary, port, destinations, ignore):
        self.binary = binary
        self.table = "eventbus_idle_check_%d" % os.getpid()
        self.ruleset = nft_ruleset(self.table, port, destinations, ignore)

    def _nft(self, *args, **kwargs):
        proc = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            universal_newlines=True,
            check=False,
            **kwargs,
        )
        if proc.returncode != 0:
            raise IdleCheckError("nft %s failed: %s" % (" ".join(args), proc.stderr.strip()))
        return proc.stdout

    def sample(self, window):
        self._nft("-f", "-", input=self.ruleset)
        started = time.time()
        try:
            time.sleep(window)
            listing = self._nft("-j", "list", "table", "inet", self.table)
        finally:
            elapsed = time.time() - started
            # always remove the counting table, whatever happened
            subprocess.run(
                [self.binary, "delete", "table", "inet", self.table],
                capture_output=True,
                check=False,
            )
        return Sample(nft_set_counts(listing), elapsed)


# -- established connections ----------------------------------------------------------------
def _proc_address(hex_address):
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    words = struct.unpack(">4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words))


def established_connections(port, destinations, ignore, tables=("/proc/net/tcp", "/proc/net/tcp6")):
    """Remote ``address:port`` of established connections to ``port`` (socket listing)."""
    wanted = set(ipaddress.ip_address(d) for d in destinations)
    found = []
    for table in tables:
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except IOError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state = fields[1], fields[2], fields[3]
            local_addr, local_port = local.split(":")
            if state != ESTABLISHED or int(local_port, 16) != port:
                continue
            local_ip = _unmap(ipaddress.ip_address(_proc_address(local_addr)))
            remote_addr, remote_port = remote.split(":")
            remote_ip = _unmap(ipaddress.ip_address(_proc_address(remote_addr)))
            if wanted and local_ip not in wanted:
                continue
            if any(remote_ip in net for net in ignore if net.version == remote_ip.version):
                continue
            found.append("%s:%d" % (remote_ip, int(remote_port, 16)))
    return sorted(found)


def _unmap(address):
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


# -- the check -------------------------------------------------------------------------------
def wait_until_idle(sampler, window, max_rate, timeout, port, clock=time.time, windows=1):
    """Sample until the rate is at or under ``max_rate`` in ``windows`` consecutive samples
    (sparse traffic can pass one quiet window); IdleCheckError after ``timeout``."""
    started = clock()
    samples = []
    quiet = 0
    while True:
        sample = sampler.sample(window)
        samples.append(sample)
        quiet = quiet + 1 if sample.rate <= max_rate else 0
        if quiet >= windows:
            return samples
        if clock() - started + window > timeout:
            raise IdleCheckError(
                "port %d still gets %.2f new connection(s)/s (limit %s) after %ds; "
                "top sources: %s. Check that the host is out of its pool (pool_member) and that "
                "the load balancer applied the change; add a health checker to ignore_sources, "
                "or filter by destination"
                % (
                    port,
                    sample.rate,
                    max_rate,
                    clock() - started,
                    ", ".join("%(address)s (%(count)d)" % s for s in sample.top_sources())
                    or "none",
                ),
                samples,
            )


def choose_sampler(params, find_binary, destinations, ignore):
    """tcpdump when it is there (method auto or tcpdump), else nftables (auto or nftables)."""
    method = params["method"]
    tcpdump = find_binary("tcpdump") if method in ("auto", "tcpdump") else None
    if tcpdump:
        return TcpdumpSampler(tcpdump, params["port"], destinations, ignore, params["interface"])
    nft = find_binary("nft") if method in ("auto", "nftables") else None
    if nft:
        return NftablesSampler(nft, params["port"], destinations, ignore)
    needed = {"auto": "tcpdump or nft", "tcpdump": "tcpdump", "nftables": "nft"}[method]
    package = {"auto": "tcpdump", "tcpdump": "tcpdump", "nftables": "nftables"}[method]
    raise IdleCheckError(
        "method=%s needs %s on the host; install it (Debian: apt-get install %s)"
        % (method, needed, package)
    )


def sample_list(samples):
    return [dict(count=s.count, rate=round(s.rate, 3)) for s in samples]


def summary(samples, method, started, clock):
    last = samples[-1] if samples else None
    return dict(
        rate=round(last.rate, 3) if last else None,
        count=last.count if last else None,
        samples=sample_list(samples),
        top_sources=last.top_sources() if last else [],
        method=method,
        elapsed=round(clock() - started, 2),
    )


def run(params, find_binary, clock=time.time, euid=None):
    """The module's work, from its parameters to its result. ``find_binary(name)`` returns a
    tool's path or None. IdleCheckError carries the partial result (samples so far)."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise IdleCheckError(
            "tcp_idle_check needs root to count connections; run it with become: true"
        )
    if params["window"] <= 0 or params["timeout"] < params["window"]:
        raise IdleCheckError("window must be positive and timeout at least one window")
    if params.get("windows", 1) < 1:
        raise IdleCheckError("windows must be 1 or more")
    started = clock()
    samples = []
    method = params["method"]
    try:
        ignore = networks(params["ignore_sources"])
        destinations = resolve(params["destination"])
        sampler = choose_sampler(params, find_binary, destinations, ignore)
        method = sampler.method
        samples = wait_until_idle(
            sampler,
            params["window"],
            params["max_rate"],
            params["timeout"],
            params["port"],
            windows=params.get("windows", 1),
        )
        result = dict(changed=False, idle=True)
        if params["wait_drained"]:
            result["established"] = wait_until_drained(
                params["port"], destinations, ignore, started + params["timeout"]
            )
    except IdleCheckError as err:
        samples = err.samples or samples
        err.result = dict(idle=False, **summary(samples, method, started, clock))
        raise
    result.update(summary(samples, method, started, clock))
    return result


def wait_until_drained(
    port, destinations, ignore, deadline, clock=time.time, sleep=time.sleep, reader=None
):
    reader = reader or established_connections
    while True:
        connections = reader(port, destinations, ignore)
        if not connections:
            return []
        if clock() >= deadline:
            raise IdleCheckError(
                "%d connection(s) to port %d still established: %s"
                % (len(connections), port, ", ".join(connections[:10]))
            )
        sleep(0.5)
