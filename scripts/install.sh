#!/usr/bin/env bash
# Installs edge-agent as a systemd service on a gateway. Run once, as root, from a checkout:
#   sudo scripts/install.sh [--dry-run] [--no-start] [--prefix /opt/edge-agent] [--config FILE]
# Creates the system user "edge-agent" (in group dialout for serial ports), copies the agent to the
# prefix and installs its production dependencies, puts the config in /etc/edge-agent/agent.yaml
# (an existing one is never overwritten), creates an API token as a systemd credential, installs
# the unit, checks it with systemd-analyze verify, validates the config, then enables and starts it.
# --dry-run prints every command that would change the system, and changes nothing.
set -euo pipefail

PREFIX=/opt/edge-agent
ETC=/etc/edge-agent
STATE=/var/lib/edge-agent
UNIT_DIR=/etc/systemd/system
USER_NAME=edge-agent
DRY_RUN=0
START=1
SRC="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="$SRC/agent.config.yaml"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --no-start) START=0 ;;
    --prefix) PREFIX="$2"; shift ;;
    --config) CONFIG="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
  shift
done

say() { printf '==> %s\n' "$*"; }
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '[dry-run] %s\n' "$*"; else "$@"; fi
}

[ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (or with --dry-run)" >&2; exit 77; }
NODE="$(command -v node || true)"
[ -n "$NODE" ] || { echo "install.sh: Node.js 20 or newer is required (node not found)" >&2; exit 69; }
major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || { echo "install.sh: Node.js 20 or newer is required (found $("$NODE" --version))" >&2; exit 69; }
[ -f "$CONFIG" ] || { echo "install.sh: config $CONFIG not found" >&2; exit 66; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "rendering the unit and the config"
sed -e "s#/usr/bin/node #$NODE #g" -e "s#/opt/edge-agent#$PREFIX#g" "$SRC/systemd/edge-agent.service" >"$work/edge-agent.service"
# The event store belongs in the state directory, on persistent storage.
sed -e "s#^\(\s*path:\s*\)\./data/agent\.db#\1$STATE/agent.db#" "$CONFIG" >"$work/agent.yaml"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$work/edge-agent.service"
else
  echo "warning: systemd-analyze not found; the unit was not verified" >&2
fi
EDGE_API_TOKEN=check "$NODE" "$SRC/bin/edge-agent.js" validate --config "$work/agent.yaml"

say "user $USER_NAME"
if ! id "$USER_NAME" >/dev/null 2>&1; then
  run useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin \
    --comment "edge-agent service" "$USER_NAME"
fi
if getent group dialout >/dev/null; then run usermod -a -G dialout "$USER_NAME"; fi
# GPIO stop relays (exec actuator + gpioset): the unit's DeviceAllow=char-gpiochip, the group "gpio" for
# file access (created here when the distribution has none) and a udev rule giving it /dev/gpiochip*.
getent group gpio >/dev/null || run groupadd --system gpio
run usermod -a -G gpio "$USER_NAME"
if [ -d /etc/udev ] || [ "$DRY_RUN" = 1 ]; then
  run install -m 0644 "$SRC/systemd/60-edge-agent-gpio.rules" /etc/udev/rules.d/60-edge-agent-gpio.rules
  run udevadm trigger --subsystem-match=gpio || true
fi

say "agent in $PREFIX"
run install -d -m 0755 "$PREFIX"
for item in package.json package-lock.json .npmrc README.md LICENSE agent.config.yaml bin agent drivers models schema systemd docs; do
  [ -e "$SRC/$item" ] && run cp -a "$SRC/$item" "$PREFIX/"
done
run bash -c "cd '$PREFIX' && npm ci --omit=dev --no-fund --no-audit"
run chown -R root:root "$PREFIX"

say "config in $ETC, state in $STATE"
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
run install -d -m 0700 -o root -g root "$ETC/credentials"
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
if [ -e "$ETC/agent.yaml" ]; then
  say "keeping the existing $ETC/agent.yaml"
else
  run install -m 0640 -o root -g "$USER_NAME" "$work/agent.yaml" "$ETC/agent.yaml"
fi
if [ -e "$ETC/credentials/api-token" ]; then
  say "keeping the existing API token"
else
  # Read by systemd (LoadCredential=) and handed to the service only; never in the config file.
  run bash -c "umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > '$ETC/credentials/api-token'"
  say "API token created in $ETC/credentials/api-token (give it to the people allowed to acknowledge trips)"
fi

say "unit $UNIT_DIR/edge-agent.service"
run install -m 0644 "$work/edge-agent.service" "$UNIT_DIR/edge-agent.service"
run systemctl daemon-reload
if [ "$START" = 1 ]; then
  run systemctl enable --now edge-agent.service
  say "started: journalctl -u edge-agent -f; dashboard: http://127.0.0.1:8080/"
else
  run systemctl enable edge-agent.service
  say "enabled; start with: systemctl start edge-agent"
fi
