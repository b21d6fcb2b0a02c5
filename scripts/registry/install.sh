#!/usr/bin/env bash
# Installs, only when missing, what kiln's registry tests run on a Debian machine:
#   docker-registry  the CNCF distribution registry (2.8), binary /usr/bin/docker-registry
#   apache2-utils    htpasswd, for the registry's Basic-auth password file
#   openssl          the test CA, server certificates and token-signing keys
#   busybox-static   the one binary inside the offline test base image
#   skopeo           pushes test images and reads back what kiln pushes
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' \
  || need+=(busybox-static)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing registry test dependencies: ${need[*]}" >&2
$SUDO apt-get update -qq
# docker-registry's package starts a system service on install where an init system runs; the tests
# never use that instance, they start their own on free loopback ports.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
