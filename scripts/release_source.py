"""Copy files/eventbus (its tracked files) to DEST as the next release: the version in
pyproject.toml and eventbus/__init__.py becomes ``<current>.post<N>``. Prints the new version.
For trying a deploy on the lab: playbooks/deploy.yml -e eventbus_version=V -e
eventbus_source_dir=DEST.

    release_source.py DEST [--post N] [--broken | --fails-test-event]

--broken makes a release that refuses the clients' valid events (those of scripts/loadgen.py)
while it still passes the deploy gate (its test event): what a deploy's canary check must
catch and roll back. --fails-test-event makes one that refuses every other event, the deploy
gate's test event included: the deploy must stop at the host's health step and never repool
it on that release.
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
FAILS_TEST_EVENT = """\
                if not str(isinstance(event, dict) and event.get("test", "")).startswith("loadgen"):
                    raise InvalidEventError("refuses the test event (broken on purpose)")
"""
VERSION = re.compile(r'^(version = |__version__ = )"([^"]+)"$', re.M)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--post", type=int, default=1)
    broken = parser.add_mutually_exclusive_group()
    broken.add_argument("--broken", action="store_true", help="refuse the clients' valid events")
    broken.add_argument(
        "--fails-test-event", action="store_true", help="refuse every event but the clients'"
    )
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
    if args.broken or args.fails_test_event:
        validation = args.dest / "src" / "eventbus" / "validation.py"
        text = validation.read_text()
        marker = "        for index, event, raw in items:\n            try:\n"
        assert marker in text, "validation.py changed: update release_source.py --broken"
        check = BROKEN if args.broken else FAILS_TEST_EVENT
        validation.write_text(text.replace(marker, marker + check, 1))
    print(new)


if __name__ == "__main__":
    main()
