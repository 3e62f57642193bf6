"""The eventbus role's wheelhouse archive (roles/eventbus/files/pack_wheelhouse.py): the role
pushes it with `copy`, which is idempotent only if the same wheels give the same bytes."""

from __future__ import annotations

import importlib.util
import os
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "roles" / "eventbus" / "files" / "pack_wheelhouse.py"
spec = importlib.util.spec_from_file_location("pack_wheelhouse", SCRIPT)
assert spec
assert spec.loader
pack_wheelhouse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack_wheelhouse)


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
    first = pack_wheelhouse.pack(wheelhouse(tmp_path / "a", 1_000, names))
    second = pack_wheelhouse.pack(wheelhouse(tmp_path / "b", 2_000_000, list(reversed(names))))
    assert first.name == "0.2.0-abc.tar"
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(names)
    assert {(m.uid, m.gid, m.mtime, m.mode) for m in members} == {(0, 0, 0, 0o644)}
    assert not list(first.parent.glob("*.part"))


def test_a_changed_wheel_changes_the_archive(tmp_path: Path) -> None:
    house = wheelhouse(tmp_path, 1_000, ["eventbus-0.2.0-py3-none-any.whl"])
    before = pack_wheelhouse.pack(house).read_bytes()
    (house / "eventbus-0.2.0-py3-none-any.whl").write_bytes(b"rebuilt")
    assert pack_wheelhouse.pack(house).read_bytes() != before
