"""Build the service and its dependencies into one wheelhouse archive on the controller, once
per build and target: ``build_wheelhouse.py PROJECT CONSTRAINTS ARCHIVE [TARGET]`` prints
``built`` or ``present``.

TARGET (JSON: ``{"python": "3.11", "machine": "x86_64", "libc": ["glibc", "2.36"]}``, what the
eventbus role reads on the managed hosts) is the platform the hosts install on: the service's
own wheel (pure Python) is built here, and every dependency is downloaded as a wheel for the
hosts' Python, architecture and glibc (``pip download --only-binary :all: --platform ...``),
whatever the controller runs (macOS, ARM, another Python). A dependency published without
such a wheel is built here when it is pure Python; one that compiles is refused, naming it.
Without TARGET the controller's own platform is used (``pip wheel``).

Two runs on one controller (an operator per datacenter) that need the same build take turns
on a lock beside the archive: the second finds it made and does not build it again. Built
from a copy of the project (setuptools writes its build and egg-info beside the sources, and
the collection's own directory may be read-only), in a directory of its own beside the
archive, which is renamed into place whole (pack_directory.py)."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_directory import pack  # beside this script, not an installed module

PIP = [sys.executable, "-m", "pip"]
# Legacy names of manylinux tags (PEP 600): the glibc minor version they stand for.
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
NOT_FOUND = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+)")


class WheelhouseError(Exception):
    pass


def platform_tags(machine: str, glibc: str) -> list[str]:
    """The wheel platform tags a glibc ``glibc`` Linux on ``machine`` installs, best first."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    if major != 2:
        raise WheelhouseError(f"glibc {glibc}: only glibc 2.x is known")
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 4, -1)]
    tags += [f"{name}_{machine}" for m, name in LEGACY_MANYLINUX.items() if minor >= m]
    return tags


def target_options(target: dict) -> list[str]:
    python = str(target["python"])
    if not re.fullmatch(r"3\.\d+", python):
        raise WheelhouseError(f"target Python {python!r} is not 3.N")
    libc, version = target["libc"]
    if libc != "glibc":
        raise WheelhouseError(f"target C library {libc or 'unknown'!r}: the hosts need glibc")
    abi = "cp" + python.replace(".", "")
    options = ["--only-binary", ":all:", "--python-version", python, "--implementation", "cp"]
    for tag in (abi, "abi3", "none"):
        options += ["--abi", tag]
    for tag in platform_tags(str(target["machine"]), str(version)):
        options += ["--platform", tag]
    return options


def pinned(constraints: Path, name: str) -> str:
    wanted = re.sub(r"[-_.]+", "-", name).lower()
    for line in constraints.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if (
            "==" in requirement
            and re.sub(r"[-_.]+", "-", requirement.split("==")[0]).lower() == wanted
        ):
            return requirement
    raise WheelhouseError(f"{name} is not pinned in {constraints}")


def pure_wheel(requirement: str, wheels: Path, work: Path) -> None:
    """A dependency without a wheel for the target: build it here from its source, which is
    only right when the wheel is pure Python."""
    sdists = work / "sdists"
    subprocess.run([*PIP, "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(sdists), requirement], check=True)  # fmt: skip
    built = work / "built"
    subprocess.run([*PIP, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(built),
                    *map(str, sdists.iterdir())], check=True)  # fmt: skip
    for wheel in built.glob("*.whl"):
        if not wheel.name.endswith("-none-any.whl"):
            raise WheelhouseError(
                f"{requirement} has no wheel for the hosts' platform and compiles ({wheel.name}): "
                "build it on a host of that platform and put it in the wheelhouse, or pin a "
                "version that publishes one"
            )
        shutil.move(str(wheel), wheels / wheel.name)
    shutil.rmtree(sdists)
    shutil.rmtree(built)


def download_for(target: dict, own: Path, constraints: Path, wheels: Path, work: Path) -> None:
    options = target_options(target)
    built_here: set[str] = set()
    while True:
        proc = subprocess.run(
            [*PIP, "download", "--quiet", *options, "--dest", str(wheels), "--find-links",
             str(wheels), "--constraint", str(constraints), str(own)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            return
        missing = NOT_FOUND.search(proc.stderr)
        if not missing or missing.group(1) in built_here:
            raise WheelhouseError(f"pip download failed:\n{proc.stdout}{proc.stderr}")
        name = re.split(r"[<>=!~\[;]", missing.group(1))[0]
        built_here.add(missing.group(1))
        pure_wheel(pinned(constraints, name), wheels, work)


def build(project: Path, constraints: Path, archive: Path, target: dict | None = None) -> str:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive.with_name(archive.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if archive.exists():
            return "present"
        work = Path(tempfile.mkdtemp(prefix=archive.name + ".build.", dir=archive.parent))
        try:
            shutil.copytree(project, work / "src")
            wheels = work / "wheels"
            if target is None:
                subprocess.run(
                    [*PIP, "wheel", "--quiet", "--wheel-dir", str(wheels),
                     "--constraint", str(constraints), str(work / "src")],
                    check=True,
                )  # fmt: skip
            else:
                subprocess.run(
                    [*PIP, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "own"),
                     str(work / "src")],
                    check=True,
                )  # fmt: skip
                (own,) = (work / "own").glob("*.whl")
                if not own.name.endswith("-none-any.whl"):
                    raise WheelhouseError(f"the service's own wheel is not pure Python: {own.name}")
                wheels.mkdir()
                shutil.copy(own, wheels / own.name)
                download_for(target, wheels / own.name, constraints, wheels, work)
            pack(wheels, "*.whl", archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return "built"


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: build_wheelhouse.py PROJECT CONSTRAINTS ARCHIVE [TARGET_JSON]")
    try:
        wanted = json.loads(sys.argv[4]) if len(sys.argv) == 5 else None
        print(build(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), wanted))
    except subprocess.CalledProcessError as err:
        sys.exit(f"pip failed (exit {err.returncode}): see its output above")
    except (WheelhouseError, ValueError, KeyError) as err:
        sys.exit(f"wheelhouse: {err}")
