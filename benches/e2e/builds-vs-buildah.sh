#!/usr/bin/env bash
# Whole builds, kiln next to buildah in one run: the Flask example cold (its python base from
# scripts/make-python-image.sh, pip reaching PyPI with the host's CA bundle) and a busybox image
# with a 5,000-file, ~50 MB COPY followed by RUN steps. Prints wall time and peak RSS per build.
# Needs root, skopeo, buildah, network to PyPI, and a release build of kiln.
set -euo pipefail
cd "$(dirname "$0")/../.."
kiln=$(realpath "${KILN:-target/release/kiln}")
# buildah names a pulled layout after its path, which must be a valid (lower-case) reference.
work=$(mktemp -d /tmp/kiln-bench-XXXXXX | tr 'A-Z' 'a-z')
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
ca=/etc/ssl/certs/ca-certificates.crt
measure() { /usr/bin/time -f "$1: %e s, peak RSS %M KB" "${@:2}" >/dev/null; }
bah=(buildah --root "$work/bh/root" --runroot "$work/bh/run" --storage-driver vfs)

python=$(scripts/make-python-image.sh)
busybox=$(scripts/registry/busybox-layout.sh)
skopeo copy -q "oci:$python:python:3.11-slim" "oci:$work/store:python:3.11-slim"
skopeo copy -q "oci:$busybox:busybox:latest" "oci:$work/store:busybox:latest"

# The Flask example, cold: empty kiln cache dir, fresh buildah storage.
cp -r testdata/flask "$work/flask"
skopeo copy -q "oci:$python:python:3.11-slim" "oci:$work/python:python:3.11-slim"
"${bah[@]}" pull -q "oci:$work/python:python:3.11-slim" >/dev/null
"${bah[@]}" tag "$("${bah[@]}" images -q | head -n1)" python:3.11-slim
"${bah[@]}" pull -q "oci:$busybox:busybox:latest" >/dev/null
"${bah[@]}" tag "$("${bah[@]}" images -q --filter reference=busybox | head -n1)" busybox:latest 2>/dev/null \
  || "${bah[@]}" tag "$("${bah[@]}" images -q | head -n1)" busybox:latest
measure "kiln, Flask example, cold" "$kiln" build -q --store "$work/store" --cache-dir "$work/cache-flask" \
  -v "$ca:$ca:ro" -t flask:kiln "$work/flask"
measure "buildah, Flask example, cold" "${bah[@]}" build --isolation chroot --layers=false --pull=never -q \
  -v "$ca:$ca:ro" -t flask:buildah "$work/flask"

# busybox + 5,000 files (~50 MB) + RUN steps.
benches/e2e/make-many-context.sh "$work/many/files"
cat > "$work/many/Dockerfile" <<'DF'
FROM busybox:latest
COPY files/ /data/
RUN find /data -type f | wc -l > /count
RUN echo changed > /data/d00/f000.bin && rm -rf /data/d49
DF
measure "kiln, 5,000-file COPY + RUN, cold" "$kiln" build -q --store "$work/store" --cache-dir "$work/cache-many" "$work/many"
measure "buildah, 5,000-file COPY + RUN, cold" "${bah[@]}" build --isolation chroot --layers=false --pull=never -q \
  -t many:buildah "$work/many"
