"""A real etcd server (Debian's etcd-server) with the v2 keys API that conftool uses."""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.eventplatform.eventbus.plugins.module_utils._etcd import (
    KEY_NOT_FOUND,
    EtcdClient,
)

from ._net import LOOPBACK, free_port, wait_until
from ._process import ServerProcess


def etcd_binary() -> str:
    path = shutil.which("etcd")
    if path is None:
        raise RuntimeError("etcd not found: install Debian's etcd-server (bash .ci/run does)")
    return path


@dataclass
class EtcdServer:
    workdir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.client_port}"

    def start(self, timeout: float = 30.0) -> None:
        peer = f"http://{LOOPBACK}:{self.peer_port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = ServerProcess(
            [
                etcd_binary(),
                "--name",
                "test",
                "--data-dir",
                str(self.workdir / "data"),
                "--enable-v2=true",
                "--listen-client-urls",
                self.url,
                "--advertise-client-urls",
                self.url,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"test={peer}",
                "--initial-cluster-state",
                "new",
            ],
            self.workdir / "etcd.log",
        )
        self.process.start()
        wait_until(self._v2_ready, timeout, "etcd v2 API", on_timeout=self.process.log_tail)

    def _v2_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/v2/keys/", timeout=1) as resp:
            return resp.status == 200

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    # Calls of the v2 keys API, through the collection's one etcd client.
    @property
    def client(self) -> EtcdClient:
        return EtcdClient(self.url, timeout=5)

    def put(self, key: str, value: str) -> None:
        body, _index = self.client.put(key, value)
        if "node" not in body:
            raise RuntimeError(f"etcd refused {key}: {body}")

    def get(self, key: str) -> str | None:
        body, _index = self.client.get(key)
        if body.get("errorCode") == KEY_NOT_FOUND:
            return None
        if "node" not in body:
            raise RuntimeError(f"etcd answered {body} for {key}")
        return body["node"].get("value")

    def delete_tree(self, key: str) -> None:
        body, _index = self.client.delete(key, recursive=True)
        if body.get("status") and body.get("errorCode") != KEY_NOT_FOUND:
            raise RuntimeError(f"etcd refused to delete {key}: {body}")
