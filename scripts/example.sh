#!/usr/bin/env bash
# Builds testdata/example offline into an OCI layout and shows the result through independent
# readers: skopeo prints the image config, umoci unpacks the root filesystem.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo build --quiet --release -p builder-cli
kiln=target/release/kiln

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== kiln build testdata/example"
SOURCE_DATE_EPOCH=1700000000 "$kiln" build \
  --store "$out/store" \
  -t example:1.0 \
  --output "type=oci,dest=$out/layout" \
  --output "type=docker,dest=$out/example-docker.tar" \
  testdata/example

echo
echo "== skopeo inspect --config oci:$out/layout:example:1.0"
skopeo inspect --config "oci:$out/layout:example:1.0"

echo
echo "== umoci unpack: the image's files"
umoci unpack --image "$out/layout:example:1.0" "$out/bundle" >/dev/null
(cd "$out/bundle/rootfs" && find . -mindepth 1 -printf '%M %U:%G %p\n' | sort -k3)

echo
echo "== skopeo inspect docker-archive:$out/example-docker.tar"
skopeo inspect "docker-archive:$out/example-docker.tar" | head -n 12
