# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bcrypt_hash: a password's bcrypt hash for the Prometheus web configuration's
basic_auth_users (Alertmanager, Prometheus, the exporters), the same on every run."""

import base64
import hashlib

from ansible.errors import AnsibleFilterError

try:
    import bcrypt
except ImportError as error:  # reported when the filter is used, not when it is loaded
    bcrypt = None
    BCRYPT_IMPORT_ERROR = str(error)
else:
    BCRYPT_IMPORT_ERROR = ""

_STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT64 = str.maketrans(_STANDARD, _BCRYPT)


def bcrypt_salt(seed, rounds):
    """A bcrypt salt ($2b$, ``rounds``) made from ``seed``: the same seed, the same salt."""
    raw = hashlib.sha256(seed.encode("utf-8")).digest()[:16]
    encoded = base64.b64encode(raw).decode("ascii").rstrip("=").translate(_TO_BCRYPT64)
    return f"$2b${rounds:02d}${encoded}".encode("ascii")


def bcrypt_hash(password, seed, rounds=10):
    """The bcrypt hash of ``password`` with the salt ``seed`` makes: a template that writes
    it changes only when the password or the seed does."""
    if bcrypt is None:
        raise AnsibleFilterError(
            "bcrypt_hash needs the bcrypt Python package on the controller "
            f"(pip install bcrypt): {BCRYPT_IMPORT_ERROR}"
        )
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("bcrypt_hash expects a non-empty password")
    if not isinstance(seed, str) or len(seed) < 16:
        raise AnsibleFilterError("bcrypt_hash expects a seed of at least 16 characters")
    if len(password.encode("utf-8")) > 72:
        raise AnsibleFilterError("bcrypt takes passwords of at most 72 bytes")
    if not 4 <= int(rounds) <= 31:
        raise AnsibleFilterError(f"bcrypt rounds are 4 to 31 (got {rounds})")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt_salt(seed, int(rounds))).decode("ascii")


class FilterModule:
    def filters(self):
        return {"bcrypt_hash": bcrypt_hash}
