#!/usr/bin/env bash
# RUN over a large base, kiln next to buildah in one run: a base of busybox plus 100,000 small
# files, then `RUN touch /x` built twice by each tool. Prints wall time and peak RSS per build.
# Needs root, skopeo, buildah and a release build of kiln (cargo build --release -p builder-cli).
set -euo pipefail
cd "$(dirname "$0")/../.."
kiln=${KILN:-target/release/kiln}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

busybox=$(scripts/registry/busybox-layout.sh)
skopeo copy -q "oci:$busybox:busybox:latest" "oci:$work/store:busybox:latest"
mkdir -p "$work/base/files" "$work/step"
python3 - "$work/base/files" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(1000):
        with open(f"{root}/d{d:03}/f{f:04}.txt", "w") as fh:
            fh.write(f"{d}-{f}\n")
PY
printf 'FROM busybox:latest\nCOPY files/ /data/\n' > "$work/base/Dockerfile"
measure() { /usr/bin/time -f "$1: %e s, peak RSS %M KB" "${@:2}" >/dev/null; }

measure "kiln: base with 100k files (COPY)" "$kiln" build -q --store "$work/store" --cache-dir "$work/cache" -t big:1 "$work/base"
skopeo copy -q "oci:$work/store:big:1" "oci:$work/big-oci:big:1"
printf 'FROM big:1\nRUN touch /x\n' > "$work/step/Dockerfile"
printf 'FROM oci:%s:big:1\nRUN touch /x\n' "$work/big-oci" > "$work/step/Dockerfile.buildah"
for i in 1 2; do
  measure "kiln --isolation namespace, RUN touch, build $i" "$kiln" build -q --store "$work/store" --cache-dir "$work/cache" --isolation namespace "$work/step"
done
measure "kiln --isolation chroot, RUN touch" "$kiln" build -q --store "$work/store" --cache-dir "$work/cache" --isolation chroot "$work/step"
for i in 1 2; do
  measure "buildah (chroot, vfs), RUN touch, build $i" buildah --root "$work/bh/root" --runroot "$work/bh/run" --storage-driver vfs \
    build --isolation chroot --layers=false -q -f "$work/step/Dockerfile.buildah" -t "b:$i" "$work/step"
done
