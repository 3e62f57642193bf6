"""scripts/release_source.py, as the lab's canary case uses it: a release whose version is the
source's with a post suffix, and with --broken one that refuses the load generator's valid
events while it still accepts the deploy gate's test event (run against the copied source)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import make_event, service_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("broken", [False, True])
def test_a_release_copy_validates_as_it_should(tmp_path: Path, broken: bool) -> None:
    dest = tmp_path / "release"
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "release_source.py"), str(dest), "--post", "7"]
        + (["--broken"] if broken else []),
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().endswith(".post7")
    config = service_config(tmp_path, "127.0.0.1:9", 1)
    loadgen = make_event(test="loadgen 1")
    gate = make_event(test="ok")
    probe = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from eventbus.config import load\n"
        "from eventbus.validation import InvalidEventError, Validator\n"
        "validator = Validator(load(Path(sys.argv[1])))\n"
        "verdicts = []\n"
        "for event in json.loads(sys.argv[2]):\n"
        "    try:\n"
        "        validator.validate(0, event, json.dumps(event).encode())\n"
        "        verdicts.append('valid')\n"
        "    except InvalidEventError as err:\n"
        "        verdicts.append(str(err))\n"
        "print(json.dumps(verdicts))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, str(config), json.dumps([loadgen, gate])],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(dest / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert ran.returncode == 0, ran.stderr
    verdicts = json.loads(ran.stdout)
    if broken:
        assert verdicts == ["this release refuses valid events (broken on purpose)", "valid"]
    else:
        assert verdicts == ["valid", "valid"]
