"""Build the service and its dependencies into one wheelhouse archive on the controller, once
per build and target: ``build_wheelhouse.py PROJECT CONSTRAINTS ARCHIVE [TARGET]`` prints
``built`` or ``present``.

TARGET (JSON: ``{"python": "3.11", "machine": "x86_64", "libc": ["glibc", "2.36"]}``, what the
eventbus role reads on the managed hosts) is the platform the hosts install on: the service's
own wheel (pure Python) is built here, and every dependency is downloaded as a wheel for the
hosts' Python, architecture and glibc (``pip download --only-binary :all: --platform ...``),
whatever the controller runs (macOS, ARM, another Python). A dependency published without
such a wheel is built here when it is pure Python. One that compiles is built on a host of the
target platform: the run stages its source and the wheels of its build requirements (for the
target) in the directory ``ARCHIVE.host-build`` and exits 4, printing what to build as JSON;
the eventbus role builds them there (tasks/host_build.yml) and runs this again with
``--host-built DIR``, whose wheels then count as the target's. Without TARGET the
controller's own platform is used (``pip wheel``).

Two runs on one controller (an operator per datacenter) that need the same build take turns
on a lock beside the archive: the second finds it made and does not build it again. Built
from a copy of the project (setuptools writes its build and egg-info beside the sources, and
the collection's own directory may be read-only), in a directory of its own beside the
archive, which is renamed into place whole (pack_directory.py)."""

from __future__ import annotations

import argparse
import email.message
import fcntl
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_directory import pack  # beside this script, not an installed module

PIP = [sys.executable, "-m", "pip"]
# Legacy names of manylinux tags (PEP 600): the glibc minor version they stand for.
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
# How pip names a requirement with no distribution for the target: alone, or (when a
# requirement and a constraint both pin it) in a resolution conflict's explanation.
NOT_FOUND = re.compile(
    r"No matching distribution found for ([A-Za-z0-9_.\-]+)"
    r"|no matching distributions available for your environment:\s+([A-Za-z0-9_.\-]+)"
)


class WheelhouseError(Exception):
    pass


class HostBuildError(Exception):
    """Compiled dependencies without a wheel for the target, staged for a host to build."""

    def __init__(self, staging: Path, requirements: list[str]) -> None:
        super().__init__(f"to build on a host of the platform: {', '.join(requirements)}")
        self.staging = staging
        self.requirements = requirements


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
    # linux_<machine>: what a host of the platform builds itself (PyPI takes no such wheel)
    for tag in [*platform_tags(str(target["machine"]), str(version)), f"linux_{target['machine']}"]:
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


def source_of(requirement: str, work: Path) -> Path:
    sdists = work / "sdists"
    shutil.rmtree(sdists, ignore_errors=True)
    subprocess.run([*PIP, "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(sdists), requirement], check=True)  # fmt: skip
    (sdist,) = sdists.iterdir()
    return sdist


def built_here(sdist: Path, work: Path) -> Path | None:
    """The wheel of ``sdist`` built on the controller when it is pure Python (then right for
    any host); None when it compiles, or does not build here."""
    built = work / "built"
    shutil.rmtree(built, ignore_errors=True)
    proc = subprocess.run([*PIP, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(built),
                           str(sdist)], capture_output=True, text=True, check=False)  # fmt: skip
    wheels = list(built.glob("*.whl")) if proc.returncode == 0 else []
    if len(wheels) == 1 and wheels[0].name.endswith("-none-any.whl"):
        return wheels[0]
    return None


def placeholder(sdist: Path, directory: Path) -> Path:
    """A wheel holding only the metadata of ``sdist`` (its name, version and requirements,
    prepared without building it): pip resolves the rest of the wheelhouse through it while
    the real wheel is built on a host. It never leaves the build directory."""
    report = directory / "report.json"
    subprocess.run([*PIP, "install", "--quiet", "--dry-run", "--no-deps", "--ignore-installed",
                    "--report", str(report), str(sdist)], check=True)  # fmt: skip
    meta = json.loads(report.read_text())["install"][0]["metadata"]
    report.unlink()
    message = email.message.Message()
    message["Metadata-Version"] = "2.1"
    message["Name"] = meta["name"]
    message["Version"] = meta["version"]
    for requirement in meta.get("requires_dist", []):
        message["Requires-Dist"] = requirement
    if meta.get("requires_python"):
        message["Requires-Python"] = meta["requires_python"]
    stem = f"{re.sub(r'[-_.]+', '_', meta['name'])}-{meta['version']}"
    wheel = directory / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{stem}.dist-info/METADATA", message.as_string())
        archive.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        archive.writestr(f"{stem}.dist-info/RECORD", "")
    return wheel


def build_requirements(sdist: Path) -> list[str]:
    """What building ``sdist`` needs (its pyproject's build-system, PEP 518's default)."""
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/pyproject.toml"):
                source = tar.extractfile(member)
                if source is not None:
                    system = tomllib.loads(source.read().decode()).get("build-system", {})
                    return list(system.get("requires", ["setuptools>=40.8.0", "wheel"]))
    return ["setuptools>=40.8.0", "wheel"]


def stage_for_host(target: dict, sources: list[Path], staging: Path) -> None:
    """Sources and their build requirements, as wheels for the target, where a host of the
    target platform builds them with no package index (tasks/host_build.yml)."""
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "sdists").mkdir(parents=True)
    requires: list[str] = []
    for sdist in sources:
        shutil.copy(sdist, staging / "sdists" / sdist.name)
        requires += [r for r in build_requirements(sdist) if r not in requires]
    proc = subprocess.run(
        [*PIP, "download", "--quiet", *target_options(target), "--dest",
         str(staging / "build-deps"), *requires],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise WheelhouseError(
            f"the build requirements {', '.join(requires)} have no wheels for the hosts' "
            f"platform:\n{proc.stderr}"
        )


def download_for(
    target: dict, own: Path, constraints: Path, wheels: Path, work: Path,
    host_built: Path | None = None, staging: Path | None = None,
) -> None:  # fmt: skip
    options = target_options(target)
    links = [wheels, *([host_built] if host_built else [])]
    placeholders = work / "placeholders"
    placeholders.mkdir(exist_ok=True)
    seen: set[str] = set()
    for_host: list[Path] = []
    while True:
        proc = subprocess.run(  # not --quiet: pip explains a conflict only at its normal level
            [*PIP, "download", *options, "--dest", str(wheels),
             *[arg for link in [*links, placeholders] for arg in ("--find-links", str(link))],
             "--constraint", str(constraints), str(own)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            break
        found = NOT_FOUND.search(proc.stdout + proc.stderr)
        missing = found and (found.group(1) or found.group(2))
        if not missing or missing in seen:
            raise WheelhouseError(f"pip download failed:\n{proc.stderr or proc.stdout}")
        seen.add(missing)
        requirement = pinned(constraints, re.split(r"[<>=!~\[;]", missing)[0])
        sdist = source_of(requirement, work)
        wheel = built_here(sdist, work)
        if wheel is not None:
            shutil.move(str(wheel), wheels / wheel.name)
            continue
        kept = work / "for-host"
        kept.mkdir(exist_ok=True)
        for_host.append(Path(shutil.move(str(sdist), kept / sdist.name)))
        placeholder(for_host[-1], placeholders)
    for stand_in in placeholders.glob("*.whl"):
        (wheels / stand_in.name).unlink(missing_ok=True)
    if for_host:
        if staging is None:
            raise WheelhouseError(
                f"{', '.join(p.name for p in for_host)}: compiled, no wheel for the hosts' platform"
            )
        stage_for_host(target, for_host, staging)
        raise HostBuildError(staging, [p.name for p in for_host])


def build(
    project: Path, constraints: Path, archive: Path, target: dict | None = None,
    host_built: Path | None = None,
) -> str:  # fmt: skip
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
                staging = archive.with_name(archive.name + ".host-build")
                download_for(target, wheels / own.name, constraints, wheels, work,
                             host_built, staging)  # fmt: skip
                shutil.rmtree(staging, ignore_errors=True)
            pack(wheels, "*.whl", archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return "built"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("constraints", type=Path)
    parser.add_argument("archive", type=Path)
    parser.add_argument("target", nargs="?", type=json.loads, help="the hosts' platform (JSON)")
    parser.add_argument("--host-built", type=Path, help="wheels a host of the target built")
    args = parser.parse_args(argv)
    try:
        print(build(args.project, args.constraints, args.archive, args.target, args.host_built))
    except HostBuildError as needed:
        print(json.dumps({"host_build": needed.requirements, "staging": str(needed.staging)}))
        return 4
    except subprocess.CalledProcessError as err:
        sys.exit(f"pip failed (exit {err.returncode}): see its output above")
    except (WheelhouseError, ValueError, KeyError) as err:
        sys.exit(f"wheelhouse: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
