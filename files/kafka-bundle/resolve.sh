#!/usr/bin/env bash
# Resolve a pinned Apache Kafka jar bundle from Maven Central into a cached folder and
# verify it against the checksums recorded for that version in SHA256SUMS-<version>.
#
#   files/kafka-bundle/resolve.sh [--version V] [DEST]
#       prints DEST (default: $EVENTBUS_OPS_CACHE/kafka-<version>) and packs DEST.tar.gz beside
#       it (what the kafka role pushes); V defaults to the pom's kafka.version. Only versions
#       with recorded checksums resolve (the kafka role's kafka_version; an upgrade's target).
#   files/kafka-bundle/resolve.sh --record [--version V]
#       re-resolves and writes SHA256SUMS-<version> (after adding or bumping a version)
#
# DEST/libs holds the jars, DEST/agent the Prometheus JMX exporter's java agent (checksums in
# SHA256SUMS.agent), DEST/config/log4j2.properties the logging setup; run a broker with
#   java -Dlog4j2.configurationFile=DEST/config/log4j2.properties -cp 'DEST/libs/*' kafka.Kafka server.properties
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
record=0
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --record) record=1; shift ;;
    --version) version=${2:?--version needs a value}; shift 2 ;;
    *) break ;;
  esac
done
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
  || { echo "resolve.sh: $version is not a Kafka release number (like 4.2.2)" >&2; exit 2; }
sums="$here/SHA256SUMS-$version"
if [[ $record -eq 0 && ! -f "$sums" ]]; then
  recorded=$(find "$here" -maxdepth 1 -name 'SHA256SUMS-*' -printf '%f\n' | sed 's/SHA256SUMS-//' | sort | tr '\n' ' ')
  echo "resolve.sh: no checksums recorded for Apache Kafka $version (recorded: ${recorded:-none});" \
    "choose one of those, or record it after review: $0 --record --version $version" >&2
  exit 2
fi
cache=${EVENTBUS_OPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eventbus-ops}
dest=${1:-$cache/kafka-$version}

verify() {
  (cd "$1/libs" && sha256sum --quiet --strict -c "$sums") >&2 \
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
mvn -q -B -f "$work/pom.xml" package -Dkafka.version="$version" -Dbundle.libs="$tmp/libs" -Dbundle.agent="$tmp/agent" >&2 \
  || { echo "resolve.sh: mvn could not resolve Apache Kafka $version (see above): check the network or Maven's mirror settings" >&2; exit 1; }
mkdir -p "$tmp/config"
cp "$here/log4j2.properties" "$tmp/config/"
if [[ $record -eq 1 ]]; then
  (cd "$tmp/libs" && sha256sum -- *.jar) > "$sums"
  (cd "$tmp/agent" && sha256sum -- *.jar) > "$here/SHA256SUMS.agent"
  echo "recorded $(wc -l < "$sums") checksums in $sums" >&2
fi
# exactly the recorded jars, each with its recorded checksum
diff <(sed 's/^[0-9a-f]*  //' "$sums" | sort) <(find "$tmp/libs" -maxdepth 1 -type f -printf '%f\n' | sort) >&2 \
  || { echo "jar set differs from $sums; run $0 --record --version $version after a deliberate change" >&2; exit 1; }
verify "$tmp"
echo "$version" > "$tmp/VERSION"
touch "$tmp/.complete"
rm -rf "$dest" "$dest.tar.gz"; mv "$tmp" "$dest"
pack "$dest"
echo "$dest"
