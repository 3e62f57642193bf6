"""A dependency that compiles and has no wheel for the hosts' platform is built on a host of
that platform: the eventbus role's wheelhouse entry point, on this machine as the host (Debian
12, a local connection), for a project whose one dependency is a C extension published only as
source, and which itself needs a pure-Python dependency from the index. The controller stages
the source and its build requirements; the host compiles it with no package index; the
wheelhouse holds the host's wheel and what the extension needs, and installs offline."""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.harness.archives import extract_all
from tests.harness.collection import ansible_env

BIN = Path(sys.executable).parent
EXTENSION = textwrap.dedent("""\
    #include <Python.h>
    static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
    static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ebcext", "", -1, methods};
    PyMODINIT_FUNC PyInit_ebcext(void) { return PyModule_Create(&module); }
""")


def write_sdist(index: Path) -> None:
    """ebcext 1.0: a C extension, as source only, needing idna."""
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: ebcext\nVersion: 1.0\nRequires-Dist: idna\n",
        "pyproject.toml": textwrap.dedent("""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "ebcext"
            version = "1.0"
            dependencies = ["idna"]
        """),
        "setup.py": "from setuptools import Extension, setup\n"
        'setup(ext_modules=[Extension("ebcext", ["ebcext.c"])], py_modules=[])\n',
        "ebcext.c": EXTENSION,
    }
    index.mkdir(parents=True, exist_ok=True)
    with tarfile.open(index / "ebcext-1.0.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"ebcext-1.0/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def write_project(project: Path) -> None:
    (project / "src" / "ebsvc").mkdir(parents=True)
    (project / "src" / "ebsvc" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "ebsvc"
        version = "0.1"
        dependencies = ["ebcext==1.0"]
    """)
    )
    (project / "constraints.txt").write_text("ebcext==1.0\nidna==3.20\n")


def converge(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    links = os.environ.get("PIP_FIND_LINKS", "")  # the machine's own, kept
    play = [{
        "name": "the wheelhouse alone",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {
            "name": "eventplatform.eventbus.eventbus", "tasks_from": "wheelhouse"}}],
    }]  # fmt: skip
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", f"eventbus_source_dir={tmp_path / 'project'}",
         "-e", f"eventbus_controller_cache_dir={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=900, check=False,
        env={**ansible_env(), "PIP_FIND_LINKS": f"{links} {tmp_path / 'index'}".strip()},
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp_path = tmp_path_factory.mktemp("host-build")
    write_sdist(tmp_path / "index")
    write_project(tmp_path / "project")
    return tmp_path, converge(tmp_path)


def test_what_compiles_is_built_on_the_host_and_packed(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp_path, proc = built
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Build the wheels of ebcext-1.0.tar.gz" in proc.stdout
    (archive,) = (tmp_path / "cache" / "wheelhouse").glob("*-cp311-*.tar")
    with tarfile.open(archive) as tar:
        names = sorted(Path(name).name for name in tar.getnames())
    assert names == [
        f"ebcext-1.0-cp311-cp311-linux_{platform.machine()}.whl",  # compiled on the host
        "ebsvc-0.1-py3-none-any.whl",
        "idna-3.20-py3-none-any.whl",  # the extension's own requirement, from the index
    ], names
    leftovers = sorted(p.name for p in archive.parent.iterdir())
    assert leftovers == [archive.name, archive.name + ".lock"], leftovers  # no staging left


def test_the_wheelhouse_installs_with_no_index_and_the_extension_runs(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp_path, _proc = built
    (archive,) = (tmp_path / "cache" / "wheelhouse").glob("*-cp311-*.tar")
    wheels = tmp_path / "unpacked"
    wheels.mkdir()
    with tarfile.open(archive) as tar:
        extract_all(tar, wheels)
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--no-index", "--find-links",
         *[str(p.parent) for p in list(wheels.rglob("*.whl"))[:1]], "ebsvc"],
        check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    answer = subprocess.run(
        [str(venv / "bin/python"), "-c", "import ebcext; print(ebcext.answer())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert answer.stdout.strip() == "42"


def test_a_second_run_builds_nothing(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp_path, _proc = built
    again = converge(tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout, again.stdout[-3000:]
