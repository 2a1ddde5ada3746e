#!/usr/bin/env bash
# Builds the test root filesystems into $TINYC_FIXTURES (default .cache/fixtures):
#   busybox/    busybox-static with its applet links, passwd/group, and /bin/report
#   debian.tar  debootstrap minbase bookworm, kept as a tarball; debian/ is it unpacked
# Each is made in a temporary folder and renamed into place, so an interrupted run leaves
# nothing half-made and the next run starts that piece again. Sourcing this file only defines
# make_busybox_rootfs (scripts/example.sh uses it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIRROR=http://deb.debian.org/debian
SUITE=bookworm

# make_busybox_rootfs DIR: a minimal root filesystem around the static busybox.
make_busybox_rootfs() {
  local dir="$1" busybox applet
  busybox="$(command -v busybox)"
  # A dynamic busybox would need a libc inside the rootfs; only busybox-static is usable.
  if ldd "$busybox" >/dev/null 2>&1; then
    echo "fixtures: $busybox is not static: install busybox-static" >&2
    return 1
  fi
  mkdir -p "$dir"/{bin,etc,proc,sys,dev,tmp,root,home/user}
  chmod 1777 "$dir/tmp"
  chmod 0700 "$dir/root"
  cp "$busybox" "$dir/bin/busybox"
  for applet in $("$busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$dir/bin/$applet"
  done
  # Runtimes and tools that look up /usr/bin/env or /sbin/... find the same applets there.
  ln -sfn bin "$dir/sbin"
  mkdir -p "$dir/usr"
  ln -sfn ../bin "$dir/usr/bin"
  ln -sfn ../bin "$dir/usr/sbin"
  cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$dir/etc/group" <<'EOF'
root:x:0:
wheel:x:10:user
user:x:1000:
nogroup:x:65534:
EOF
  chown 1000:1000 "$dir/home/user" 2>/dev/null || true
}

# Temporary folders of this run, removed however it ends.
TMPS=()
cleanup() { ((${#TMPS[@]})) && rm -rf --one-file-system "${TMPS[@]}"; return 0; }

build_busybox() {
  local out="$FIX/busybox" tmp
  [[ -d "$out" ]] && return 0
  tmp="$(mktemp -d "$FIX/.busybox.XXXXXX")"
  TMPS+=("$tmp")
  make_busybox_rootfs "$tmp/rootfs"
  chmod 0755 "$tmp/rootfs"
  mv -T "$tmp/rootfs" "$out"
  echo "fixtures: built $out"
}

# Rebuilt whenever report.c is newer than the binary, so helper edits reach the tests.
build_report() {
  local src="$REPO/tests/helper/report.c" out="$FIX/busybox/bin/report"
  [[ -x "$out" && "$out" -nt "$src" ]] && return 0
  gcc -static -O2 -Wall -Werror -o "$out.tmp" "$src"
  mv -f "$out.tmp" "$out"
  echo "fixtures: built $out"
}

build_debian() {
  local tar="$FIX/debian.tar" out="$FIX/debian" tmp try
  local sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  if [[ ! -f "$tar" ]]; then
    tmp="$(mktemp -d "$FIX/.debian.XXXXXX")"
    TMPS+=("$tmp")
    echo "fixtures: debootstrap $SUITE (a few minutes)"
    # One retry: a dropped connection to the mirror should not cost a whole CI run.
    for try in 1 2; do
      if "${sudo[@]}" debootstrap --variant=minbase "$SUITE" "$tmp/rootfs" "$MIRROR" \
        >"$tmp/log" 2>&1; then
        break
      fi
      if [[ $try == 2 ]]; then
        tail -20 "$tmp/log" >&2
        return 1
      fi
      "${sudo[@]}" rm -rf --one-file-system "$tmp/rootfs"
    done
    # Trimmed as Debian's own container images are: downloaded packages and apt lists only
    # make every bundle copy slower.
    "${sudo[@]}" find "$tmp/rootfs/var/cache/apt" "$tmp/rootfs/var/lib/apt/lists" \
      -type f \( -name '*.deb' -o -path '*/lists/*' \) -delete
    # Device nodes stay out: runtimes mount their own /dev, and users cannot mknod them.
    "${sudo[@]}" tar -C "$tmp/rootfs" --numeric-owner --exclude='./dev/*' -cf "$tmp/debian.tar" .
    "${sudo[@]}" chown "$(id -u):$(id -g)" "$tmp/debian.tar"
    "${sudo[@]}" rm -rf --one-file-system "$tmp/rootfs"
    mv -f "$tmp/debian.tar" "$tar"
    rm -rf "$out"
    echo "fixtures: built $tar"
  fi
  if [[ ! -d "$out" ]]; then
    tmp="$(mktemp -d "$FIX/.debian.XXXXXX")"
    TMPS+=("$tmp")
    mkdir "$tmp/rootfs"
    tar -C "$tmp/rootfs" --numeric-owner -xpf "$tar"
    chmod 0755 "$tmp/rootfs"
    mv -T "$tmp/rootfs" "$out"
    echo "fixtures: unpacked $out"
  fi
}

main() {
  FIX="${TINYC_FIXTURES:-$REPO/.cache/fixtures}"
  mkdir -p "$FIX"
  # One run at a time, so what a killed run left behind can be swept without hurting another.
  exec 9>"$FIX/.lock"
  flock 9
  local sudo=()
  # A debootstrap that was killed left files of root's.
  if [[ $EUID -ne 0 ]] && compgen -G "$FIX/.debian.*" >/dev/null; then sudo=(sudo); fi
  "${sudo[@]}" rm -rf --one-file-system "$FIX"/.busybox.* "$FIX"/.debian.*
  trap cleanup EXIT
  build_busybox
  build_report
  if [[ "${TINYC_FIXTURES_DEBIAN:-1}" != 0 ]]; then build_debian; fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
