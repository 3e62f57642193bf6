"""The eventbus role's archives (roles/eventbus/files/pack_directory.py), of the wheelhouse and
of the schema repository: the role pushes each with `copy`, which is idempotent only if the
same files give the same bytes."""

from __future__ import annotations

import importlib.util
import os
import tarfile
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
