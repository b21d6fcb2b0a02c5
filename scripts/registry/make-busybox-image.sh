#!/usr/bin/env bash
# Writes an OCI image layout to OUT_DIR holding one image, named `busybox:latest`, made offline from
# Debian's busybox-static binary: no registry and no network are involved, so tests that need a base
# image never depend on Docker Hub.
#
# The image has one gzip layer with
#   /bin/busybox and a symlink /bin/APPLET -> busybox for every applet (so /bin/sh works),
#   /etc/passwd and /etc/group with root (0), nobody (65534) and app (1000:1000),
#   /root (0700), /home/app (owned by 1000:1000), /tmp (1777),
# and a config with PATH set and `sh` as the command. Every timestamp is the epoch, owners are numeric and
# entries sorted, so the same busybox binary always gives the same digests.
#
# OUT_DIR is replaced atomically (built beside it, then renamed); callers that share OUT_DIR between
# processes should still serialise calls (scripts/registry/busybox-layout.sh does, with flock).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
busybox=${BUSYBOX_BIN:-/bin/busybox}
if ! [ -x "$busybox" ]; then
  echo "$0: $busybox is missing; run scripts/registry/install.sh (package busybox-static)" >&2
  exit 1
fi
if ! applets=$("$busybox" --list 2>/dev/null) || [ -z "$applets" ]; then
  echo "$0: $busybox does not list its applets" >&2
  exit 1
fi

case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  amd64 | x86_64) arch=amd64 variant= ;;
  arm64 | aarch64) arch=arm64 variant=v8 ;;
  armhf) arch=arm variant=v7 ;;
  armel) arch=arm variant=v5 ;;
  i386 | i686) arch=386 variant= ;;
  ppc64el | ppc64le) arch=ppc64le variant= ;;
  s390x) arch=s390x variant= ;;
  riscv64) arch=riscv64 variant= ;;
  *) arch=$(dpkg --print-architecture) variant= ;;
esac

parent=$(dirname "$out")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.busybox-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

root=$work/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/home/app" "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $applets; do
  case "$applet" in busybox | */* | '') continue ;; esac
  ln -s busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
app:x:1000:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0755 "$root/bin" "$root/etc" "$root/home" "$root/home/app"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

layer_tar=$work/layer.tar
# Owners: everything root except app's home. GNU tar applies --owner/--group to all entries, so app's
# home is appended in a second pass with its own owner.
(
  cd "$root"
  tar --create --file="$layer_tar" --format=gnu --sort=name --numeric-owner \
    --owner=0 --group=0 --mtime=@0 --no-recursion \
    bin $(cd "$root" && find bin -mindepth 1 | LC_ALL=C sort) \
    etc etc/group etc/passwd home root tmp
  tar --append --file="$layer_tar" --format=gnu --numeric-owner \
    --owner=1000 --group=1000 --mtime=@0 --no-recursion home/app
)
diff_id=$(sha256sum "$layer_tar" | cut -d' ' -f1)
gzip -n -9 -c "$layer_tar" >"$work/layer.tar.gz"
layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")

layout=$work/layout
mkdir -p "$layout/blobs/sha256"
mv "$work/layer.tar.gz" "$layout/blobs/sha256/$layer_digest"

variant_json=
[ -n "$variant" ] && variant_json=",\"variant\":\"$variant\""
printf '%s' "{\"architecture\":\"$arch\"$variant_json,\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"sh\"]},\"created\":\"1970-01-01T00:00:00Z\",\"history\":[{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"scripts/registry/make-busybox-image.sh (Debian busybox-static)\"}],\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]}}" >"$work/config.json"
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$layout/blobs/sha256/$config_digest"

printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer_digest\",\"size\":$layer_size}]}" >"$work/manifest.json"
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$layout/blobs/sha256/$manifest_digest"

printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest_digest\",\"size\":$manifest_size,\"annotations\":{\"org.opencontainers.image.ref.name\":\"busybox:latest\"}}]}" >"$layout/index.json"

if command -v skopeo >/dev/null 2>&1; then
  if ! skopeo inspect --raw "oci:$layout:busybox:latest" >/dev/null; then
    echo "$0: skopeo cannot read the layout it just wrote" >&2
    exit 1
  fi
fi

rm -rf "$out.old"
[ -e "$out" ] && mv "$out" "$out.old"
mv "$layout" "$out"
rm -rf "$out.old"
