"""The secret lookup: made once (whole, 0600, the first writer wins), read without a lock, and
clear errors; through ansible itself as an inventory uses it."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError
from ansible_collections.eventplatform.eventbus.plugins.lookup.secret import secret_file

REPO = Path(__file__).resolve().parents[4]
ANSIBLE = Path(sys.executable).parent / "ansible"


def test_a_missing_file_is_made_private_with_a_random_secret(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "eqiad" / "eventbus.password"
    first = secret_file(str(path), 32)
    assert len(first) == 32
    assert first.isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert secret_file(str(path), 32) == first  # kept
    assert secret_file(str(tmp_path / "other"), 32) != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["eventbus.password"]  # no drafts


def test_a_file_of_the_builtin_lookup_or_the_operator_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "root.password"
    path.write_text("s3cret with spaces\nsecond line ignored\n")
    assert secret_file(str(path), 32) == "s3cret with spaces"
    path.write_text("no-newline")
    assert secret_file(str(path), 32) == "no-newline"


def test_an_empty_file_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "empty.password"
    path.write_text("\n")
    with pytest.raises(AnsibleLookupError, match="no secret on its first line"):
        secret_file(str(path), 32)
    with pytest.raises(AnsibleLookupError, match="at least 16"):
        secret_file(str(tmp_path / "short"), 8)


def test_a_path_that_cannot_hold_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x\n")
    with pytest.raises(AnsibleLookupError, match=r"could not (read|make) the secret file"):
        secret_file(str(tmp_path / "a-file" / "x.password"), 32)  # a file where a directory goes
    (tmp_path / "dir.password").mkdir()
    with pytest.raises(AnsibleLookupError, match="could not read the secret file"):
        secret_file(str(tmp_path / "dir.password"), 32)
    (tmp_path / "binary.password").write_bytes(b"\xff\xfe\n")
    with pytest.raises(AnsibleLookupError, match="could not read the secret file"):
        secret_file(str(tmp_path / "binary.password"), 32)


def _make(path: str, start: Any, results: Any) -> None:
    start.wait()
    results.put(secret_file(path, 32))


def test_processes_making_the_same_file_at_once_all_get_one_secret(tmp_path: Path) -> None:
    for round_ in range(5):
        path = str(tmp_path / f"race{round_}.password")
        start, results = multiprocessing.Event(), multiprocessing.Queue()
        workers = [
            multiprocessing.Process(target=_make, args=(path, start, results)) for _n in range(8)
        ]
        for worker in workers:
            worker.start()
        start.set()
        seen = {results.get(timeout=30) for _worker in workers}
        for worker in workers:
            worker.join(timeout=30)
        assert seen == {Path(path).read_text().strip()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"race{i}.password" for i in range(5)]


def _lookup(path: Path, out: Path) -> subprocess.Popen[str]:
    """An ad-hoc ansible run that writes the lookup's value to ``out``."""
    expression = f"{{{{ lookup('eventplatform.eventbus.secret', '{path}') }}}}"
    return subprocess.Popen(
        [str(ANSIBLE), "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.copy",
         "-a", f"content={expression} dest={out} mode=0600"],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
             "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_ansible_runs_side_by_side_read_the_same_secret(tmp_path: Path) -> None:
    path = tmp_path / "etcd" / "eventbus-ops.password"
    outs = [tmp_path / f"seen{i}" for i in range(3)]
    runs = [_lookup(path, out) for out in outs]
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stdout + stderr
    assert {out.read_text() for out in outs} == {path.read_text().strip()}
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no lock files, no drafts
