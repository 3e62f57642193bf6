"""Pack a directory's files into one archive, the same bytes for the same files whatever their
order on disk and their times: the eventbus role pushes that one file to every host (a copy
of a directory costs a round trip per file, per host) and `copy` is idempotent only if the
same files give the same bytes. Run on the controller by the eventbus role, for the
wheelhouse (``--glob '*.whl'``) and the schema repository.

    pack_directory.py DIR [--glob PATTERN] [--output ARCHIVE]   (default: DIR.tar, every file)
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from pathlib import Path


def _reset(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    member.mtime = 0
    member.mode = 0o644
    return member


def pack(directory: Path, pattern: str = "**/*", archive: Path | None = None) -> Path:
    """Pack the regular files of ``directory`` matching ``pattern`` (by their path inside it,
    sorted) into ``archive`` (default: DIR.tar beside it), written under a name of this
    process's own first and renamed into place: two runs on one controller may pack at once."""
    archive = archive or directory.with_name(directory.name + ".tar")
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.name}.part-{os.getpid()}")
    files = sorted(
        (path for path in directory.glob(pattern) if path.is_file()),
        key=lambda path: path.relative_to(directory).as_posix(),
    )
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            tar.add(path, arcname=path.relative_to(directory).as_posix(), filter=_reset)
    partial.replace(archive)
    return archive


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--glob", default="**/*", help="which files (default: all)")
    parser.add_argument("--output", type=Path, help="the archive (default: DIR.tar)")
    args = parser.parse_args()
    print(pack(args.directory, args.glob, args.output))
    sys.exit(0)
