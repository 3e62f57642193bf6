"""The lab load balancer's helper: apply a conftool pool to HAProxy, and keep HAProxy's state.

    eventbus-lb watch-conftool --etcd-url URL --pool-path PATH --haproxy-socket SOCK --backend BE
        Watch a conftool pool in etcd (v2 keys API, long-poll) and apply it to the servers of
        an HAProxy backend through the runtime API, the way PyBal applies conftool pools to
        LVS, with the collection's one definition of a member's state (module_utils/_pool.py):
        pooled=yes -> ready, pooled=no (depooled) -> drain (no new connections; health checks
        go on), pooled=inactive or no key -> maint; the key's weight -> the server's weight.
        HAProxy is only ever told what differs. When etcd cannot be reached HAProxy keeps
        what it has (a pool is never emptied because its store is down). Like PyBal's
        depool-threshold (--depool-threshold, 0.5 by default), it never takes a serving
        server out when that would leave fewer than that share of the pool's intended
        servers (those with a key, not inactive) serving, and at least one: it keeps the
        server as it is and logs an error until the pool allows it.

    eventbus-lb save-state --haproxy-socket SOCK --state-file FILE
        Write ``show servers state`` to HAProxy's server-state-file, so that a reload or a
        restart (``load-server-state-from-file``) keeps what the runtime API changed, and a
        depooled server stays depooled.

    eventbus-lb runtime --haproxy-socket SOCK COMMAND
        Send one command to HAProxy's runtime API and print the answer (for operators and
        the lab's checks).

It runs on the load balancer with the distribution's Python, and speaks to etcd and HAProxy
through the collection's own clients (module_utils/_etcd.py, _haproxy.py: standard library
only), which the loadbalancer role installs beside it as the package
``ansible_collections.eventplatform.eventbus.plugins.module_utils``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.eventplatform.eventbus.plugins.module_utils._conftool import (
    POOLED_VALUES,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import (
    INDEX_CLEARED,
    KEY_NOT_FOUND,
    EtcdAuthError,
    EtcdClient,
    EtcdUnavailableError,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._haproxy import (
    RUNTIME_STATES,
    HAProxyRuntime,
    admin_state,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    INACTIVE,
    PoolError,
)

LOG = logging.getLogger("eventbus-lb")


class UnavailableError(Exception):
    """etcd or HAProxy did not answer; try again later."""


@dataclass(frozen=True)
class Desired:
    state: str  # ready | drain | maint
    weight: int | None


def desired_state(pool: dict[str, dict], server: str) -> Desired:
    """What conftool's key for a server asks of HAProxy; no key means not in the pool."""
    value = pool.get(server)
    if value is None:
        return Desired(RUNTIME_STATES[INACTIVE], None)
    state = POOLED_VALUES.get(str(value.get("pooled")), INACTIVE)
    weight = value.get("weight")
    valid_weight = isinstance(weight, int) and not isinstance(weight, bool)
    return Desired(RUNTIME_STATES[state], weight if valid_weight else None)


def _serving(state: str, weight: int, row: dict[str, str]) -> bool:
    return state == "ready" and weight > 0 and row["srv_op_state"] == "2"  # health: up


def held_by_threshold(
    rows: list[dict[str, str]], wants: dict[str, Desired], threshold: float
) -> list[str]:
    """The servers whose way out of service the pool cannot afford now: taking them out
    would leave fewer serving than ``threshold`` of the intended servers (rounded up, and
    at least one unless the threshold is 0). The first ones by name go out; the rest wait."""
    intended = sum(1 for want in wants.values() if want.state != RUNTIME_STATES[INACTIVE])
    required = math.ceil(round(threshold * intended, 9))
    if threshold > 0:
        required = max(1, required)
    serving_after = 0
    leaving = []
    for row in sorted(rows, key=lambda r: r["srv_name"]):
        want, weight = wants[row["srv_name"]], int(row["srv_uweight"])
        stays = _serving(want.state, weight if want.weight is None else want.weight, row)
        if stays:
            serving_after += 1
        elif _serving(admin_state(row), weight, row):
            leaving.append(row["srv_name"])
    held = []
    for name in leaving:
        if serving_after < required:
            held.append(name)
            serving_after += 1
    if held:
        LOG.error(
            "not taking %s out of HAProxy: %d of the %d intended servers would be left serving, "
            "fewer than the %d --depool-threshold %s requires; kept as they are until the pool "
            "allows it", ", ".join(held), serving_after - len(held), intended, required, threshold,
        )  # fmt: skip
    return held


def reconcile(
    haproxy: HAProxyRuntime, backend: str, pool: dict[str, dict], threshold: float = 0.5
) -> None:
    """Send HAProxy the commands that make the backend match the pool, but for the servers
    the depool threshold holds."""
    try:
        rows = haproxy.servers_state(backend)
    except PoolError as err:
        raise UnavailableError(str(err)) from err
    wants = {row["srv_name"]: desired_state(pool, row["srv_name"]) for row in rows}
    held = set(held_by_threshold(rows, wants, threshold))
    for row in sorted(rows, key=lambda r: r["srv_name"]):
        name = row["srv_name"]
        if name in held:
            continue
        want = wants[name]
        commands = []
        if want.weight is not None and want.weight != int(row["srv_uweight"]):
            commands.append(f"set server {backend}/{name} weight {want.weight}")
        if want.state != admin_state(row):
            commands.append(f"set server {backend}/{name} state {want.state}")
        for command in commands:
            try:
                answer = haproxy.command(command).strip()
            except PoolError as err:  # refused, or HAProxy went away mid-way
                LOG.error("%s", err)
                continue
            if answer:
                LOG.error("HAProxy answered %r: %s", command, answer)
                continue
            LOG.info("%s (conftool: %s)", command, pool.get(name, "no key"))


class ConftoolWatch:
    """One conftool pool's keys, read whole and long-polled for changes."""

    def __init__(self, etcd: EtcdClient, pool_path: str) -> None:
        self.etcd = etcd
        self.pool_path = "/" + pool_path.strip("/")

    def read_pool(self) -> tuple[dict[str, dict], int]:
        """Every member of the pool ({name: {"pooled": ..., "weight": ...}}) and etcd's index."""
        try:
            body, index = self.etcd.get(self.pool_path, recursive=True)
        except (EtcdUnavailableError, EtcdAuthError) as err:  # a login refused: keep state too
            raise UnavailableError(str(err)) from err
        if body.get("errorCode") == KEY_NOT_FOUND:  # nobody registered yet
            return {}, index
        if "node" not in body:
            raise UnavailableError(f"etcd {self.etcd.url} answered {body}")
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
        try:
            body, _index = self.etcd.get(
                self.pool_path, recursive=True, wait=True, wait_index=after_index + 1,
                timeout=timeout,
            )  # fmt: skip
        except EtcdUnavailableError as err:
            if err.timed_out:
                return
            raise UnavailableError(str(err)) from err
        except EtcdAuthError as err:
            raise UnavailableError(str(err)) from err
        if body.get("errorCode") not in (None, INDEX_CLEARED, KEY_NOT_FOUND):
            raise UnavailableError(f"etcd {self.etcd.url} answered {body}")


def watch(
    conftool: ConftoolWatch,
    haproxy: HAProxyRuntime,
    backend: str,
    resync: float,
    threshold: float = 0.5,
) -> None:
    backoff = 1.0
    while True:
        try:
            pool, index = conftool.read_pool()
            reconcile(haproxy, backend, pool, threshold)
            backoff = 1.0
            conftool.wait_for_change(index, resync)
        except UnavailableError as err:
            LOG.warning("%s; HAProxy keeps its current state, retrying in %.0f s", err, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def save_state(haproxy: HAProxyRuntime, state_file: Path) -> None:
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
    watcher.add_argument(
        "--depool-threshold",
        type=float,
        default=0.5,
        help="share of the pool's intended servers always kept serving (PyBal's "
        "depool-threshold; 0: none)",
    )
    watcher.add_argument(
        "--etcd-login",
        type=Path,
        default=None,
        help="file holding 'user:password' for etcd's v2 auth (default: the systemd credential "
        "'etcd', $CREDENTIALS_DIRECTORY/etcd, when there is one)",
    )
    saver = commands.add_parser("save-state", help="write HAProxy's server-state-file")
    saver.add_argument("--haproxy-socket", default="/run/haproxy/admin.sock")
    saver.add_argument("--state-file", type=Path, default=Path("/var/lib/haproxy/server-state"))
    runtime = commands.add_parser("runtime", help="send one command to HAProxy's runtime API")
    runtime.add_argument("--haproxy-socket", default="/run/haproxy/admin.sock")
    runtime.add_argument("line", help="the command, e.g. 'show stat'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    haproxy = HAProxyRuntime(socket_path=args.haproxy_socket)
    try:
        if args.command == "runtime":
            sys.stdout.write(haproxy.command(args.line))
            return 0
        if args.command == "save-state":
            try:
                save_state(haproxy, args.state_file)
            except (UnavailableError, PoolError) as err:  # HAProxy not running: keep the file
                LOG.warning("not saved: %s", err)
            return 0
    except PoolError as err:
        print(f"eventbus-lb: {err}", file=sys.stderr)
        return 1
    try:
        username, password = etcd_login(args.etcd_login)
    except (OSError, ValueError) as err:
        print(f"eventbus-lb: etcd login: {err}", file=sys.stderr)
        return 2
    LOG.info("applying %s at %s%s to HAProxy backend %s", args.pool_path, args.etcd_url,
             f" as {username}" if username else "", args.backend)  # fmt: skip
    etcd = EtcdClient(args.etcd_url, username=username, password=password)
    if not 0 <= args.depool_threshold <= 1:
        print("eventbus-lb: --depool-threshold is a share, from 0 to 1", file=sys.stderr)
        return 2
    watch(ConftoolWatch(etcd, args.pool_path), haproxy, args.backend, args.resync,
          args.depool_threshold)  # fmt: skip
    return 0


def etcd_login(path: Path | None) -> tuple[str | None, str | None]:
    """(user, password) from ``path`` or the unit's 'etcd' credential; (None, None) without."""
    if path is None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory or not (Path(directory) / "etcd").exists():
            return None, None
        path = Path(directory) / "etcd"
    user, sep, password = path.read_text(encoding="utf-8").strip().partition(":")
    if not sep or not user:
        raise ValueError(f"{path} must hold 'user:password'")
    return user, password


if __name__ == "__main__":
    sys.exit(main())
