# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Attributes of modules that only read.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Can run in check mode; the module only reads, so it runs as usual.
  diff_mode:
    support: none
    description: Returns what changed, before and after, when run with C(--diff).
    details: Nothing changes, so there is no diff.
"""

    # Attributes of modules that change state. Diff support is each module's own: one that
    # returns a diff sets O(diff_mode) to full (tests/unit/test_module_attributes.py checks).
    CHANGES_STATE = r"""
attributes:
  check_mode:
    support: full
    description: Can run in check mode; it reports what it would change, and changes nothing.
  diff_mode:
    support: none
    description: Returns what changed, before and after, when run with C(--diff).
"""
