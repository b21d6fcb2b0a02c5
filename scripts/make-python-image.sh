#!/usr/bin/env bash
# Prints the path of an OCI image layout holding one image, named `python:3.11-slim`: a Debian
# bookworm minbase (debootstrap) with python3, pip, curl and adduser, standing in for Docker Hub's
# python:3.11-slim (bookworm's python is 3.11) so the Flask example's tests need no Docker Hub, only
# Debian's package mirror (the one in /etc/apt/sources.list.d/debian.sources).
#
#   scripts/make-python-image.sh            the per-machine cached layout (built when missing)
#   scripts/make-python-image.sh OUT_DIR    build a fresh layout into OUT_DIR
#
# The cache lives outside the checkout, in ${XDG_CACHE_HOME:-~/.cache}/kiln-test-fixtures (or
# $KILN_FIXTURE_CACHE), in a directory named by a hash of this script, the mirror and the
# architecture, so every checkout and CI job on a machine shares one copy and editing this script
# makes a new one. Concurrent callers are serialised with flock; only the first builds (a few
# minutes: debootstrap downloads about 100 packages).
#
# The image is what the official one offers a Dockerfile:
#   python3 (3.11) with `python` -> python3 in /usr/local/bin, pip (python3-pip: `pip`, `pip3`),
#   curl and ca-certificates (for HEALTHCHECK ... curl), adduser and useradd;
#   Env PATH, LANG=C.UTF-8, PYTHON_VERSION, and PIP_BREAK_SYSTEM_PACKAGES=1; Cmd ["python3"].
# PIP_BREAK_SYSTEM_PACKAGES: Debian marks its python "externally managed" (PEP 668), so
# `pip install` outside a virtualenv refuses to run. The official image builds its own python under
# /usr/local with no such marker; setting the variable in the image makes `RUN pip install ...` in
# an unchanged Dockerfile behave as it does there.
#
# Debian's pip uses the system CA bundle (/etc/ssl/certs/ca-certificates.crt), so a build behind a
# TLS-intercepting proxy only needs the host's bundle mounted over it (kiln build --volume).
#
# Needs root (debootstrap), debootstrap, gzip and sha256sum; skopeo, when present, checks the result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script=$here/$(basename "$0")
name=python:3.11-slim
suite=bookworm
packages=python3,python3-pip,curl,ca-certificates,adduser

# The first Debian mirror this machine's apt uses for the suite.
mirror() {
  local sources=/etc/apt/sources.list.d/debian.sources uri=
  if [ -f "$sources" ]; then
    uri=$(awk -v suite="$suite" '
      /^$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
      END { if (u != "" && s) print u }' "$sources" | head -n1)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list)
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

arch_of() {
  case "$1" in
    amd64) echo amd64 ;;
    arm64) echo "arm64 v8" ;;
    armhf) echo "arm v7" ;;
    armel) echo "arm v5" ;;
    i386) echo 386 ;;
    ppc64el) echo ppc64le ;;
    *) echo "$1" ;;
  esac
}

# build OUT_DIR: debootstrap into a work directory beside OUT_DIR, pack it as a one-layer OCI
# layout, then move the layout into place.
build() {
  local out=$1 parent work root deb_arch oci_arch variant mirror_uri
  if [ "$(id -u)" -ne 0 ]; then
    echo "$0: debootstrap needs root" >&2
    exit 1
  fi
  command -v debootstrap >/dev/null 2>&1 || {
    echo "$0: debootstrap is missing; run scripts/install-test-deps.sh" >&2
    exit 1
  }
  deb_arch=$(dpkg --print-architecture)
  read -r oci_arch variant <<<"$(arch_of "$deb_arch")"
  mirror_uri=$(mirror)
  parent=$(dirname "$out")
  mkdir -p "$parent"
  work=$(mktemp -d "$parent/.python-build.XXXXXX")
  # debootstrap mounts /proc and /sys in the target and may leave them on failure.
  trap 'umount -R "'"$work"'/rootfs/proc" "'"$work"'/rootfs/sys" 2>/dev/null || true; rm -rf "'"$work"'"' EXIT
  root=$work/rootfs

  echo "debootstrap $suite ($deb_arch) from $mirror_uri with $packages" >&2
  debootstrap --variant=minbase --arch="$deb_arch" --include="$packages" \
    "$suite" "$root" "$mirror_uri" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    echo "$0: debootstrap failed (log above)" >&2
    exit 1
  }
  umount -R "$root/proc" "$root/sys" 2>/dev/null || true

  ln -s /usr/bin/python3 "$root/usr/local/bin/python"
  local python_version
  python_version=$(chroot "$root" /usr/bin/python3 -c 'import platform; print(platform.python_version())')

  # What a container image does not carry: package downloads and indexes, logs, the host's
  # device nodes and mount points' contents (the runtime provides /dev, /proc, /sys).
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/var/cache/ldconfig/aux-cache \
    "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/* "$root"/var/tmp/* \
    "$root"/debootstrap
  : >"$root/etc/hostname"
  rm -f "$root/etc/resolv.conf" "$root/etc/hosts"
  mkdir -p "$root/run/lock"
  chmod 1777 "$root/tmp" "$root/var/tmp" "$root/run/lock"

  local layer_tar=$work/layer.tar diff_id layer_digest layer_size
  tar --create --file="$layer_tar" --directory="$root" --format=pax --sort=name \
    --numeric-owner --xattrs --xattrs-include='security.capability' --pax-option=delete=atime,delete=ctime \
    .
  diff_id=$(sha256sum "$layer_tar" | cut -d' ' -f1)
  gzip -n -6 -c "$layer_tar" >"$work/layer.tar.gz"
  rm -f "$layer_tar"
  layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$work/layer.tar.gz")

  local layout=$work/layout created
  created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  mkdir -p "$layout/blobs/sha256"
  mv "$work/layer.tar.gz" "$layout/blobs/sha256/$layer_digest"

  local variant_json=
  [ -n "${variant:-}" ] && variant_json=",\"variant\":\"$variant\""
  local env_json="\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"LANG=C.UTF-8\",\"PYTHON_VERSION=$python_version\",\"PIP_BREAK_SYSTEM_PACKAGES=1\""
  printf '%s' "{\"architecture\":\"$oci_arch\"$variant_json,\"config\":{\"Env\":[$env_json],\"Cmd\":[\"python3\"]},\"created\":\"$created\",\"history\":[{\"created\":\"$created\",\"created_by\":\"scripts/make-python-image.sh (debootstrap --variant=minbase $suite, $packages)\"}],\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]}}" >"$work/config.json"
  local config_digest config_size
  config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$layout/blobs/sha256/$config_digest"

  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer_digest\",\"size\":$layer_size}]}" >"$work/manifest.json"
  local manifest_digest manifest_size
  manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$layout/blobs/sha256/$manifest_digest"

  printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest_digest\",\"size\":$manifest_size,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$name\"}}]}" >"$layout/index.json"

  if command -v skopeo >/dev/null 2>&1; then
    skopeo inspect --raw "oci:$layout:$name" >/dev/null || {
      echo "$0: skopeo cannot read the layout it just wrote" >&2
      exit 1
    }
  fi

  rm -rf "$out.old"
  [ -e "$out" ] && mv "$out" "$out.old"
  mv "$layout" "$out"
  rm -rf "$out.old"
  echo "python layout: $out ($((layer_size / 1024 / 1024)) MiB layer, python $python_version)" >&2
}

if [ $# -gt 1 ]; then
  echo "usage: $0 [OUT_DIR]" >&2
  exit 2
fi
if [ $# -eq 1 ]; then
  build "$1"
  (cd "$1" && pwd)
  exit 0
fi

cache_root=${KILN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-test-fixtures}
mkdir -p "$cache_root"
cache_root=$(cd "$cache_root" && pwd)
key=$({ cat "$script"; mirror; dpkg --print-architecture; } | sha256sum | cut -c1-16)
out=$cache_root/python-$key
if ! [ -f "$out/index.json" ]; then
  exec 9>"$cache_root/python.lock"
  flock 9
  if ! [ -f "$out/index.json" ]; then
    build "$out"
  fi
  exec 9>&-
fi
printf '%s\n' "$out"
