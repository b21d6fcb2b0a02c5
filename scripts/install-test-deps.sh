#!/usr/bin/env bash
# Installs what kiln's tests need on a Debian machine, only when missing:
# skopeo and umoci (independent readers of the images kiln writes), the archive tools the
# layer tests compare against, and for the Flask example: debootstrap (its python base image,
# scripts/make-python-image.sh), podman with runc (runs the pushed image) and curl (asks it).
# Safe to run repeatedly.
set -euo pipefail

"$(dirname "$0")/registry/install.sh"

need=()
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v bzip2 >/dev/null 2>&1 || need+=(bzip2)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing test dependencies: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
