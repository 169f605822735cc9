#!/usr/bin/env bash
# Builds the image that stands in for AWS's provided.al2023 base image, which cannot be
# pulled here: what the bootstrap needs to run (the C library it links, libgcc_s) and what
# SAM's image build step needs (a shell, mv, chmod), all from Debian's packages.
set -euo pipefail
tag="${1:-voice-dispatch/provided-al2023-standin}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download libc6 libgcc-s1 busybox-static >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get download libc6 libgcc-s1 busybox-static >/dev/null
}
mkdir rootfs
for deb in ./*.deb; do dpkg-deb -x "$deb" rootfs; done
for tool in sh mv chmod cp rm mkdir cat ls env; do ln -sf busybox "rootfs/bin/$tool"; done
mkdir -p rootfs/tmp rootfs/var/task rootfs/var/runtime rootfs/opt
chmod 1777 rootfs/tmp
cat > Dockerfile <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin:/usr/bin LANG=C.UTF-8
DOCKERFILE
docker build --quiet --tag "$tag" . >/dev/null
echo "built $tag"
