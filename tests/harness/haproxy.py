"""A real HAProxy (Debian's package) with the runtime API at admin level.

The runtime API is exposed on a unix socket and on a loopback TCP port. One HTTP frontend
balances over the given backend servers with an HTTP health check on ``/healthz``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.eventplatform.eventbus.plugins.module_utils._haproxy import HAProxyRuntime
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import PoolError

from ._net import LOOPBACK, free_port, port_open, wait_until
from ._process import ServerProcess


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if path is None:
        raise RuntimeError("haproxy not found: install Debian's haproxy (bash .ci/run does)")
    return path


@dataclass
class HAProxyServer:
    workdir: Path
    servers: dict[str, int]  # server name -> port on loopback
    backend: str = "eventbus"
    # Traffic goes to traffic_address; health checks to check_address when it differs (as
    # LVS-DR sends traffic to the service address and checks to the host's own address).
    traffic_address: str = LOOPBACK
    check_address: str = LOOPBACK
    frontend_port: int = field(default_factory=free_port)
    runtime_port: int = field(default_factory=free_port)
    # With a state file, HAProxy loads the servers' saved state at start (as the
    # loadbalancer role configures it), so what the runtime API changed survives restarts.
    state_file: Path | None = None
    process: ServerProcess | None = None

    @property
    def socket_path(self) -> Path:
        return self.workdir / "admin.sock"

    @property
    def frontend_url(self) -> str:
        return f"http://{LOOPBACK}:{self.frontend_port}"

    def config(self) -> str:
        check_addr = (
            f" addr {self.check_address}" if self.check_address != self.traffic_address else ""
        )
        servers = "\n".join(
            f"    server {name} {self.traffic_address}:{port} check{check_addr} "
            "inter 500ms fall 2 rise 1 weight 10"
            for name, port in self.servers.items()
        )
        state_global = f"    server-state-file {self.state_file}\n" if self.state_file else ""
        state_defaults = "    load-server-state-from-file global\n" if self.state_file else ""
        return f"""\
global
{state_global}    stats socket {self.socket_path} mode 600 level admin
    stats socket ipv4@{LOOPBACK}:{self.runtime_port} level admin
    stats timeout 30s
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    option http-server-close
{state_defaults}
frontend {self.backend}_front
    bind {LOOPBACK}:{self.frontend_port}
    default_backend {self.backend}

backend {self.backend}
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""

    def start(self, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(self.config())
        binary = haproxy_binary()
        check = subprocess.run(
            [binary, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected its config:\n{check.stdout}{check.stderr}")
        self.process = ServerProcess([binary, "-db", "-f", str(cfg)], self.workdir / "haproxy.log")
        self.process.start()
        wait_until(
            lambda: port_open(self.frontend_port) and self.socket_path.exists(),
            timeout,
            "haproxy frontend and runtime socket",
            on_timeout=self.process.log_tail,
        )

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    @property
    def runtime(self) -> HAProxyRuntime:
        """The collection's runtime API client, on the unix socket."""
        return HAProxyRuntime(socket_path=str(self.socket_path), timeout=5)

    def command(self, line: str) -> str:
        """Send one runtime API command over the unix socket and return the answer (an
        answer HAProxy gives to refuse is returned too, not raised)."""
        try:
            return self.runtime.command(line)
        except PoolError as err:
            return str(err)

    def server_state(self, server: str) -> dict[str, str]:
        """The row of ``show servers state <backend>`` for one server, as a dict."""
        for row in self.runtime.servers_state(self.backend):
            if row["srv_name"] == server:
                return row
        raise KeyError(f"server {server} not in backend {self.backend}")
