#!/usr/bin/env bash
# Installs what is needed, builds tinyc and runs the hello example bundle with it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/setup.sh
npm run build --silent

# shellcheck source=scripts/fixtures.sh
source scripts/fixtures.sh
rootfs=examples/hello/rootfs
if [[ ! -x "$rootfs/bin/busybox" ]]; then
  # Built aside and renamed, so an interrupted build is not mistaken for a finished one.
  rm -rf "$rootfs.tmp"
  make_busybox_rootfs "$rootfs.tmp"
  rm -rf "$rootfs"
  mv -T "$rootfs.tmp" "$rootfs"
  echo "example: built $rootfs"
fi

# Run by root this runs the example as root; run by a user, rootless.
exec dist/tinyc run ./examples/hello
