"""The lab load balancer's helper: apply a conftool pool to HAProxy, and keep HAProxy's state.

    eventbus-lb watch-conftool --etcd-url URL --pool-path PATH --haproxy-socket SOCK --backend BE
        Watch a conftool pool in etcd (v2 keys API, long-poll) and apply it to the servers of
        an HAProxy backend through the runtime API, the way PyBal applies conftool pools to
        LVS: pooled=yes -> ready, pooled=no -> drain (no new connections; health checks go
        on), pooled=inactive or no key -> maint; the key's weight -> the server's weight.
        HAProxy is only ever told what differs. When etcd cannot be reached HAProxy keeps
        what it has (a pool is never emptied because its store is down).

    eventbus-lb save-state --haproxy-socket SOCK --state-file FILE
        Write ``show servers state`` to HAProxy's server-state-file, so that a reload or a
        restart (``load-server-state-from-file``) keeps what the runtime API changed, and a
        depooled server stays depooled.

Standard library only: it runs on the load balancer host with the distribution's Python.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger("eventbus-lb")
# srv_admin_state bits (haproxy include/haproxy/server-t.h): forced maint, forced drain
ADMF_FMAINT = 0x01
ADMF_FDRAIN = 0x08
RUNTIME_STATE = {"yes": "ready", "no": "drain", "inactive": "maint"}


class UnavailableError(Exception):
    """etcd or HAProxy did not answer; try again later."""


@dataclass(frozen=True)
class Desired:
    state: str  # ready | drain | maint
    weight: int | None


@dataclass(frozen=True)
class Server:
    name: str
    state: str  # ready | drain | maint, as far as forced by the runtime API
    weight: int


class HAProxy:
    def __init__(self, socket_path: str, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, line: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as err:
            raise UnavailableError(f"HAProxy runtime API {self.socket_path}: {err}") from err
        return b"".join(chunks).decode("utf-8", "replace")

    def servers(self, backend: str) -> dict[str, Server]:
        text = self.command(f"show servers state {backend}")
        lines = [line for line in text.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# be_id")), None)
        if header is None:
            raise UnavailableError(
                f"unexpected answer to 'show servers state {backend}': {text[:200]}"
            )
        names = header[2:].split()
        servers = {}
        for line in lines:
            fields = line.split()
            if line.startswith("#") or len(fields) < len(names):
                continue
            row = dict(zip(names, fields, strict=False))
            admin = int(row["srv_admin_state"])
            state = "maint" if admin & ADMF_FMAINT else "drain" if admin & ADMF_FDRAIN else "ready"
            servers[row["srv_name"]] = Server(row["srv_name"], state, int(row["srv_uweight"]))
        return servers


def desired_state(pool: dict[str, dict], server: str) -> Desired:
    """What conftool's key for a server asks of HAProxy; no key means not in the pool."""
    value = pool.get(server)
    if value is None:
        return Desired("maint", None)
    state = RUNTIME_STATE.get(str(value.get("pooled")), "maint")
    weight = value.get("weight")
    return Desired(state, int(weight) if isinstance(weight, int) else None)


def reconcile(haproxy: HAProxy, backend: str, pool: dict[str, dict]) -> None:
    """Send HAProxy the commands that make the backend match the pool."""
    for name, server in sorted(haproxy.servers(backend).items()):
        want = desired_state(pool, name)
        commands = []
        if want.weight is not None and want.weight != server.weight:
            commands.append(f"set server {backend}/{name} weight {want.weight}")
        if want.state != server.state:
            commands.append(f"set server {backend}/{name} state {want.state}")
        for command in commands:
            answer = haproxy.command(command).strip()
            if answer:
                LOG.error("HAProxy refused %r: %s", command, answer)
                continue
            LOG.info("%s (conftool: %s)", command, pool.get(name, "no key"))


class Etcd:
    def __init__(self, url: str, pool_path: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.pool_path = "/" + pool_path.strip("/")
        self.timeout = timeout

    def _get(self, query: dict[str, str], timeout: float) -> tuple[dict, int]:
        url = f"{self.url}/v2/keys{self.pool_path}?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return json.load(answer), int(answer.headers.get("X-Etcd-Index", 0))
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}")
            return body, int(err.headers.get("X-Etcd-Index", 0))
        except (OSError, ValueError, http.client.HTTPException) as err:
            # refused, timed out, or cut off mid-answer (etcd stopped during a long poll)
            raise UnavailableError(f"etcd {self.url}: {err!r}") from err

    def read_pool(self) -> tuple[dict[str, dict], int]:
        """Every member of the pool ({name: {"pooled": ..., "weight": ...}}) and etcd's index."""
        body, index = self._get({"recursive": "true"}, self.timeout)
        if body.get("errorCode") == 100:  # key not found: nobody registered yet
            return {}, index
        if "node" not in body:
            raise UnavailableError(f"etcd {self.url} answered {body}")
        pool = {}
        for node in body["node"].get("nodes", []):
            name = node["key"].rsplit("/", 1)[-1]
            try:
                pool[name] = json.loads(node.get("value") or "{}")
            except ValueError:
                LOG.error("ignoring %s: its value is not JSON: %r", node["key"], node.get("value"))
        return pool, index

    def wait_for_change(self, after_index: int, timeout: float) -> None:
        """Long-poll until something under the pool changes after ``after_index``, or etcd
        no longer keeps that index (then the caller re-reads everything anyway), or
        ``timeout`` passes (a periodic full re-check)."""
        query = {"wait": "true", "recursive": "true", "waitIndex": str(after_index + 1)}
        try:
            self._get(query, timeout)
        except UnavailableError as err:
            if not isinstance(err.__cause__, TimeoutError):
                raise


def watch(etcd: Etcd, haproxy: HAProxy, backend: str, resync: float) -> None:
    backoff = 1.0
    while True:
        try:
            pool, index = etcd.read_pool()
            reconcile(haproxy, backend, pool)
            backoff = 1.0
            etcd.wait_for_change(index, resync)
        except UnavailableError as err:
            LOG.warning("%s; HAProxy keeps its current state, retrying in %.0f s", err, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def save_state(haproxy: HAProxy, state_file: Path) -> None:
    text = haproxy.command("show servers state")
    if not text.startswith("1"):
        raise UnavailableError(f"unexpected answer to 'show servers state': {text[:200]}")
    partial = state_file.with_name(state_file.name + ".new")
    partial.write_text(text)
    os.replace(partial, state_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eventbus-lb", description=__doc__.split("\n\n", maxsplit=1)[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    watcher = commands.add_parser("watch-conftool", help="apply a conftool pool to HAProxy")
    watcher.add_argument("--etcd-url", default="http://127.0.0.1:2379")
    watcher.add_argument("--pool-path", required=True, help="/conftool/v1/pools/<dc>/<cl>/<svc>")
    watcher.add_argument("--haproxy-socket", default="/run/haproxy/admin.sock")
    watcher.add_argument("--backend", required=True)
    watcher.add_argument("--resync", type=float, default=30.0, help="seconds between full checks")
    saver = commands.add_parser("save-state", help="write HAProxy's server-state-file")
    saver.add_argument("--haproxy-socket", default="/run/haproxy/admin.sock")
    saver.add_argument("--state-file", type=Path, default=Path("/var/lib/haproxy/server-state"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    haproxy = HAProxy(args.haproxy_socket)
    if args.command == "save-state":
        try:
            save_state(haproxy, args.state_file)
        except UnavailableError as err:  # HAProxy not running: nothing to save, keep the old file
            LOG.warning("not saved: %s", err)
        return 0
    LOG.info("applying %s at %s to HAProxy backend %s", args.pool_path, args.etcd_url, args.backend)
    watch(Etcd(args.etcd_url, args.pool_path), haproxy, args.backend, args.resync)
    return 0


if __name__ == "__main__":
    sys.exit(main())
