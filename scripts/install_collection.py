"""Build the collection's tarball and install it, as a user would, into a collections path.

    install_collection.py [DEST]     default: build/installed (ANSIBLE_COLLECTIONS_PATH=DEST)

The molecule scenarios and the lab's main command run the roles and playbooks from this
installed copy (playbooks by FQCN, e.g. eventplatform.eventbus.rolling_restart), never from
the checkout: what is not in the tarball is not there. Prints DEST.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "build" / "installed"
BIN = Path(sys.executable).parent


def install(dest: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="eventbus-collection-") as tmp:
        subprocess.run(
            [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", tmp, str(REPO)],
            check=True,
            capture_output=True,
            text=True,
        )
        (tarball,) = Path(tmp).glob("eventplatform-eventbus-*.tar.gz")
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(
            [str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", str(dest),
             str(tarball)],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("dest", nargs="?", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    try:
        print(install(args.dest.resolve()))
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or err.stdout or "").strip().splitlines()
        print(
            f"install_collection: {' '.join(err.cmd[:3])} failed: {detail[-1] if detail else err}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
