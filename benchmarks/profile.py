"""Where a worker's time goes: py-spy samples the process while the load runs, and the
collapsed stacks are summed by the frame that was running (self time) and by the part of the
service each stack passes through (inclusive time)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
# The parts of a request, by the first frame of the stack that matches (inner parts first).
PARTS = [
    ("producer hand-over (librdkafka produce)", ("producer.py:_hand_over", "produce (")),
    ("producer, rest", ("producer.py",)),
    ("validation (jsonschema-rs)", ("validation.py", "schemas.py")),
    ("JSON (orjson loads/dumps)", ("intake.py:serialised", "intake.py:handle (intake.py:1")),
    ("intake, rest", ("intake.py",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("access log and logging", ("logging/", "access_log.py")),
    ("HTTP (aiohttp)", ("aiohttp",)),
    ("event loop (uvloop) and idle", ("uvloop", "run_forever", "_run_once")),
]


def record(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` and its child processes for ``seconds`` (collapsed stacks)."""
    return subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--gil",  # only the thread holding the GIL: Python work, not waits
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stacks(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _sep, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stack] += int(count)
    return counts


def summary(path: Path, top: int = 12) -> str:
    counts = stacks(path)
    total = sum(counts.values()) or 1
    self_time: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    for stack, count in counts.items():
        frames = stack.split(";")
        self_time[frames[-1]] += count
        for name, markers in PARTS:
            if any(marker in frame for frame in frames for marker in markers):
                parts[name] += count
                break
        else:
            parts["other"] += count
    lines = [f"{path.name}: {total} samples", "  by part of the service (inclusive):"]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in parts.most_common()]
    lines.append("  by running frame (self):")
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in self_time.most_common(top)]
    return "\n".join(lines)
