"""unsupported_host: the one rule of the hosts the roles install on - each class of unsupported
host (another OS family, an untested release, another architecture, an old Python, facts not
gathered) is one line naming it, and the tested host has none."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.eventplatform.eventbus.plugins.filter.host_support import (
    unsupported_host,
)


def facts(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "os_family": "Debian",
        "distribution": "Debian",
        "distribution_major_version": "12",
        "architecture": "x86_64",
        "python": {"version": {"major": 3, "minor": 11, "micro": 2}},
    }
    return {**base, **changes}


@pytest.mark.parametrize("architecture", ["x86_64", "aarch64"])
def test_the_tested_host_is_supported(architecture: str) -> None:
    assert unsupported_host(facts(architecture=architecture)) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"os_family": "RedHat", "distribution": "Rocky", "distribution_major_version": "9"},
         "Rocky 9 is not of the Debian family (Debian 12)"),
        ({"distribution_major_version": "11"}, "Debian 11 is not a release the roles are"),
        ({"distribution_major_version": "13"}, "Debian 13 is not a release the roles are"),
        ({"distribution": "Ubuntu", "distribution_major_version": "24"}, "Ubuntu 24 is not a"),
        ({"architecture": "armv7l"}, "architecture armv7l is not one of x86_64, aarch64"),
        ({"python": {"version": {"major": 3, "minor": 9}}}, "Python 3.9 is older than 3.11"),
        ({"python": {}}, "Python ?.? is older than 3.11"),
    ],
)  # fmt: skip
def test_each_unsupported_class_is_one_line(changes: dict[str, Any], expected: str) -> None:
    problems = unsupported_host(facts(**changes))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_an_untested_debian_release_may_be_let_through() -> None:
    assert unsupported_host(facts(distribution_major_version="13"), "3.11", True) == []
    # not another family, architecture or an old Python
    assert (
        len(unsupported_host(facts(os_family="RedHat", architecture="ppc64le"), "3.11", True)) == 2
    )


def test_a_newer_python_minimum_is_honoured() -> None:
    assert unsupported_host(facts(), "3.12") == ["Python 3.11 is older than 3.12"]


def test_facts_not_gathered_are_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="min subset"):
        unsupported_host({})
