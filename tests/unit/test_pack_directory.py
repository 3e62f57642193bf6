"""The eventbus role's archives (roles/eventbus/files/pack_directory.py), of the wheelhouse and
of the schema repository: the role pushes each with `copy`, which is idempotent only if the
same files give the same bytes."""

from __future__ import annotations

import importlib.util
import os
import tarfile
import threading
import time
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "roles" / "eventbus" / "files" / "pack_directory.py"
spec = importlib.util.spec_from_file_location("pack_directory", SCRIPT)
assert spec
assert spec.loader
pack_directory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack_directory)


def wheelhouse(root: Path, mtime: int, order: list[str]) -> Path:
    house = root / "0.2.0-abc"
    house.mkdir(parents=True)
    for name in order:
        wheel = house / name
        wheel.write_bytes(name.encode() * 100)
        os.utime(wheel, (mtime, mtime))
    (house / "notes.txt").write_text("not a wheel")
    return house


def test_the_same_wheels_give_the_same_archive(tmp_path: Path) -> None:
    names = ["eventbus-0.2.0-py3-none-any.whl", "aiohttp-3.12-cp311-linux.whl"]
    first = pack_directory.pack(wheelhouse(tmp_path / "a", 1_000, names), "*.whl")
    second = pack_directory.pack(
        wheelhouse(tmp_path / "b", 2_000_000, list(reversed(names))), "*.whl"
    )
    assert first.name == "0.2.0-abc.tar"
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(names)
    assert {(m.uid, m.gid, m.mtime, m.mode) for m in members} == {(0, 0, 0, 0o644)}
    assert not list(first.parent.glob("*.part*"))


def test_a_changed_wheel_changes_the_archive(tmp_path: Path) -> None:
    house = wheelhouse(tmp_path, 1_000, ["eventbus-0.2.0-py3-none-any.whl"])
    before = pack_directory.pack(house, "*.whl").read_bytes()
    (house / "eventbus-0.2.0-py3-none-any.whl").write_bytes(b"rebuilt")
    assert pack_directory.pack(house, "*.whl").read_bytes() != before


def schema_tree(root: Path, mtime: int, reverse: bool) -> Path:
    files = {"test/event/1.0.0.yaml": b"title: test/event", "mediawiki/page/edit/1.0.0.json": b"{}"}
    for name, content in sorted(files.items(), reverse=reverse):
        path = root / "schemas" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (mtime, mtime))
    return root / "schemas"


def test_a_tree_of_schemas_packs_every_file_by_its_path(tmp_path: Path) -> None:
    first = pack_directory.pack(
        schema_tree(tmp_path / "a", 1_000, False), archive=tmp_path / "1.tar"
    )
    second = pack_directory.pack(
        schema_tree(tmp_path / "b", 9_000, True), archive=tmp_path / "2.tar"
    )
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = tar.getnames()
    assert names == ["mediawiki/page/edit/1.0.0.json", "test/event/1.0.0.yaml"]


def load_builder():
    script = SCRIPT.with_name("build_wheelhouse.py")
    builder_spec = importlib.util.spec_from_file_location("build_wheelhouse", script)
    assert builder_spec
    assert builder_spec.loader
    module = importlib.util.module_from_spec(builder_spec)
    builder_spec.loader.exec_module(module)
    return module


def test_two_runs_that_need_one_build_build_it_once(tmp_path: Path, monkeypatch) -> None:
    """Two deploys on one controller (one per datacenter) need the same build at once: one
    builds it (pip wheel, faked here: the lab proof's deploy runs the real one), the other
    waits for it on the lock and finds the archive whole."""
    builder = load_builder()
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    calls: list[list[str]] = []

    def fake_pip(argv: list[str], check: bool) -> None:
        calls.append(argv)
        wheels = Path(argv[argv.index("--wheel-dir") + 1])
        wheels.mkdir(parents=True)
        time.sleep(0.5)  # the other run arrives meanwhile
        (wheels / "x-1-py3-none-any.whl").write_bytes(b"wheel")

    monkeypatch.setattr(builder.subprocess, "run", fake_pip)
    archive = tmp_path / "cache" / "wheelhouse" / "1.0-abc.tar"
    results: list[str] = []
    runs = [
        threading.Thread(target=lambda: results.append(builder.build(project, project, archive)))
        for _run in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(30)
    assert sorted(results) == ["built", "present"]
    assert len(calls) == 1
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["x-1-py3-none-any.whl"]
    assert sorted(p.name for p in archive.parent.iterdir()) == ["1.0-abc.tar", "1.0-abc.tar.lock"]
