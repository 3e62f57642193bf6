"""Where CI's time goes: each phase timed as it runs, and one table at the end.

    ci_timing.py clear                                 forget what earlier runs recorded
    ci_timing.py run NAME [--molecule] -- COMMAND...   run COMMAND, record NAME's seconds
    ci_timing.py report                                print the table (phase, seconds)

``run`` passes COMMAND's output through and exits with its exit code; it appends one line per
phase to build/ci/phases.tsv (NAME, start, seconds, exit code). With ``--molecule`` it also
records each molecule action it sees in the output ("under_load ➜ converge: Executing") as a
phase of its own (``molecule/converge``). Phases may run side by side: each has its own line.

``report`` prints every phase recorded since the file was last cleared, then what the runs
left behind: the slowest pytest tests (build/ci/pytest.xml, JUnit XML), each playbook of the
lab's proof (build/lab/proof.json) and each lab case (build/lab/cases.json), and the
costliest Ansible tasks (build/ci/ansible-tasks.tsv, written by
tests/harness/callback_plugins/task_times.py). Standard library only: it runs before the
virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "ci"
PHASES = OUT / "phases.tsv"
PYTEST_XML = OUT / "pytest.xml"
TASK_TIMES = OUT / "ansible-tasks.tsv"  # tests/harness/callback_plugins/task_times.py
LAB = REPO / "build" / "lab"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MOLECULE_ACTION = re.compile(r"➜ ([a-z_]+): (Executing|Executed)")


def cpu_times() -> tuple[int, int]:
    """The machine's CPU time so far (all cores, every process), total and busy, in ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), sum(fields) - fields[3] - fields[4]  # less idle and iowait


def busy_since(mark: tuple[int, int]) -> float:
    total, busy = cpu_times()
    return 100.0 * (busy - mark[1]) / (total - mark[0]) if total > mark[0] else 0.0


def record(name: str, started: float, cpu: tuple[int, int], code: int) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    seconds = time.time() - started
    with PHASES.open("a") as phases:
        phases.write(f"{name}\t{started:.0f}\t{seconds:.1f}\t{code}\t{busy_since(cpu):.0f}\n")


def run(name: str, command: list[str], molecule: bool) -> int:
    started, cpu = time.time(), cpu_times()
    if not molecule:
        code = subprocess.call(command)
        record(name, started, cpu, code)
        return code
    action, action_started, action_cpu = "", 0.0, cpu
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            found = MOLECULE_ACTION.search(ANSI.sub("", raw.decode(errors="replace")))
            if found and found.group(2) == "Executing":
                action, action_started, action_cpu = found.group(1), time.time(), cpu_times()
            elif found and action == found.group(1):
                record(f"{name}/{action}", action_started, action_cpu, 0)
                action = ""
    if action:  # the action that failed
        record(f"{name}/{action}", action_started, action_cpu, proc.returncode)
    record(name, started, cpu, proc.returncode)
    return proc.returncode


def phases() -> list[tuple[str, float, float, int, float]]:
    """(name, start, seconds, exit code, the machine's CPU busy % meanwhile), in start order."""
    if not PHASES.exists():
        return []
    rows = []
    for line in PHASES.read_text().splitlines():
        name, started, seconds, code, busy = line.split("\t")
        rows.append((name, float(started), float(seconds), int(code), float(busy)))
    return sorted(rows, key=lambda row: row[1])


def slowest_tests(count: int = 15) -> list[tuple[float, str]]:
    if not PYTEST_XML.exists():
        return []
    try:
        root = ET.parse(PYTEST_XML).getroot()
    except ET.ParseError:
        return []
    cases = [
        (float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}")
        for case in root.iter("testcase")
    ]
    return sorted(cases, reverse=True)[:count]


def costliest_tasks(count: int = 15) -> list[tuple[float, int, str]]:
    """(seconds, runs, "playbook: task") summed over every playbook run that recorded."""
    if not TASK_TIMES.exists():
        return []
    seconds: dict[str, float] = {}
    runs: dict[str, int] = {}
    for line in TASK_TIMES.read_text().splitlines():
        playbook, task, count_runs, spent = line.split("\t")
        key = f"{playbook}: {task}"
        seconds[key] = seconds.get(key, 0.0) + float(spent)
        runs[key] = runs.get(key, 0) + int(count_runs)
    ranked = sorted(((spent, runs[key], key) for key, spent in seconds.items()), reverse=True)
    return ranked[:count]


def lab_figures() -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    try:
        proof = json.loads((LAB / "proof.json").read_text())
        rows += [
            (f"proof {run['playbook'].split()[0]}", run["seconds"]) for run in proof["playbooks"]
        ]
    except (OSError, ValueError, KeyError):
        pass
    try:
        cases = json.loads((LAB / "cases.json").read_text())
        rows += [
            (f"case {name}", seen["seconds"]) for name, seen in cases.items() if "seconds" in seen
        ]
    except (OSError, ValueError, AttributeError):
        pass
    return rows


def report() -> int:
    rows = phases()
    print("\n== CI timing (build/ci/phases.tsv): phase, seconds, start, machine CPU busy")
    if rows:
        first = min(row[1] for row in rows)
        last = max(started + seconds for _n, started, seconds, _c, _b in rows)
        for name, started, seconds, code, busy in rows:
            indent = "    " if "/" in name else "  "
            status = "" if code == 0 else f"  (exit {code})"
            print(
                f"{indent}{name:<38} {seconds:7.1f}s  at +{started - first:<5.0f}"
                f" cpu {busy:3.0f}%{status}"
            )
        print(f"  {'wall clock, first start to last end':<38} {last - first:7.1f}s")
    figures = lab_figures()
    if figures:
        print("  the lab's proof and cases:")
        for name, seconds in figures:
            print(f"    {name:<50} {seconds:8.1f}")
    tasks = costliest_tasks()
    if tasks:
        print("  costliest Ansible tasks (summed over every playbook run; runs):")
        for seconds, count, name in tasks:
            print(f"    {seconds:8.1f}  {count:5d}  {name[:110]}")
    tests = slowest_tests()
    if tests:
        print("  slowest tests:")
        for seconds, name in tests:
            print(f"    {seconds:8.1f}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    timed = sub.add_parser("run", help="run a command as a timed phase")
    timed.add_argument("name")
    timed.add_argument("--molecule", action="store_true", help="also time molecule's actions")
    sub.add_parser("clear", help="forget what earlier runs recorded")
    sub.add_parser("report", help="print the table")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if args.action == "report":
        return report()
    if args.action == "clear":
        PHASES.unlink(missing_ok=True)
        TASK_TIMES.unlink(missing_ok=True)
        return 0
    if not command:
        parser.error("run: give the command after --")
    return run(args.name, command, args.molecule)


if __name__ == "__main__":
    sys.exit(main())
