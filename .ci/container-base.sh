#!/usr/bin/env bash
# The base image for `make container-check`, made from Debian's own packages:
# CI cannot pull public images. A minimal bookworm root with python3 and its
# venv module (Python 3.11, as the project needs), imported as a local image.
# Usage: container-base.sh [IMAGE]  (made once; kept while it exists)
set -euo pipefail
image=${1:-localhost/mailroom-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists "$image"; then
  exit 0
fi
root=$(mktemp -d /tmp/mailroom-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" >/dev/null
chroot "$root" apt-get clean
# What a slim image leaves out: the package lists, documentation, translations.
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
tar -C "$root" --numeric-owner -c . | podman import --quiet - "$image" >/dev/null
echo "made $image ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
