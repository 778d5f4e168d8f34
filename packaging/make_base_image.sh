#!/usr/bin/env bash
# Make a local base image for offline MAP builds: Debian 12 (bookworm) minbase with Python 3.11 and venv,
# via debootstrap + docker import. Used when no image registry is reachable (python:3.11-slim-bookworm
# otherwise). Cached: does nothing if the image already exists (FORCE=1 rebuilds).
#   usage: packaging/make_base_image.sh [IMAGE]     (default corpusct/base:bookworm-py311)
set -euo pipefail
IMAGE="${1:-corpusct/base:bookworm-py311}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKER="${DOCKER:-docker}"

if [ -z "${FORCE:-}" ] && $DOCKER image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE exists (FORCE=1 to rebuild)"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is required (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

root="$(mktemp -d /tmp/corpusct-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm (minbase) into $root"
# python3 (3.11) + venv/ensurepip; ca-certificates for TLS; libgomp1 for torch/numba OpenMP; tini as PID 1.
debootstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates,libgomp1,tini \
  bookworm "$root" "$MIRROR" >/dev/null
# Slim the root file system: no apt lists, caches, docs, man pages or locales beyond C.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
       "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/tmp/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"

tar -C "$root" -c . | $DOCKER import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "made $IMAGE ($($DOCKER image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
