#!/usr/bin/env bash
# The machine's prerequisites, installed once: the Debian packages every project command
# needs (the test servers, the lab, the Kafka bundle, the benchmarks' load tool) and a
# Python 3.11 for the controller virtualenv. Idempotent: when everything is there it only
# checks (a second or two). Both `.ci/run` and `make lab-restart` start with it.
#
#   sudo scripts/prerequisites.sh          install what is missing
#   scripts/prerequisites.sh --check       list what is missing; exit 1 if anything is
set -euo pipefail

apt_packages=(
  etcd-server      # pool store (conftool layout, v2 API)
  haproxy          # load balancer with the runtime API
  openjdk-17-jre-headless maven   # Apache Kafka from Maven Central
  shellcheck       # ansible-test sanity's shell checks
  tcpdump nftables # tcp_idle_check: packet capture and kernel counters
  systemd-container debootstrap iproute2 openssh-client  # the lab: systemd-nspawn hosts
  apt-cacher-ng    # the lab hosts' apt proxy (the lab starts its own, on the lab bridge)
  git make python3-venv ca-certificates
  wrk              # benchmarks: HTTP load
  apache2-utils    # benchmarks: ab, the runbook's 2016 single-event test
  prometheus prometheus-alertmanager  # promtool checks the metrics and alert rules
)
# Debian starts these when it installs them; the tests and the lab run their own.
packaged_services=(etcd haproxy prometheus prometheus-alertmanager prometheus-node-exporter
  apt-cacher-ng)

fail() { echo "prerequisites: $*" >&2; exit 1; }

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [[ "${1:-}" == "--check" ]]; then
  ((${#missing[@]} == 0)) || { echo "missing: ${missing[*]}"; exit 1; }
  command -v python3.11 >/dev/null || { echo "missing: python3.11"; exit 1; }
  exit 0
fi

if ((${#missing[@]})); then
  ((EUID == 0)) || fail "missing Debian packages (${missing[*]}); run as root: sudo $0"
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get: install them by hand"
  echo "prerequisites: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed: check the machine's package sources"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed (see above)"
fi
if ((EUID == 0)); then
  for unit in "${packaged_services[@]}"; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
command -v python3.11 >/dev/null \
  || fail "Python 3.11 is required for the controller virtualenv (python3.11 on PATH)"
exit 0
