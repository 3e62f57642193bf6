#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection. ansible-test wants the collection inside an
# ansible_collections/<namespace>/<name> tree, so the tracked files are copied into one
# under build/. Runs locally (no containers) on the controller's Python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
python=$venv/bin/python
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
dest=$root/build/ansible_collections/eventplatform/eventbus

"$root/scripts/get-pip-standin.sh" "$python"

rm -rf "$dest"
mkdir -p "$dest"
# (not the .collections link back to the checkout: the copy is the collection itself)
(cd "$root" && git ls-files -z --cached --others --exclude-standard | grep -zv '^\.collections/' \
  | tar --null -cf - -T -) \
  | tar -xf - -C "$dest"
cd "$dest"
git init -q . && git add -A   # ansible-test lists a collection's files through git when it can
PATH=$venv/bin:$PATH ansible-test sanity --local --requirements --python "$pyver" --color no "$@"
