#!/usr/bin/env bash
# ansible-test bootstraps pip in the virtualenvs of some sanity tests by downloading a
# get-pip script from a host that this machine cannot reach. When
# ~/.ansible/test/cache/get_pip_<version>.py exists it uses that file instead; this writes
# one that bootstraps pip from the interpreter's own ensurepip and then installs what was
# asked through the normal package index, with the system CA bundle (which pip in those
# virtualenvs does not pick up by itself).
set -euo pipefail
python=$1
version=$("$python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
import sys
print(get_venv_packages(NativePythonConfig(path=sys.executable, version=f"{sys.version_info[0]}.{sys.version_info[1]}"))["pip"])
PY
)
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
cat > "$cache/get_pip_${version//./_}.py" <<'PY'
"""Stand-in for get-pip.py written by eventbus-ops scripts/get-pip-standin.sh."""
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cert = "/etc/ssl/certs/ca-certificates.crt"
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--cert", cert, *args]))
PY
echo "pip bootstrap stand-in: $cache/get_pip_${version//./_}.py" >&2
