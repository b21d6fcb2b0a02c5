#!/usr/bin/env bash
# Prints the path of a cached busybox OCI layout (see make-busybox-image.sh), building it first when
# this machine has none yet. The cache lives under CACHE_ROOT (default: target/test-fixtures in the
# repository) in a directory named by a hash of make-busybox-image.sh and of the busybox binary, so
# editing the script or upgrading busybox-static makes a new one. Concurrent callers (parallel test
# processes) are serialised with flock; only the first builds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${1:-$here/../../target/test-fixtures}
busybox=${BUSYBOX_BIN:-/bin/busybox}
mkdir -p "$cache_root"
cache_root=$(cd "$cache_root" && pwd)

key=$(cat "$here/make-busybox-image.sh" "$busybox" | sha256sum | cut -c1-16)
out=$cache_root/busybox-$key
if ! [ -f "$out/index.json" ]; then
  exec 9>"$cache_root/busybox.lock"
  flock 9
  if ! [ -f "$out/index.json" ]; then
    "$here/make-busybox-image.sh" "$out" >&2
  fi
  exec 9>&-
fi
printf '%s\n' "$out"
