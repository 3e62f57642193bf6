"""Copy files/eventbus (its tracked files) to DEST as the next release: the version in
pyproject.toml and eventbus/__init__.py becomes ``<current>.post<N>``. Prints the new version.
For trying a deploy on the lab: playbooks/deploy.yml -e eventbus_version=V -e
eventbus_source_dir=DEST.

    release_source.py DEST [--post N] [--broken]

--broken makes a release that refuses the clients' valid events (those of scripts/loadgen.py)
while it still passes the deploy gate (its test event): what a deploy's canary check must
catch and roll back.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "files" / "eventbus"
# inserted at the top of the per-event checks' loop (Validator._checked)
BROKEN = """\
                if isinstance(event, dict) and str(event.get("test", "")).startswith("loadgen"):
                    raise InvalidEventError("this release refuses valid events (broken on purpose)")
"""
VERSION = re.compile(r'^(version = |__version__ = )"([^"]+)"$', re.M)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--post", type=int, default=1)
    parser.add_argument("--broken", action="store_true", help="refuse the clients' valid events")
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
    if args.broken:
        validation = args.dest / "src" / "eventbus" / "validation.py"
        text = validation.read_text()
        marker = "        for index, event, raw in items:\n            try:\n"
        assert marker in text, "validation.py changed: update release_source.py --broken"
        validation.write_text(text.replace(marker, marker + BROKEN, 1))
    print(new)


if __name__ == "__main__":
    main()
