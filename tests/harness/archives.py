"""Unpacking a tar archive safely on every Python 3.11 the project meets: the extraction
filters (``filter="data"``) came with 3.11.4, and Debian 12's python3.11 (3.11.2, the
interpreter the Makefile prefers) has none. Without them, the members are checked here the
way the ``data`` filter would refuse them: absolute paths, ``..``, links that leave the
destination, devices and FIFOs."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


def extract_all(archive: tarfile.TarFile, destination: Path) -> None:
    """Unpack every member of ``archive`` into ``destination``; ValueError for a member that
    would land outside it or is not a file, directory or link."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(destination, filter="data")
        return
    root = os.path.realpath(destination)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    members = archive.getmembers()
    for member in members:
        target = os.path.join(root, member.name)
        if os.path.isabs(member.name) or not inside(target):
            raise ValueError(f"{member.name}: outside {destination}")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise ValueError(f"{member.name}: not a file, directory or link")
        if member.issym() and not inside(os.path.join(os.path.dirname(target), member.linkname)):
            raise ValueError(f"{member.name}: a link out of {destination}")
        if member.islnk() and not inside(os.path.join(root, member.linkname)):
            raise ValueError(f"{member.name}: a hard link out of {destination}")
    archive.extractall(destination, members=members)  # every member checked above
