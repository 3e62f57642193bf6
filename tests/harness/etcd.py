"""A real etcd server (Debian's etcd-server) with the v2 keys API that conftool uses."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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

    # Plain v2 keys API calls, for tests to set up and inspect state independently of the
    # code under test.
    def put(self, key: str, value: str) -> None:
        data = urllib.parse.urlencode({"value": value}).encode()
        req = urllib.request.Request(f"{self.url}/v2/keys{key}", data=data, method="PUT")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def get(self, key: str) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/keys{key}", timeout=5) as resp:
                return json.load(resp)["node"].get("value")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def delete_tree(self, key: str) -> None:
        req = urllib.request.Request(
            f"{self.url}/v2/keys{key}?recursive=true&dir=true", method="DELETE"
        )
        try:
            with urllib.request.urlopen(req, timeout=5):
                pass
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
