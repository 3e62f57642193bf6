# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""unsupported_host: why the collection's roles cannot install on a host, from its facts - the
one rule of what the roles support (each role's pre-flight refuses with these words)."""

from ansible.errors import AnsibleFilterError

# The releases the roles are tested on (their packages: openjdk-17, etcd-server with the v2
# API, Python 3.11); every architecture the service's dependencies publish wheels for.
TESTED = {"Debian": ("12",)}
ARCHITECTURES = ("x86_64", "aarch64")


def _version(text):
    try:
        return tuple(int(part) for part in str(text).split(".")[:2])
    except ValueError:
        return None


def unsupported_host(facts, min_python="3.11", untested=False):
    """One line per reason the host is not supported; empty when it is. ``facts`` is
    ``ansible_facts`` with at least the ``min`` subset gathered; ``untested`` lets any Debian
    family release through."""
    if not isinstance(facts, dict) or "os_family" not in facts:
        raise AnsibleFilterError(
            "unsupported_host needs ansible_facts with the min subset gathered"
        )
    problems = []
    distribution = facts.get("distribution", "?")
    release = facts.get("distribution_major_version", "?")
    tested = ", ".join(f"{name} {' or '.join(releases)}" for name, releases in TESTED.items())
    if facts.get("os_family") != "Debian":
        problems.append(f"{distribution} {release} is not of the Debian family ({tested})")
    elif not untested and str(release) not in TESTED.get(distribution, ()):
        problems.append(
            f"{distribution} {release} is not a release the roles are tested on ({tested}); "
            "host_support_allow_untested=true tries it anyway"
        )
    architecture = facts.get("architecture", "?")
    if architecture not in ARCHITECTURES:
        problems.append(f"architecture {architecture} is not one of {', '.join(ARCHITECTURES)}")
    python = facts.get("python", {}).get("version", {})
    found = f"{python.get('major', '?')}.{python.get('minor', '?')}"
    if _version(found) is None or _version(found) < _version(min_python):
        problems.append(f"Python {found} is older than {min_python}")
    return problems


class FilterModule:
    def filters(self):
        return {"unsupported_host": unsupported_host}
