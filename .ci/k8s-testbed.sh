#!/usr/bin/env bash
# Provides the real Kubernetes control plane the Kubernetes tests run against: a kube-apiserver v1.20.2
# built from Debian's own `kubernetes` source package (tests/k8s/prepare-apiserver.sh, 2-3 min on 2 cores,
# needs root for apt-get) and Debian's etcd. Prints the path of the apiserver binary on stdout (progress
# goes to stderr). The tests (tests/system/kubernetes.rs) start one apiserver + etcd per test run on free
# loopback ports from this binary and stop them by PID.
#
# Order: $SWITCHYARD_KUBE_APISERVER, ~/.cache/switchyard-tools/k8s/bin/kube-apiserver, otherwise build it
# there (the cache is outside the work tree, so a clean checkout reuses it). Exits non-zero when no working
# binary can be provided: the Kubernetes tests then fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${SWITCHYARD_TOOLS_ROOT:-$HOME/.cache/switchyard-tools}/k8s"
cached="$root/bin/kube-apiserver"
log() { echo "k8s-testbed: $*" >&2; }
works() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q 'Kubernetes v1\.'; }

command -v etcd >/dev/null || {
    log "installing etcd-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >&2 || { log "apt-get install etcd-server failed"; exit 1; }
}
command -v kubectl >/dev/null || {
    log "installing kubectl"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >&2 || { log "apt-get install kubernetes-client failed"; exit 1; }
}
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2

if [ -n "${SWITCHYARD_KUBE_APISERVER:-}" ]; then
    works "$SWITCHYARD_KUBE_APISERVER" || { log "SWITCHYARD_KUBE_APISERVER=$SWITCHYARD_KUBE_APISERVER does not work"; exit 1; }
    echo "$SWITCHYARD_KUBE_APISERVER"
    exit 0
fi
if ! works "$cached"; then
    # Another build of the same cache running (started by hand)? Wait for it rather than start a second one.
    waited=0
    while pgrep -f "prepare-apiserver.sh $root" >/dev/null 2>&1; do
        [ "$waited" -eq 0 ] && log "a kube-apiserver build is already running; waiting for it"
        sleep 5; waited=$((waited + 5))
        [ "$waited" -ge 1800 ] && { log "gave up waiting for the running build"; exit 1; }
    done
fi
if ! works "$cached"; then
    log "building kube-apiserver v1.20.2 into $root (2-3 min)"
    tests/k8s/prepare-apiserver.sh "$root" >&2 || { log "building kube-apiserver failed"; exit 1; }
    # The build tree (sources, Go caches) is large; only the binary is needed.
    rm -rf "$root"/{src,gopath,gocache,debs,apt,.cache}
fi
works "$cached" || { log "no working kube-apiserver at $cached"; exit 1; }
echo "$cached"
