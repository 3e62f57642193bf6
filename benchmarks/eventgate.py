"""EventGate, the peer measured against (../shared/peers/README.md): installed into
build/peers/eventgate from its source tarball when missing, run as a real Node.js process."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import yaml

from benchmarks._wrk import progress
from tests.harness.archives import extract_all

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
INSTALL_DIR = ROOT / "build" / "peers" / "eventgate"


def tarball() -> Path:
    found = sorted(PEERS.glob("eventgate-*.tar.gz"))
    if not found:
        raise SystemExit(f"no EventGate source tarball in {PEERS}; see its README.md")
    return found[-1]


def install(target: Path = INSTALL_DIR) -> Path:
    """Unpack EventGate and install its dependencies (npm ci, about 3 minutes) unless done."""
    if (target / "node_modules" / "node-rdkafka" / "build").is_dir():
        return target
    for tool in ("node", "npm", "g++", "make"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed to install EventGate: run scripts/prerequisites.sh")
    source = tarball()
    progress(f"installing EventGate from {source.name} into {target} (npm ci, a few minutes)")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source) as archive:
        extract_all(archive, target.parent)
    subprocess.run(
        ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target,
        check=True,
    )
    return target


def config(path: Path, port: int, schemas: Path, bootstrap: str, workers: int) -> Path:
    """The configuration of the peers README: the same schemas, ``meta.topic`` as the topic
    (no datacenter prefix), acks=all, ``workers`` processes (0 is a single process)."""
    conf = {
        "num_workers": 0 if workers == 1 else workers,
        "logging": {"level": "fatal"},
        "services": [
            {
                "name": "EventGate",
                "module": "./app.js",
                "conf": {
                    "port": port,
                    "interface": "127.0.0.1",
                    "max_body_size": "4mb",
                    "eventgate_factory_module": "../lib/factories/default-eventgate",
                    "schema_uri_field": "$schema",
                    "schema_base_uris": [schemas.resolve().as_uri()],
                    "schema_file_extension": ".yaml",
                    "stream_field": "meta.topic",
                    "kafka": {
                        "conf": {
                            "metadata.broker.list": bootstrap,
                            "producer.poll.interval.ms": 5,
                            "queue.buffering.max.ms": 1,
                        },
                        "topic_conf": {"request.required.acks": -1},
                    },
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(conf))
    return path


def start(install_dir: Path, config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            ["node", "server.js", "-c", str(config_path)],
            cwd=install_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
