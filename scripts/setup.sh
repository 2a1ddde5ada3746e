#!/usr/bin/env bash
# Installs what building and testing tinyc need on Debian. Safe to run again: it only acts on
# what is missing, so a second run takes about a second.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEST_USER=tinyc-test
RANGE=65536

if [[ $EUID -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

PACKAGES=(gcc libc6-dev make uidmap busybox-static debootstrap fuse-overlayfs runc crun
  util-linux procps iproute2 hyperfine tmux
  attr zstd docker-registry skopeo apache2-utils curl bubblewrap passt)
# A bare Debian has no Node; Debian's own is enough to fetch bun from npm.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)
# Real clients of the runtime, for tests/integration/clients.test.ts: rootless podman (with
# conmon, containers-common's configuration and slirp4netns), containerd and dockerd. The tests
# start private instances of the daemons; none of the system-wide ones is needed.
PACKAGES+=(podman conmon golang-github-containers-common slirp4netns containerd docker.io)

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  # No stdin on CI: apt must never stop to ask.
  export DEBIAN_FRONTEND=noninteractive
  # The daemons' packages start system-wide services on install. A policy-rc.d that says no is
  # what invoke-rc.d and deb-systemd-invoke ask; one is put in place only for this install.
  if [[ " ${missing[*]} " =~ " "(containerd|docker\.io|docker-registry)" " && ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x "$REPO/node_modules/.bin/bun" ]]; then
  echo "setup: installing npm packages"
  if [[ -f "$REPO/package-lock.json" ]]; then
    (cd "$REPO" && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$REPO" && npm install --no-audit --no-fund --loglevel=error)
  fi
fi

# The rootless integration tests run as this user when the suite itself runs as root.
[[ $EUID -eq 0 ]] || exit 0

# Debian gives every user /dev/fuse and /dev/net/tun (mode 0666): rootless fuse-overlayfs and
# slirp4netns need them. Some machine images ship them 0600; the tests need Debian's modes.
for dev in /dev/fuse /dev/net/tun; do
  if [[ -c $dev && "$(stat -c %a "$dev")" != 666 ]]; then
    echo "setup: chmod 0666 $dev (Debian's default)"
    chmod 0666 "$dev"
  fi
done

if ! getent passwd "$TEST_USER" >/dev/null; then
  echo "setup: creating user $TEST_USER"
  useradd --create-home --shell /usr/sbin/nologin "$TEST_USER"
fi

# useradd may already have given ranges (SUB_UID_COUNT in login.defs); add one only where none.
# The new range starts past the end of every range in either file, so it overlaps none.
next_free() {
  awk -F: -v min=100000 '
    NF >= 3 { end = $2 + $3; if (end > min) min = end }
    END { print min }' /etc/subuid /etc/subgid
}
touch /etc/subuid /etc/subgid
start="$(next_free)"
for f in /etc/subuid /etc/subgid; do
  if ! grep -q "^$TEST_USER:" "$f"; then
    echo "$TEST_USER:$start:$RANGE" >>"$f"
    echo "setup: added $TEST_USER:$start:$RANGE to $f"
  fi
done
