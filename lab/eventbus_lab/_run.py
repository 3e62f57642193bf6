"""Running a command for the lab, and saying what happens."""

from __future__ import annotations

import subprocess
import time

from eventbus_lab.inventory import LabError


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    *argv: str, check: bool = True, quiet: bool = False, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    if not quiet and result.returncode != 0:
        progress(f"note: {' '.join(argv)}: {result.stderr.strip()}")
    return result
