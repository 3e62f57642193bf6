# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""secret: a random secret kept in a file on the controller, made once, read without a lock."""

DOCUMENTATION = r"""
name: secret
author:
  - eventbus-ops maintainers (@eventplatform)
short_description: A random secret kept in a file on the controller, made once
version_added: 0.1.0
description:
  - Returns the secret kept on the first line of each file named, for the passwords the
    collection's roles set (Kafka's SCRAM users, etcd's users).
  - A missing file is made with a random secret of I(length) letters and digits (mode 0600, its
    directory 0700). Processes that make the same file at once all get the one that was
    written first (the file appears whole, by a hard link, or not at all).
  - Unlike P(ansible.builtin.password#lookup), a read takes no lock file, so several
    playbook runs (one per datacenter) can read the same secrets side by side. Files that
    lookup made (the password alone on the first line) are read as they are.
  - For production, an ansible-vault encrypted variable is the alternative; this lookup
    keeps the secret on the controller's disk in clear, readable by its owner only.
options:
  _terms:
    description: Paths of the files (relative ones from the playbook's directory).
    required: true
    type: list
    elements: path
  length:
    description: Length of a secret made for a missing file.
    type: int
    default: 32
"""

EXAMPLES = r"""
- name: The service's Kafka password, made on the first run
  ansible.builtin.debug:
    msg: "{{ lookup('eventplatform.eventbus.secret', kafka_pki_dir ~ '/eqiad/eventbus.password') }}"
"""

RETURN = r"""
_raw:
  description: The secret of each file, in the order of the terms.
  type: list
  elements: str
"""

import contextlib
import os
import secrets
import string

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_ALPHABET = string.ascii_letters + string.digits


def read_secret(path):
    """The secret on the first line of ``path``; FileNotFoundError when there is no file."""
    with open(path, encoding="utf-8") as handle:
        secret = handle.readline().rstrip("\r\n")
    if not secret:
        raise AnsibleLookupError(
            f"{path} has no secret on its first line: put one there, or remove the file to have "
            "one made"
        )
    return secret


def make_secret(path, length):
    """Write a new random secret to ``path`` unless another process wrote one first; return
    the secret the file holds then."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    secret = "".join(secrets.choice(_ALPHABET) for _position in range(length))
    draft = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)  # whole or not at all; the first writer wins
    finally:
        os.unlink(draft)
    return read_secret(path)


def secret_file(path, length):
    """The secret of ``path``, made first when the file is missing."""
    if length < 16:
        raise AnsibleLookupError(f"length must be at least 16 (got {length})")
    try:
        return read_secret(path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as error:
        raise AnsibleLookupError(f"could not read the secret file {path}: {error}") from error
    try:
        return make_secret(path, length)
    except OSError as error:
        raise AnsibleLookupError(f"could not make the secret file {path}: {error}") from error


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        length = self.get_option("length")
        found = []
        for term in terms:
            found.append(secret_file(self._loader.path_dwim(term), length))
        return found
