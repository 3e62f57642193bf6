"""Build the service and its dependencies into one wheelhouse archive on the controller, once
per build: ``build_wheelhouse.py PROJECT CONSTRAINTS ARCHIVE`` prints ``built`` or
``present``. Two runs on one controller (an operator per datacenter) that need the same
build take turns on a lock beside the archive: the second finds it made and does not build
it again. Built from a copy of the project (setuptools writes its build and egg-info beside
the sources, and the collection's own directory may be read-only), in a directory of its own
beside the archive, which is renamed into place whole (pack_directory.py)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_directory import pack  # beside this script, not an installed module


def build(project: Path, constraints: Path, archive: Path) -> str:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive.with_name(archive.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if archive.exists():
            return "present"
        work = Path(tempfile.mkdtemp(prefix=archive.name + ".build.", dir=archive.parent))
        try:
            shutil.copytree(project, work / "src")
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                 str(work / "wheels"), "--constraint", str(constraints), str(work / "src")],
                check=True,
            )  # fmt: skip
            pack(work / "wheels", "*.whl", archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return "built"


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: build_wheelhouse.py PROJECT CONSTRAINTS ARCHIVE")
    try:
        print(build(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
    except subprocess.CalledProcessError as err:
        sys.exit(f"pip wheel failed (exit {err.returncode}): see its output above")
