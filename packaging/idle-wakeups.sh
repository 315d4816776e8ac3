#!/usr/bin/env bash
# Counts how often an idle worker wakes up. It starts the reference server
# and a worker with one handler and a long poll open (nothing to do), lets
# them settle, then sums the worker's voluntary context switches over all
# its threads (`voluntary_ctxt_switches` in /proc/PID/task/*/status) across
# SECONDS seconds, and prints wake-ups per second, per thread and in all.
#
#   packaging/idle-wakeups.sh [BINARY] [SECONDS]   # default: target/release/taskworker, 10
#
# A thread blocked in a long poll, on a channel or in accept() does not
# switch; a thread that wakes on a timer does, once per wake-up.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/taskworker}
seconds=${2:-10}
[ -x "$bin" ] || { echo "error: $bin not found; build it first (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
worker_pid=
cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's/^listening on //p' "$work/serve.out")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "error: the server did not start" >&2; exit 1; }

echo '{"handlers": {"echo": {"builtin": "echo"}}}' >"$work/config.json"
API_URL=$url WAIT_SECONDS=20 HEALTH_ADDR=127.0.0.1:0 LOG_LEVEL=warn \
    "$bin" run --config "$work/config.json" 2>"$work/worker.log" &
worker_pid=$!
# Past the start and the first /health check of the API.
sleep 3
kill -0 "$worker_pid" 2>/dev/null || { echo "error: the worker exited:" >&2; cat "$work/worker.log" >&2; exit 1; }

# "name switches" for every thread of the worker.
snapshot() {
    for status in /proc/"$worker_pid"/task/*/status; do
        awk '/^Name:/ {name = $2} /^voluntary_ctxt_switches:/ {print name, $2}' "$status" 2>/dev/null || true
    done | sort
}
snapshot >"$work/before"
sleep "$seconds"
snapshot >"$work/after"

echo "idle worker, long poll open, over $seconds s: voluntary context switches per second"
join -a 2 -e 0 -o 0,1.2,2.2 <(awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' "$work/before" | sort) \
    <(awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' "$work/after" | sort) |
    awk -v s="$seconds" '{d = $3 - $2; total += d; printf "  %-24s %6.1f\n", $1, d / s}
        END {printf "  %-24s %6.1f\n", "all threads", total / s}'
