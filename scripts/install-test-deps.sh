#!/usr/bin/env bash
# Installs what kiln's tests need on a Debian machine, only when missing. Safe to run
# repeatedly; does nothing when everything is present.
#   skopeo, umoci        independent readers of the images kiln writes
#   bzip2, xz-utils      archives the layer tests compare against
#   util-linux           setpriv, for the context walk's permission tests
#   docker-registry      the CNCF distribution registry (2.8) the registry tests start on loopback
#   apache2-utils        htpasswd, for the registry's Basic-auth password file
#   openssl              the test CA, server certificates and token-signing keys
#   busybox-static       the one binary inside the offline test base image
#   buildah              the peer in the differential RUN tests
#   debootstrap          the Flask example's python base image (scripts/make-python-image.sh)
#   podman, runc, curl   run the pushed Flask image and ask it over HTTP
#   uidmap               newuidmap/newgidmap, for rootless builds with subordinate ids
# and the user `kiln-rootless`, with subordinate ids, that the rootless tests build as.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
have skopeo || need+=(skopeo)
have umoci || need+=(umoci)
have bzip2 || need+=(bzip2)
have xz || need+=(xz-utils)
have setpriv || need+=(util-linux)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
have htpasswd || need+=(apache2-utils)
have openssl || need+=(openssl)
installed busybox-static || need+=(busybox-static)
have buildah || need+=(buildah)
have debootstrap || need+=(debootstrap)
have podman || need+=(podman)
have runc || need+=(runc)
have curl || need+=(curl)
have newuidmap || need+=(uidmap)

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

# The rootless tests' user: useradd gives an ordinary user a subordinate range where
# login.defs says so; otherwise it gets one here.
ensure_rootless_user() {
  local user=kiln-rootless
  id "$user" >/dev/null 2>&1 ||
    $SUDO useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  grep -q "^$user:" /etc/subuid 2>/dev/null ||
    $SUDO usermod --add-subuids 3000000-3065535 "$user"
  grep -q "^$user:" /etc/subgid 2>/dev/null ||
    $SUDO usermod --add-subgids 3000000-3065535 "$user"
}

if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}" >&2
  $SUDO apt-get update -qq
  # docker-registry's package starts a system service where an init system runs; the tests
  # never use that instance, they start their own on free loopback ports.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
ensure_rootless_user
