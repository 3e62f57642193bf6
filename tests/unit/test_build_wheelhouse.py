"""The wheelhouse builder's target platform (roles/eventbus/files/build_wheelhouse.py): the
manylinux tags a glibc host installs, and the targets it refuses with a clear message."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.unit.test_pack_directory import load_builder


def test_a_glibc_host_installs_every_older_manylinux() -> None:
    tags = load_builder().platform_tags("aarch64", "2.36")
    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags
    assert "manylinux_2_5_aarch64" in tags
    assert not [tag for tag in tags if "x86_64" in tag or "_2_37_" in tag]


def test_an_older_glibc_gets_no_newer_tag() -> None:
    tags = load_builder().platform_tags("x86_64", "2.17")
    assert tags[0] == "manylinux_2_17_x86_64"
    assert "manylinux2014_x86_64" in tags
    assert "manylinux_2_28_x86_64" not in tags


def test_the_pip_options_name_the_hosts_python() -> None:
    options = load_builder().target_options(
        {"python": "3.12", "machine": "x86_64", "libc": ["glibc", "2.36"]}
    )
    assert options[:2] == ["--only-binary", ":all:"]
    assert options[options.index("--python-version") + 1] == "3.12"
    assert [options[i + 1] for i, o in enumerate(options) if o == "--abi"] == [
        "cp312",
        "abi3",
        "none",
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"python": "3.12", "machine": "x86_64", "libc": ["musl", "1.2"]}, "the hosts need glibc"),
        ({"python": "3.12", "machine": "x86_64", "libc": ["", ""]}, "the hosts need glibc"),
        ({"python": "3", "machine": "x86_64", "libc": ["glibc", "2.36"]}, "is not 3.N"),
    ],
)
def test_a_target_it_cannot_build_for_is_refused(target: dict, message: str) -> None:
    module = load_builder()
    with pytest.raises(module.WheelhouseError, match=message):
        module.target_options(target)


@pytest.mark.parametrize(
    "stderr",
    [
        "ERROR: No matching distribution found for ebcext==1.0\n",
        # a requirement and a constraint pin it both: pip reports a conflict instead
        "The conflict is caused by:\n    ebsvc 0.1 depends on ebcext==1.0\n"
        "Additionally, some packages in these conflicts have no matching distributions "
        "available for your environment:\n    ebcext\n",
    ],
)
def test_both_ways_pip_names_a_requirement_without_a_wheel_are_read(stderr: str) -> None:
    found = load_builder().NOT_FOUND.search(stderr)
    assert found is not None
    assert (found.group(1) or found.group(2)).startswith("ebcext")


def sdist_with(path: Path, name: str, text: str) -> Path:
    """A source archive holding one file, ``<stem>/<name>``."""
    data = text.encode()
    member = tarfile.TarInfo(f"{path.name.removesuffix('.tar.gz')}/{name}")
    member.size = len(data)
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(data))
    return path


def test_a_source_without_a_build_system_needs_setuptools(tmp_path: Path) -> None:
    module = load_builder()
    sdist = sdist_with(tmp_path / "old-1.0.tar.gz", "setup.py",
                       "from setuptools import setup\nsetup()\n")  # fmt: skip
    assert module.build_requirements(sdist) == ["setuptools>=40.8.0", "wheel"]
    declared = sdist_with(tmp_path / "new-1.0.tar.gz", "pyproject.toml",
                          '[build-system]\nrequires = ["maturin>=1,<2"]\n')  # fmt: skip
    assert module.build_requirements(declared) == ["maturin>=1,<2"]
