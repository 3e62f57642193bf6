"""Running a command for the lab, and saying what happens."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from eventbus_lab.inventory import LabError


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` twice a second until it holds; LabError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def run(
    *argv: str, check: bool = True, quiet: bool = False, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)  # never the shared stdin (machines.ssh)
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    if not quiet and result.returncode != 0:
        progress(f"note: {' '.join(argv)}: {result.stderr.strip()}")
    return result
