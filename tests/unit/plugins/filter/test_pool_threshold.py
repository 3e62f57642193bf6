"""pool_required and pool_intended: the runbook's pre-flight, plan and depool count with the
rule pool_member applies (PyBal's depool-threshold), not a copy of it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.eventplatform.eventbus.plugins.filter.pool_threshold import (
    pool_intended,
    pool_required,
)


def pool(*states: str) -> dict:
    return {f"host{i}": {"state": s, "weight": 10} for i, s in enumerate(states, 1)}


@pytest.mark.parametrize(
    ("states", "threshold", "at_least", "required"),
    [
        (("pooled", "pooled"), 0.5, 1, 1),
        (("pooled",) * 5, 0.5, 1, 3),  # 2.5 rounded up
        (("pooled",) * 4 + ("inactive",), 0.5, 1, 2),  # an inactive member is not intended
        (("pooled",) * 10, 0.7, 1, 7),  # 0.7 * 10 is 7.000000000000001 in floating point
        (("pooled", "depooled"), 0.0, 1, 1),  # at least one
        (("pooled", "depooled"), 0.0, 0, 1),  # one always serves, as pool_member keeps it
        (("pooled",) * 3, 0.5, 3, 3),  # runbook_min_healthy_peers above the share
    ],
)
def test_the_share_rounded_up_and_at_least(
    states: tuple[str, ...], threshold: float, at_least: int, required: int
) -> None:
    assert pool_required(pool(*states), threshold, at_least) == required


def test_intended_members_leave_inactive_ones_out() -> None:
    assert pool_intended(pool("pooled", "depooled", "inactive")) == 2


@pytest.mark.parametrize("bad", [(["host1"], 0.5), ({}, "half"), ({}, 1.5)])
def test_bad_input_says_what_it_expects(bad: tuple[object, object]) -> None:
    with pytest.raises(AnsibleFilterError):
        pool_required(*bad)
