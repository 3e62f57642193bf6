# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Attributes of modules that only read.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: The module only reads, so check mode runs it as usual.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

    # Attributes of modules that change state.
    CHANGES_STATE = r"""
attributes:
  check_mode:
    support: full
    description: In check mode the module reports what it would change, and changes nothing.
  diff_mode:
    support: full
    description: With C(--diff) the module shows the state before and after.
"""
