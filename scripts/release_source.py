"""Copy files/eventbus (its tracked files) to DEST as the next release: the version in
pyproject.toml and eventbus/__init__.py becomes ``<current>.post<N>``. Prints the new version.
For trying a deploy on the lab: playbooks/deploy.yml -e eventbus_version=V -e
eventbus_source_dir=DEST.

    release_source.py DEST [--post N]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "files" / "eventbus"
VERSION = re.compile(r'^(version = |__version__ = )"([^"]+)"$', re.M)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--post", type=int, default=1)
    args = parser.parse_args(argv)
    files = subprocess.run(
        ["git", "ls-files"], cwd=SOURCE, capture_output=True, text=True, check=True
    ).stdout.split()
    shutil.rmtree(args.dest, ignore_errors=True)
    for name in files:
        (args.dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SOURCE / name, args.dest / name)
    current = VERSION.search((SOURCE / "pyproject.toml").read_text()).group(2)
    new = f"{current}.post{args.post}"
    for name in ("pyproject.toml", "src/eventbus/__init__.py"):
        path = args.dest / name
        path.write_text(VERSION.sub(lambda m: f'{m.group(1)}"{new}"', path.read_text()))
    print(new)


if __name__ == "__main__":
    main()
