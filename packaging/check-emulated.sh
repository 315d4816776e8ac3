#!/usr/bin/env bash
# Tests the static binaries of another architecture where they will run, as
# near as this machine gets: under user-mode emulation (qemu-user-static).
#
#   packaging/check-emulated.sh aarch64
#   packaging/check-emulated.sh armv7
#
# It builds the full and the worker-only binary for ARCH (build-static.sh
# --target ARCH), then, under the emulator:
#
#   1. `taskworker --version` names the target it was built for;
#   2. `check-config` accepts the example configuration (packaging/examples);
#   3. `taskworker demo` runs a server and a worker on 20 sample tasks through
#      the example handlers, end to end (at most 5 minutes);
#   4. check-static.sh runs server, enqueue and worker from each binary in an
#      empty root, with the emulator beside it (needs root; otherwise it says
#      it skipped).
#
# Installs qemu-user-static when it is missing and it can (apt-get as root).
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
case "$arch" in
    aarch64 | arm64) arch=aarch64; emulator=qemu-aarch64-static ;;
    armv7 | armhf) arch=armv7; emulator=qemu-arm-static ;;
    *) echo "usage: $0 aarch64|armv7" >&2; exit 64 ;;
esac

if ! command -v "$emulator" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing qemu-user-static (apt-get) for $emulator" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >&2
fi
command -v "$emulator" >/dev/null 2>&1 || { echo "error: $emulator not found (Debian: qemu-user-static)" >&2; exit 1; }

bin=$(packaging/build-static.sh --target "$arch" | tail -n 1)
worker_bin=$(packaging/build-static.sh --target "$arch" --worker-only | tail -n 1)
# The target directory's name is the target's: aarch64-unknown-linux-musl, ...
target=$(basename "$(dirname "$(dirname "$bin")")")

work=$(mktemp -d "${TMPDIR:-/tmp}/taskworker-check-emulated.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. --version, from both builds.
for b in "$bin" "$worker_bin"; do
    version=$(timeout 30 "$emulator" "$b" --version)
    grep -q "^taskworker [0-9][^ ]* ($target, rev [^)]*)\$" <<<"$version" ||
        { echo "FAIL: $b --version: $version" >&2; exit 1; }
    echo "ok: $version"
done

# 2. The example configuration, from the examples' folder as README says.
for b in "$bin" "$worker_bin"; do
    abs=$(realpath "$b")
    (cd packaging/examples && timeout 30 "$emulator" "$abs" check-config --config config.json) \
        >"$work/check-config.log" 2>&1 ||
        { cat "$work/check-config.log" >&2; echo "FAIL: check-config on the examples ($b)" >&2; exit 1; }
done
echo "ok: check-config accepts packaging/examples/config.json (full and worker-only)"

# 3. The demo: server, enqueue, worker and the example handlers in one process.
# Some of its tasks fail on purpose; it exits 0 when all are done.
if ! timeout 300 "$emulator" "$bin" demo --tasks 20 --concurrency 4 --dir "$work/demo" \
    >"$work/demo.log" 2>&1; then
    tail -n 40 "$work/demo.log" >&2
    echo "FAIL: taskworker demo under $emulator" >&2
    exit 1
fi
grep -q '^| 20 |' "$work/demo.log" || { cat "$work/demo.log" >&2; echo "FAIL: the demo did not finish 20 tasks" >&2; exit 1; }
echo "ok: the demo ran 20 tasks end to end"

# 4. The empty root, for both builds.
packaging/check-static.sh --target "$arch" --emulator "$emulator" "$bin"
packaging/check-static.sh --worker-only --target "$arch" --emulator "$emulator" "$worker_bin" "$bin"
echo "PASS: the $target binaries work under $emulator"
