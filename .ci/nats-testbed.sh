#!/usr/bin/env bash
# Provides the nats-server the NATS tests run against (each test starts its own `nats-server -js` on a free
# port with a temporary store directory) and prints the path of the binary on stdout.
#
# Order: $SWITCHYARD_NATS_SERVER, `nats-server` on PATH, /usr/sbin/nats-server, otherwise
# `apt-get install -y nats-server` (Debian package; needs root). Exits non-zero when none can be provided:
# the NATS tests fail, never skip.
set -euo pipefail

log() { echo "nats-testbed: $*" >&2; }
works() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if [ -n "${SWITCHYARD_NATS_SERVER:-}" ]; then
    works "$SWITCHYARD_NATS_SERVER" || { log "SWITCHYARD_NATS_SERVER=$SWITCHYARD_NATS_SERVER does not run"; exit 1; }
    echo "$SWITCHYARD_NATS_SERVER"
    exit 0
fi
for p in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
    if [ -n "$p" ] && works "$p"; then
        echo "$p"
        exit 0
    fi
done
command -v apt-get >/dev/null || { log "no nats-server and no apt-get to install it"; exit 1; }
log "installing nats-server (Debian package)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y nats-server >&2 || { apt-get update >&2 && apt-get install -y nats-server >&2; } \
    || { log "apt-get install nats-server failed"; exit 1; }
for p in /usr/sbin/nats-server /usr/bin/nats-server; do
    if works "$p"; then
        echo "$p"
        exit 0
    fi
done
log "nats-server still missing after the install"
exit 1
