#!/usr/bin/env bash
# Installs edge-agent as a systemd service on a gateway. Run once, as root:
#   sudo scripts/install.sh --bundle edge-agent-VERSION-linux-ARCH.tar.gz   (offline: no network needed)
#   sudo scripts/install.sh                       (from a checkout after `npm ci`: packages it first)
# Options: [--dry-run] [--no-start] [--prefix /opt/edge-agent] [--config FILE] [--root DIR]
# Verifies the bundle against its .sha256, checks it fits this machine (Linux, CPU architecture,
# Node.js ABI), creates the system user "edge-agent" (group dialout for serial ports), unpacks the
# compiled agent with its production node_modules into the prefix, puts `edge-agent` on the PATH
# (/usr/local/bin), the config in /etc/edge-agent/agent.yaml (an existing one is never overwritten),
# an API token as a systemd credential, installs the unit, checks it with systemd-analyze verify,
# validates the config, then enables and starts it.
# --dry-run prints every command that would change the system, and changes nothing.
# --root DIR installs into DIR as if it were / (for tests and image builds): no user, no systemctl.
set -euo pipefail

PREFIX=/opt/edge-agent
ROOT_DIR=""
DRY_RUN=0
START=1
BUNDLE=""
SRC="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG=""
USER_NAME=edge-agent

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --no-start) START=0 ;;
    --prefix) PREFIX="$2"; shift ;;
    --config) CONFIG="$2"; shift ;;
    --bundle) BUNDLE="$2"; shift ;;
    --root) ROOT_DIR="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
  shift
done

say() { printf '==> %s\n' "$*"; }
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '[dry-run] %s\n' "$*"; else "$@"; fi
}
die() { echo "install.sh: $1" >&2; exit "${2:-1}"; }

[ "$DRY_RUN" = 1 ] || [ -n "$ROOT_DIR" ] || [ "$(id -u)" = 0 ] || die "run as root (or with --dry-run)" 77
NODE="$(command -v node || true)"
[ -n "$NODE" ] || die "Node.js 20 or newer is required (node not found)" 69
major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || die "Node.js 20 or newer is required (found $("$NODE" --version))" 69

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Without --bundle: from a checkout, package it first (needs `npm ci` done; the native addons are
# the ones built there). From an unpacked bundle (PLATFORM beside this script's folder): use it as is.
if [ -z "$BUNDLE" ] && [ -f "$SRC/PLATFORM" ]; then
  payload="$SRC"
elif [ -z "$BUNDLE" ]; then
  [ -d "$SRC/node_modules" ] || die "no bundle given and no node_modules in $SRC: run 'npm ci' first, or pass --bundle FILE" 66
  say "packaging the checkout (npm run package)"
  run bash -c "cd '$SRC' && npm run --silent package -- --out-dir '$work/release' >/dev/null"
  if [ "$DRY_RUN" = 1 ]; then
    payload="$SRC" # the checkout stands in for the bundle it would install (rendering, validation)
    copy_from="$work/release/edge-agent-*/"
  else
    BUNDLE="$(ls "$work"/release/edge-agent-*.tar.gz)"
  fi
fi
if [ -n "$BUNDLE" ]; then
  [ -f "$BUNDLE" ] || die "bundle $BUNDLE not found" 66
  if [ -f "$BUNDLE.sha256" ]; then
    want="$(cut -d' ' -f1 "$BUNDLE.sha256")"
    got="$(sha256sum "$BUNDLE" | cut -d' ' -f1)"
    [ "$want" = "$got" ] || die "$BUNDLE does not match $BUNDLE.sha256 (got $got): a damaged or altered download" 65
    say "checksum OK ($got)"
  else
    echo "warning: no $BUNDLE.sha256 beside the bundle; its integrity is not checked" >&2
  fi
  tar -xzf "$BUNDLE" -C "$work"
  payload="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'edge-agent-*' | head -n1)"
  [ -n "$payload" ] && [ -f "$payload/PLATFORM" ] || die "$BUNDLE is not an edge-agent bundle (no PLATFORM file)" 65
fi

# The bundle's native addons only load on the platform and Node.js ABI they were built for.
if [ -f "$payload/PLATFORM" ]; then
  read -r platform abi <"$payload/PLATFORM"
  here="linux-$("$NODE" -p 'process.arch') node-abi-$("$NODE" -p 'process.versions.modules')"
  [ "$platform $abi" = "$here" ] || die "the bundle is for $platform $abi, this machine is $here: build the bundle on a machine like this one (npm run package)" 65
fi

[ -n "$CONFIG" ] || CONFIG="$payload/agent.config.yaml"
[ -f "$CONFIG" ] || die "config $CONFIG not found" 66

ETC="$ROOT_DIR/etc/edge-agent"
STATE="$ROOT_DIR/var/lib/edge-agent"
UNIT_DIR="$ROOT_DIR/etc/systemd/system"
BIN_DIR="$ROOT_DIR/usr/local/bin"
DEST="$ROOT_DIR$PREFIX"

say "rendering the unit and the config"
sed -e "s#/usr/bin/node #$NODE #g" -e "s#/opt/edge-agent#$PREFIX#g" "$payload/systemd/edge-agent.service" >"$work/edge-agent.service"
# The event store belongs in the state directory, on persistent storage.
sed -e "s#^\(\s*path:\s*\)\./data/agent\.db#\1/var/lib/edge-agent/agent.db#" "$CONFIG" >"$work/agent.yaml"
if [ -z "$ROOT_DIR" ]; then
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$work/edge-agent.service"
  else
    echo "warning: systemd-analyze not found; the unit was not verified" >&2
  fi
fi
EDGE_API_TOKEN=check "$NODE" "$payload/bin/edge-agent.js" validate --config "$work/agent.yaml"

if [ -z "$ROOT_DIR" ]; then
  say "user $USER_NAME"
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir /var/lib/edge-agent --no-create-home --shell /usr/sbin/nologin \
      --comment "edge-agent service" "$USER_NAME"
  fi
  if getent group dialout >/dev/null; then run usermod -a -G dialout "$USER_NAME"; fi
  # GPIO stop relays (exec actuator + gpioset): the unit's DeviceAllow=char-gpiochip, the group "gpio" for
  # file access (created here when the distribution has none) and a udev rule giving it /dev/gpiochip*.
  getent group gpio >/dev/null || run groupadd --system gpio
  run usermod -a -G gpio "$USER_NAME"
  if [ -d /etc/udev ] || [ "$DRY_RUN" = 1 ]; then
    run install -m 0644 "$payload/systemd/60-edge-agent-gpio.rules" /etc/udev/rules.d/60-edge-agent-gpio.rules
    run udevadm trigger --subsystem-match=gpio || true
  fi
fi
own() { if [ -z "$ROOT_DIR" ]; then echo "-o $1 -g $2"; fi; }

say "agent in $DEST"
if [ -e "$DEST" ]; then run rm -rf "$DEST.previous"; run mv "$DEST" "$DEST.previous"; fi
run install -d -m 0755 "$DEST"
run cp -a "${copy_from:-$payload/.}" "$DEST/"
[ -z "$ROOT_DIR" ] && run chown -R root:root "$DEST"

say "edge-agent on the PATH ($BIN_DIR/edge-agent)"
run install -d -m 0755 "$BIN_DIR"
cat >"$work/edge-agent" <<EOF
#!/bin/sh
# edge-agent command for technicians; the service itself runs from the unit.
: "\${EDGE_AGENT_CONFIG:=/etc/edge-agent/agent.yaml}"
export EDGE_AGENT_CONFIG
exec $NODE $PREFIX/bin/edge-agent.js "\$@"
EOF
run install -m 0755 "$work/edge-agent" "$BIN_DIR/edge-agent"

say "config in $ETC, state in $STATE"
# shellcheck disable=SC2046
run install -d -m 0750 $(own root "$USER_NAME") "$ETC"
# shellcheck disable=SC2046
run install -d -m 0700 $(own root root) "$ETC/credentials"
# shellcheck disable=SC2046
run install -d -m 0750 $(own "$USER_NAME" "$USER_NAME") "$STATE"
if [ -e "$ETC/agent.yaml" ]; then
  say "keeping the existing $ETC/agent.yaml"
else
  # shellcheck disable=SC2046
  run install -m 0640 $(own root "$USER_NAME") "$work/agent.yaml" "$ETC/agent.yaml"
fi
if [ -e "$ETC/credentials/api-token" ]; then
  say "keeping the existing API token"
else
  # Read by systemd (LoadCredential=) and handed to the service only; never in the config file.
  run bash -c "umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > '$ETC/credentials/api-token'"
  say "API token created in $ETC/credentials/api-token (edge-agent ack reads it when run as root)"
fi

say "unit $UNIT_DIR/edge-agent.service"
run install -d -m 0755 "$UNIT_DIR"
run install -m 0644 "$work/edge-agent.service" "$UNIT_DIR/edge-agent.service"
if [ -n "$ROOT_DIR" ]; then
  say "installed under $ROOT_DIR; no user created and systemd not touched (--root)"
  exit 0
fi
run systemctl daemon-reload
if [ "$START" = 1 ]; then
  run systemctl enable --now edge-agent.service
  say "started: journalctl -u edge-agent -f; dashboard: http://127.0.0.1:8080/"
else
  run systemctl enable edge-agent.service
  say "enabled; start with: systemctl start edge-agent"
fi
