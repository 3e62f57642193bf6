#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection as it ships: the files of its built tarball
# (galaxy.yml's build_ignore applied), as Galaxy and Automation Hub check it. The repository's
# own Python (tests, the lab, benchmarks, scripts) is ruff's, not in what users install.
# ansible-test wants the collection inside an ansible_collections/<namespace>/<name> tree,
# made under build/. Runs locally (no containers) on the controller's Python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
python=$venv/bin/python
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
dest=$root/build/ansible_collections/eventplatform/eventbus

"$root/scripts/get-pip-standin.sh" "$python"

rm -rf "$dest" "$root/build/sanity-tarball"
mkdir -p "$dest" "$root/build/sanity-tarball"
"$venv/bin/ansible-galaxy" collection build --force --output-path "$root/build/sanity-tarball" "$root" >/dev/null
tar -xzf "$root"/build/sanity-tarball/eventplatform-eventbus-*.tar.gz -C "$dest"
# the sources' metadata (galaxy.yml, which ansible-test reads the version from), not the build's
rm -f "$dest/MANIFEST.json" "$dest/FILES.json"
cp "$root/galaxy.yml" "$dest/"
cd "$dest"
git init -q . && git add -A   # ansible-test lists a collection's files through git when it can
PATH=$venv/bin:$PATH ansible-test sanity --local --requirements --python "$pyver" --color no "$@"
