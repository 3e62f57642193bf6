# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pool_required: how many members of a pool must stay serving - the one rule pool_member,
pool_watch and the runbook playbooks share (plugins/module_utils/_pool.py)."""

from ansible.errors import AnsibleFilterError
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    required_serving,
)


def pool_required(pool, threshold, at_least=1):
    """``threshold`` of the pool's intended members (those not inactive), rounded up, at least
    one and at least ``at_least``; ``pool`` is pool_member_info's ``pool`` (name -> member)."""
    if not isinstance(pool, dict):
        raise AnsibleFilterError("pool_required expects pool_member_info's pool, a dict")
    try:
        share = float(threshold)
    except (TypeError, ValueError):
        raise AnsibleFilterError(
            f"pool_required: threshold {threshold!r} is not a number"
        ) from None
    if not 0 <= share <= 1:
        raise AnsibleFilterError(f"pool_required: threshold is a share from 0 to 1, got {share}")
    needed, _intended = required_serving(pool, share)
    return max(needed, int(at_least))


def pool_intended(pool):
    """The pool's intended members: those not inactive."""
    if not isinstance(pool, dict):
        raise AnsibleFilterError("pool_intended expects pool_member_info's pool, a dict")
    return required_serving(pool, 0)[1]


class FilterModule:
    def filters(self):
        return {"pool_required": pool_required, "pool_intended": pool_intended}
