#!/usr/bin/env bash
# Proves that the static binary needs nothing from the system: in an empty
# root holding only the binary, /etc/hosts and a few empty directories, it
# runs the reference server and the worker, the worker completes 20 echo
# tasks, and its health server answers /health and /metrics. The checks run
# from outside over loopback (a chroot shares the network), since the empty
# root has no curl.
#
#   packaging/check-static.sh [--target ARCH] [--emulator PROG] [BINARY]
#   packaging/check-static.sh --worker-only [--target ARCH] [--emulator PROG] [BINARY [SERVER]]
#
# BINARY defaults to what `build-static.sh --target ARCH` builds (ARCH:
# x86_64, the default, aarch64 or armv7). With --worker-only, BINARY is a
# worker-only build (default: build-static.sh --worker-only): it must say
# that it lacks `serve`, and it works against the server and enqueue of
# SERVER, a full build (default: build-static.sh), in the same empty root.
#
# A binary for another architecture runs under user-mode emulation: PROG, by
# default qemu-aarch64-static or qemu-arm-static (Debian: qemu-user-static,
# installed when missing), is copied into the empty root beside it and runs
# it there. It is a static program too, so the root stays empty of libraries.
#
# Needs root (chroot); as another user it says it skipped and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: check-static.sh needs root to chroot"
    exit 0
fi

tasks=20
chroot_bin=$(command -v chroot) || { echo "error: chroot not found" >&2; exit 1; }

worker_only=no
arch=$(uname -m)
emulator=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --worker-only) worker_only=yes ;;
        --target) arch=${2:-}; shift ;;
        --emulator) emulator=${2:-}; shift ;;
        -*) echo "usage: $0 [--worker-only] [--target ARCH] [--emulator PROG] [BINARY [SERVER]]" >&2; exit 64 ;;
        *) args+=("$1") ;;
    esac
    shift
done
bin=${args[0]:-}
server_bin=${args[1]:-}
if [ -z "$bin" ] && [ "$worker_only" = yes ]; then
    bin=$(packaging/build-static.sh --target "$arch" --worker-only | tail -n 1)
elif [ -z "$bin" ]; then
    bin=$(packaging/build-static.sh --target "$arch" | tail -n 1)
fi
if [ "$worker_only" = no ]; then
    server_bin=$bin
elif [ -z "$server_bin" ]; then
    server_bin=$(packaging/build-static.sh --target "$arch" | tail -n 1)
fi
for b in "$bin" "$server_bin"; do
    [ -x "$b" ] || { echo "error: $b is not an executable" >&2; exit 1; }
done

# Another architecture's binary: its emulator, a static program too.
if [ -z "$emulator" ]; then
    case "$arch" in
        "$(uname -m)") ;;
        x86_64 | amd64) emulator=qemu-x86_64-static ;;
        aarch64 | arm64) emulator=qemu-aarch64-static ;;
        armv7 | armhf) emulator=qemu-arm-static ;;
        *) echo "error: no emulator known for $arch: give --emulator" >&2; exit 64 ;;
    esac
fi
if [ -n "$emulator" ] && ! command -v "$emulator" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "installing qemu-user-static (apt-get) for $emulator" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends qemu-user-static; } >&2 || true
fi
if [ -n "$emulator" ]; then
    emulator_path=$(command -v "$emulator") || { echo "error: $emulator not found" >&2; exit 1; }
fi

# Everything the check makes lives under $work and goes in cleanup, as do the
# processes it starts, whatever way the script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/taskworker-check-static.XXXXXX")
root=$work/root
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        stop "$pid" 5 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop PID SECONDS: SIGTERM, then SIGKILL when it is still there after SECONDS.
# Returns the process's exit status (wait works: it is our child).
stop() {
    local pid=$1 deadline=$((SECONDS + $2))
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "pid $pid ignored SIGTERM for $2 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null
}

# fail MESSAGE: says what went wrong, with the logs of what ran.
fail() {
    echo "FAIL: $*" >&2
    local log
    for log in "$work"/*.log; do
        [ -e "$log" ] || continue
        echo "---- $(basename "$log") (last 40 lines)" >&2
        tail -n 40 "$log" >&2
    done
    exit 1
}

# http_get URL: the body of a 2xx answer on stdout; fails otherwise.
http_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 5 "$1"
    else
        python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
    fi
}

# count_tasks JSON: how many tasks a GET /tasks answer lists (a JSON list, or
# an object with a "tasks" list).
count_tasks() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json, sys
body = json.loads(sys.argv[1])
tasks = body.get("tasks", []) if isinstance(body, dict) else body
print(len(tasks))' "$1"
    else
        grep -o '"status" *: *"completed"' <<<"$1" | wc -l
    fi
}

# free_port: a loopback TCP port that nothing listens on right now.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

# The binary inside the empty root, as the unprivileged user that the
# container image uses too. Always run through `env -i VAR=VALUE...`, so that
# exactly the given environment goes in and none of this shell's leaks in.
# Under emulation, the emulator inside the root runs it.
run_in_root=("$chroot_bin" --userspec=65532:65532 "$root")
[ -n "$emulator" ] && run_in_root+=(/emulator)
in_root=("${run_in_root[@]}" /taskworker)
# What serves and enqueues: the same binary, or a full build beside a worker-only one.
server_in_root=("${in_root[@]}")
if [ "$worker_only" = yes ]; then
    server_in_root=("${run_in_root[@]}" /taskworker-server)
fi

# The empty root: the binary, /etc/hosts for "localhost", a /tmp, the
# configuration and a state directory for the result spool. No /proc, /dev,
# libraries, shell or certificates.
mkdir -p "$root/etc/taskworker" "$root/tmp" "$root/var/lib/taskworker"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/var/lib/taskworker"
cp "$bin" "$root/taskworker"
[ -n "$emulator" ] && cp "$emulator_path" "$root/emulator"
if [ "$worker_only" = yes ]; then
    cp "$server_bin" "$root/taskworker-server"
fi
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
cat >"$root/etc/taskworker/config.json" <<'JSON'
{
  "handlers": {
    "echo": {"builtin": "echo"}
  }
}
JSON
echo "empty root: $(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')"

# 1. The binary starts at all.
version=$(timeout 10 env -i "${in_root[@]}" --version) ||
    fail "taskworker --version does not run in the empty root"
echo "ok: $version runs in the empty root${emulator:+ (under $emulator)}"

# 1b. A worker-only build says that it lacks the server, with a usage exit code.
if [ "$worker_only" = yes ]; then
    status=0
    out=$(timeout 10 env -i "${in_root[@]}" serve 2>&1) || status=$?
    [ "$status" -eq 64 ] && grep -q 'not in this build' <<<"$out" ||
        fail "serve in the worker-only build: exit $status: $out"
    echo "ok: the worker-only build lacks serve (exit 64)"
fi

# 2. The reference server.
port=$(free_port)
api=http://127.0.0.1:$port
env -i "${server_in_root[@]}" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pids+=($!)
server=$!
deadline=$((SECONDS + 10))
until http_get "$api/health" >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || fail "taskworker serve exited"
    [ "$SECONDS" -lt "$deadline" ] || fail "taskworker serve did not answer on $api within 10 s"
    sleep 0.1
done
echo "ok: server answers on $api"

# 3. The tasks.
timeout 30 env -i "${server_in_root[@]}" enqueue --api-url "$api" --type echo --count "$tasks" \
    >"$work/enqueue.log" 2>&1 || fail "taskworker enqueue failed"
echo "ok: $tasks echo tasks enqueued"

# 4. The worker. WORKER_ID is set because its default needs the host name,
# which a container has and a bare chroot has not.
health=127.0.0.1:$(free_port)
env -i API_URL="$api" HEALTH_ADDR="$health" WORKER_ID=check-static \
    STATE_DIR=/var/lib/taskworker CONCURRENT_TASKS=4 LOG_LEVEL=info \
    "${in_root[@]}" run --config /etc/taskworker/config.json >"$work/run.log" 2>&1 &
pids+=($!)
worker=$!
deadline=$((SECONDS + 60))
while :; do
    body=$(http_get "$api/tasks?status=completed&limit=1000" 2>/dev/null) || body='[]'
    done_count=$(count_tasks "$body" 2>/dev/null) || done_count=0
    [ "$done_count" -ge "$tasks" ] && break
    kill -0 "$worker" 2>/dev/null || fail "taskworker run exited with $done_count of $tasks tasks completed"
    [ "$SECONDS" -lt "$deadline" ] || fail "$done_count of $tasks tasks completed after 60 s"
    sleep 0.2
done
echo "ok: the worker completed $done_count tasks"

# 5. Its health server, without /proc: /health counts the tasks, /metrics
# has the claim counters (and no RSS sample, which needs /proc).
body=$(http_get "http://$health/health") || fail "no answer from http://$health/health"
grep -q "\"tasks_processed\":$tasks" <<<"$body" || fail "/health: $body"
body=$(http_get "http://$health/metrics") || fail "no answer from http://$health/metrics"
grep -q '^taskworker_claims_total{result="tasks"} [1-9]' <<<"$body" ||
    fail "/metrics has no claims: $body"
echo "ok: /health and /metrics answer on $health"

# 6. An idle worker drains and exits 0 on SIGTERM.
status=0
stop "$worker" 10 || status=$?
pids=("$server")
[ "$status" -eq 0 ] || fail "taskworker run exited $status on SIGTERM, not 0"
echo "ok: the worker stopped cleanly on SIGTERM"

if [ "$worker_only" = yes ]; then
    echo "PASS: the worker-only static binary works in an empty root against the full build's server"
else
    echo "PASS: the static binary serves, enqueues and works in an empty root"
fi
