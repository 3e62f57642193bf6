"""Build the collection's docs site (make docs-site; part of make test): antsibull-docs lints the
collection's docs (plugins, roles, extra docs), renders them to reStructuredText, and Sphinx
builds the HTML into build/docs/html, with warnings as errors. Then every module, plugin, role
and the playbooks' page must be there.

The build has no network: the few docs.ansible.com pages the collection's docs link to
(ansible.builtin's plugins, the common return values) come from a local intersphinx inventory
written here, so those links resolve to docs.ansible.com."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "docs"
TOOLS = ROOT / "build" / "docs-venv" / "bin"
CONTROLLER = ROOT / ".venv" / "bin"
COLLECTION = "eventplatform.eventbus"
PAGES = ROOT / "build" / "docs" / "html" / "collections" / "eventplatform" / "eventbus"
# The docs.ansible.com pages linked by label, beyond ansible.builtin's plugins.
ANSIBLE_LABELS = {
    "common_return_values": ("reference_appendices/common_return_values.html", "Return Values"),
    "ansible_configuration_settings": (
        "reference_appendices/config.html",
        "Ansible Configuration Settings",
    ),
}


def env() -> dict[str, str]:
    # .collections/ansible_collections/eventplatform/eventbus is the tracked link to this tree
    return {
        **os.environ,
        "PATH": f"{TOOLS}:{CONTROLLER}:{os.environ['PATH']}",
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
    }


def run(*argv: str) -> str:
    print("+", " ".join(argv), flush=True)
    proc = subprocess.run(argv, env=env(), cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"docs site: {argv[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def builtin_entries() -> list[str]:
    """ansible.builtin's plugins as docs.ansible.com labels them."""
    entries = []
    for kind in ("module", "lookup", "filter", "test"):
        listed = json.loads(
            run(str(CONTROLLER / "ansible-doc"), "-t", kind, "--list", "--json", "ansible.builtin")
        )
        for fqcn in sorted(listed):
            name = fqcn.rsplit(".", 1)[1]
            label = f"ansible_collections.{fqcn}_{kind}"
            entries.append(
                f"{label} std:label -1 collections/ansible/builtin/{name}_{kind}.html {fqcn} {kind}"
            )
    return entries


def write_inventory(path: Path) -> None:
    lines = builtin_entries() + [
        f"{label} std:label -1 {page} {title}" for label, (page, title) in ANSIBLE_LABELS.items()
    ]
    header = b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
    header += b"# The remainder of this file is compressed using zlib.\n"
    path.write_bytes(header + zlib.compress(("\n".join(lines) + "\n").encode()))


def expected_pages() -> list[str]:
    pages = [f"{p.stem}_module.html" for p in (ROOT / "plugins" / "modules").glob("[a-z]*.py")]
    pages += [f"{p.stem}_filter.html" for p in (ROOT / "plugins" / "filter").glob("*.yml")]
    pages += [f"{p.stem}_lookup.html" for p in (ROOT / "plugins" / "lookup").glob("[a-z]*.py")]
    pages += [f"{p.name}_role.html" for p in (ROOT / "roles").iterdir() if (p / "meta").is_dir()]
    pages += ["docsite/playbooks.html", "index.html"]
    return sorted(pages)


def main() -> None:
    run(str(TOOLS / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", ".")
    shutil.rmtree(BUILD, ignore_errors=True)
    rst = BUILD / "rst"
    rst.mkdir(parents=True)
    rst.chmod(0o755)  # antsibull-docs wants the directory writable by itself only
    for name in ("conf.py", "antsibull-docs.cfg"):
        shutil.copy(ROOT / "docs" / "site" / name, BUILD / name)
    write_inventory(BUILD / "ansible_devel.inv")
    run(str(TOOLS / "antsibull-docs"), "--config-file", str(BUILD / "antsibull-docs.cfg"),
        "collection", "--use-current", "--cleanup", "everything", "--fail-on-error",
        "--dest-dir", str(rst), COLLECTION)  # fmt: skip
    shutil.copy(ROOT / "docs" / "site" / "index.rst", rst / "index.rst")
    run(str(TOOLS / "sphinx-build"), "-b", "html", "-c", str(BUILD), "-W", "--keep-going", "-q",
        str(rst), str(BUILD / "html"))  # fmt: skip
    missing = [page for page in expected_pages() if not (PAGES / page).is_file()]
    if missing:
        sys.exit(f"docs site: pages missing from {PAGES}: {', '.join(missing)}")
    print(f"docs site: {len(expected_pages())} pages in {PAGES.relative_to(ROOT)} (index.html)")


if __name__ == "__main__":
    main()
