#!/usr/bin/env bash
# Run the package's maintainer scripts as dpkg would, without touching the host: in a
# throw-away user and mount namespace where /run and /var/lib are empty temporary
# file systems, with stand-ins for systemctl and the deb-systemd tools that only
# record how they were called. Checks: daemon-reload and enable on install, a
# restart after an upgrade, a stop on remove, the state kept on remove and deleted
# on purge only (fanzha), or kept on purge too (fanzha-platform: the district's
# records are deleted by hand).
# Usage: scripts/check-deb-scripts.sh PACKAGE.deb   (needs unshare from util-linux,
# and unprivileged user namespaces or root)
set -euo pipefail
deb=$1
name=$(dpkg-deb -f "$deb" Package)
keep_on_purge=no
[ "$name" = fanzha-platform ] && keep_on_purge=yes
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -e "$deb" "$work/DEBIAN"
for s in postinst prerm postrm; do
  [ -f "$work/DEBIAN/$s" ] || { echo "ERROR: the package has no $s" >&2; exit 1; }
  sh -n "$work/DEBIAN/$s"
done
mkdir -p "$work/stubs"
for c in systemctl deb-systemd-helper deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" >> "$CALLS"\n' "$c" > "$work/stubs/$c"
  chmod +x "$work/stubs/$c"
done
unshare -Urm env WORK="$work" NAME="$name" KEEP="$keep_on_purge" PATH="$work/stubs:$PATH" bash -euo pipefail -c '
  mount -t tmpfs none /run && mkdir -p /run/systemd/system
  mount -t tmpfs none /var/lib && mkdir -p /var/lib/private/$NAME && ln -s private/$NAME /var/lib/$NAME
  echo spooled > /var/lib/private/$NAME/seg-1.log
  s=$WORK/DEBIAN
  step() {   # step NAME SCRIPT ARGS... : run it, keep what it called in $WORK/NAME
    local name=$1; shift
    CALLS=$WORK/$name sh "$@"; touch "$WORK/$name"
  }
  expect() {   # expect NAME TEXT : the calls of NAME include TEXT
    grep -qF -- "$2" "$WORK/$1" || { echo "ERROR: $1 did not call: $2 (it called: $(tr "\n" ";" < "$WORK/$1"))" >&2; exit 1; }
  }
  step install "$s/postinst" configure
  expect install "systemctl --system daemon-reload"
  expect install "deb-systemd-helper enable $NAME.service"
  ! grep -q "deb-systemd-invoke" "$WORK/install" || { echo "ERROR: a first install started the service" >&2; exit 1; }
  step upgrade "$s/postinst" configure 0.0.9
  expect upgrade "systemctl --system daemon-reload"
  expect upgrade "deb-systemd-invoke try-restart $NAME.service"
  step remove "$s/prerm" remove
  expect remove "deb-systemd-invoke stop $NAME.service"
  step removed "$s/postrm" remove
  [ -f /var/lib/$NAME/seg-1.log ] || { echo "ERROR: remove deleted the state" >&2; exit 1; }
  step purged "$s/postrm" purge
  if [ "$KEEP" = yes ]; then
    [ -f /var/lib/private/$NAME/seg-1.log ] || { echo "ERROR: purge deleted the district records" >&2; exit 1; }
  else
    [ ! -e /var/lib/$NAME ] && [ ! -e /var/lib/private/$NAME ] || { echo "ERROR: purge left the state" >&2; exit 1; }
  fi
'
echo "maintainer scripts of $name: install, upgrade, remove and purge behave"
