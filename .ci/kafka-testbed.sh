#!/usr/bin/env bash
# Provides the Kafka-protocol broker the Kafka tests run against (tansu, see
# /work/shared/testbeds/kafka.md) and prints the path of its binary on stdout (progress goes to stderr).
#
# Order: $SWITCHYARD_TANSU, `tansu` on PATH, ~/.cache/switchyard-tools/bin/tansu, otherwise build it with
#   cargo install tansu --locked --features dynostore --root ~/.cache/switchyard-tools   (9-15 min on 2 cores)
# If another such build is already running (e.g. started by hand), waits for it instead of starting a
# second one. Exits non-zero when no working binary can be provided: the Kafka tests fail, never skip.
set -euo pipefail

root="${SWITCHYARD_TOOLS_ROOT:-$HOME/.cache/switchyard-tools}"
cached="$root/bin/tansu"
version="${SWITCHYARD_TANSU_VERSION:-0.6.0}"

log() { echo "kafka-testbed: $*" >&2; }

# A usable binary answers `--help` listing the broker subcommand.
works() { [ -x "$1" ] && "$1" --help 2>/dev/null | grep -q broker; }

found=""
if [ -n "${SWITCHYARD_TANSU:-}" ]; then
    works "$SWITCHYARD_TANSU" || { log "SWITCHYARD_TANSU=$SWITCHYARD_TANSU is not a working tansu binary"; exit 1; }
    found="$SWITCHYARD_TANSU"
elif p="$(command -v tansu 2>/dev/null)" && works "$p"; then
    found="$p"
elif works "$cached"; then
    found="$cached"
else
    # A build of the same root already running? Wait for it (up to 40 min) rather than start another.
    waited=0
    while pgrep -f "cargo install tansu.*--root $root" >/dev/null 2>&1; do
        [ "$waited" -eq 0 ] && log "a tansu build is already running; waiting for it"
        sleep 10
        waited=$((waited + 10))
        if [ "$waited" -ge 2400 ]; then log "gave up waiting for the running tansu build"; exit 1; fi
    done
    if ! works "$cached"; then
        command -v cargo >/dev/null || { log "cargo is required to build tansu"; exit 1; }
        log "building tansu $version into $root (9-15 min)"
        cargo install tansu --version "$version" --locked --features dynostore --root "$root" >&2 \
            || { log "cargo install tansu failed"; exit 1; }
    fi
    works "$cached" || { log "no working tansu at $cached after the build"; exit 1; }
    found="$cached"
fi

# The build must have the in-memory storage engine (feature `dynostore`): start it once and ask for
# metadata-level readiness (the port accepting connections) within 20 s.
port=$((20000 + RANDOM % 20000))
out="$(mktemp)"
"$found" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$out" 2>&1 &
pid=$!
ok=""
for _ in $(seq 1 200); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -z "$ok" ]; then
    log "$found did not start a broker with memory:// storage (built without --features dynostore?):"
    sed 's/^/  /' "$out" >&2
    rm -f "$out"
    exit 1
fi
rm -f "$out"
echo "$found"
