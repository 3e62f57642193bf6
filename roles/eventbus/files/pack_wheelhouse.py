"""Pack a wheelhouse directory into one archive beside it (DIR.tar), the same bytes for the
same wheels: the role pushes that one file to every host instead of each wheel (a copy of a
directory costs a round trip per file, per host). Run on the controller by the eventbus role.
"""

import sys
import tarfile
from pathlib import Path


def _reset(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    member.mtime = 0
    member.mode = 0o644
    return member


def pack(wheelhouse: Path) -> Path:
    archive = wheelhouse.with_name(wheelhouse.name + ".tar")
    partial = wheelhouse.with_name(wheelhouse.name + ".tar.part")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in sorted(wheelhouse.glob("*.whl")):
            tar.add(wheel, arcname=wheel.name, filter=_reset)
    partial.replace(archive)
    return archive


if __name__ == "__main__":
    print(pack(Path(sys.argv[1])))
