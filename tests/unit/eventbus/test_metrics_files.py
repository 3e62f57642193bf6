"""/metrics with several workers reads every worker's metrics file. A worker creates its file
on its first metric write, empty at first; a scrape at that moment, or an empty file left by a
worker killed then, made every scrape a 500 until the service restarted (seen in CI27, and
reproduced on the lab by adding an empty file). Such files are left out of the scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from eventbus import metrics

WRITE = """
from prometheus_client import Counter
Counter("demo_events", "events", ["outcome"]).labels(outcome="accepted").inc(3)
"""


@pytest.fixture
def worker_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A multi-process directory with one real worker's file (written by prometheus_client in
    a process of its own, as a worker does)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", WRITE], env=env, check=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_a_worker_file_is_read(worker_files: Path) -> None:
    body, _content_type = metrics.render()
    assert b"demo_events_total" in body
    assert b'outcome="accepted"} 3.0' in body


@pytest.mark.parametrize("content", [b"", b"\x01\x00", b"\xff" * 16])
def test_an_empty_or_broken_file_is_left_out(worker_files: Path, content: bytes) -> None:
    (worker_files / "counter_99999.db").write_bytes(content)
    body, _content_type = metrics.render()
    assert b'outcome="accepted"} 3.0' in body  # the other worker's still counted
