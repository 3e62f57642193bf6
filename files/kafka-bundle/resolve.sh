#!/usr/bin/env bash
# Resolve the pinned Apache Kafka jar bundle from Maven Central into a cached folder and
# verify it against the checksums recorded in SHA256SUMS.
#
#   files/kafka-bundle/resolve.sh [DEST]       prints DEST (default: $EVENTBUS_OPS_CACHE/kafka-<version>)
#                                              and packs DEST.tar.gz beside it (what the kafka role pushes)
#   files/kafka-bundle/resolve.sh --record     re-resolves and rewrites SHA256SUMS (after a version bump)
#
# DEST/libs holds the jars, DEST/agent the Prometheus JMX exporter's java agent (checksums in
# SHA256SUMS.agent), DEST/config/log4j2.properties the logging setup; run a broker with
#   java -Dlog4j2.configurationFile=DEST/config/log4j2.properties -cp 'DEST/libs/*' kafka.Kafka server.properties
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
record=0
if [[ "${1:-}" == "--record" ]]; then record=1; shift; fi
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${EVENTBUS_OPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eventbus-ops}
dest=${1:-$cache/kafka-$version}

verify() {
  (cd "$1/libs" && sha256sum --quiet --strict -c "$here/SHA256SUMS") >&2 \
    && (cd "$1/agent" && sha256sum --quiet --strict -c "$here/SHA256SUMS.agent") >&2
}

pack() {
  if [[ ! -f "$1.tar.gz" ]]; then
    local partial
    partial=$(mktemp "$1.tar.gz.XXXXXX")  # concurrent runs each write their own
    tar -C "$1" -czf "$partial" libs agent config VERSION
    chmod 0644 "$partial"
    mv -f "$partial" "$1.tar.gz"
  fi
}

if [[ $record -eq 0 && -f "$dest/.complete" ]] && verify "$dest" 2>/dev/null; then
  pack "$dest"
  echo "$dest"; exit 0
fi

command -v mvn >/dev/null || { echo "resolve.sh: mvn is missing: apt-get install maven (or sudo make prerequisites)" >&2; exit 1; }
echo "resolving Apache Kafka $version into $dest ..." >&2
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "${dest%/}.tmp.XXXXXX")
work=$(mktemp -d)
trap 'rm -rf "$tmp" "$work"' EXIT
# Maven writes target/ beside the pom: build from a copy, so that this directory (inside an
# installed collection, perhaps read-only) is never written to.
cp "$here/pom.xml" "$work/pom.xml"
mvn -q -B -f "$work/pom.xml" package -Dbundle.libs="$tmp/libs" -Dbundle.agent="$tmp/agent" >&2 \
  || { echo "resolve.sh: mvn could not resolve Apache Kafka $version (see above): check the network or Maven's mirror settings" >&2; exit 1; }
mkdir -p "$tmp/config"
cp "$here/log4j2.properties" "$tmp/config/"
if [[ $record -eq 1 ]]; then
  (cd "$tmp/libs" && sha256sum -- *.jar) > "$here/SHA256SUMS"
  (cd "$tmp/agent" && sha256sum -- *.jar) > "$here/SHA256SUMS.agent"
  echo "recorded $(wc -l < "$here/SHA256SUMS") checksums in $here/SHA256SUMS" >&2
fi
# exactly the recorded jars, each with its recorded checksum
diff <(sed 's/^[0-9a-f]*  //' "$here/SHA256SUMS" | sort) <(find "$tmp/libs" -maxdepth 1 -type f -printf '%f\n' | sort) >&2 \
  || { echo "jar set differs from SHA256SUMS; run $0 --record after a deliberate change" >&2; exit 1; }
verify "$tmp"
echo "$version" > "$tmp/VERSION"
touch "$tmp/.complete"
rm -rf "$dest" "$dest.tar.gz"; mv "$tmp" "$dest"
pack "$dest"
echo "$dest"
