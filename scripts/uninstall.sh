#!/usr/bin/env bash
# Removes the edge-agent service:  sudo scripts/uninstall.sh [--dry-run] [--purge] [--prefix /opt/edge-agent]
# Stops and disables the unit, removes it and the program files. The config (/etc/edge-agent) and the
# event store (/var/lib/edge-agent, which may hold events not yet synced) are kept unless --purge,
# which also removes the user. --dry-run prints every command and changes nothing.
set -euo pipefail

PREFIX=/opt/edge-agent
ETC=/etc/edge-agent
STATE=/var/lib/edge-agent
UNIT=/etc/systemd/system/edge-agent.service
USER_NAME=edge-agent
DRY_RUN=0
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --purge) PURGE=1 ;;
    --prefix) PREFIX="$2"; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done
say() { printf '==> %s\n' "$*"; }
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '[dry-run] %s\n' "$*"; else "$@"; fi
}
[ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root (or with --dry-run)" >&2; exit 77; }

say "stopping the service (it commits the store before exiting)"
run systemctl disable --now edge-agent.service || true
run rm -f "$UNIT"
run systemctl daemon-reload
run systemctl reset-failed edge-agent.service || true
say "removing $PREFIX"
run rm -rf "$PREFIX"
if [ "$PURGE" = 1 ]; then
  say "purging config, event store and user"
  run rm -rf "$ETC" "$STATE"
  if id "$USER_NAME" >/dev/null 2>&1; then run userdel "$USER_NAME"; fi
else
  say "kept $ETC and $STATE (the store may hold events not yet synced); --purge removes them"
fi
