"""tests.harness.archives.extract_all: the data filter where Python has it, the same refusals
where it does not (Debian 12's python3.11 is 3.11.2, without extraction filters)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.archives import extract_all


def archive_of(path: Path, *members: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w") as tar:
        for add in members:
            add(tar)
    return path


def regular(name: str, text: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))

    return add


def special(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)

    return add


@pytest.fixture(params=["with filters", "without filters"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "without filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no extraction filters (before 3.11.4)")
    return str(request.param)


def test_files_directories_and_inner_links_are_unpacked(tmp_path: Path, python: str) -> None:
    source = archive_of(
        tmp_path / "a.tar",
        special("pkg", tarfile.DIRTYPE),
        regular("pkg/wheel.whl", b"wheel"),
        special("pkg/latest.whl", tarfile.SYMTYPE, "wheel.whl"),
    )
    with tarfile.open(source) as tar:
        extract_all(tar, tmp_path / "out")
    assert (tmp_path / "out/pkg/wheel.whl").read_bytes() == b"wheel"
    assert (tmp_path / "out/pkg/latest.whl").read_bytes() == b"wheel"


@pytest.mark.parametrize(
    "member",
    [
        regular("../escaped"),
        special("out-link", tarfile.SYMTYPE, "../../etc/passwd"),
        special("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
        special("hard", tarfile.LNKTYPE, "../outside"),
        special("fifo", tarfile.FIFOTYPE),
        special("device", tarfile.CHRTYPE),
    ],
    ids=["dot-dot", "link out", "absolute link", "hard link out", "fifo", "device"],
)
def test_members_that_leave_the_destination_or_are_not_files_are_refused(
    tmp_path: Path, python: str, member: Callable[[tarfile.TarFile], None]
) -> None:
    source = archive_of(tmp_path / "a.tar", regular("first"), member)
    with tarfile.open(source) as tar, pytest.raises((ValueError, tarfile.TarError)):
        extract_all(tar, tmp_path / "out")
    assert not (tmp_path / "escaped").exists()
    if python == "without filters":  # refused before anything was written
        assert not (tmp_path / "out" / "first").exists()


def test_an_absolute_member_never_lands_outside(tmp_path: Path, python: str) -> None:
    outside = tmp_path / "outside"
    source = archive_of(tmp_path / "a.tar", regular(str(outside)))
    with tarfile.open(source) as tar:
        if python == "with filters":  # the data filter strips the leading slash
            extract_all(tar, tmp_path / "out")
            assert (tmp_path / "out" / str(outside).lstrip("/")).exists()
        else:
            with pytest.raises(ValueError, match="outside"):
                extract_all(tar, tmp_path / "out")
    assert not outside.exists()
