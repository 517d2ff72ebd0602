#!/usr/bin/env bash
# Server CPU per API request: one release ebbsocks with the API on, N
# requests over one keep-alive connection (curl's URL globbing), alternating
# /healthz (the API's floor) and /metrics; CPU is the server's utime+stime
# from /proc, so the client's own work is not counted.
#
#   cargo build --release -p ebbsocks
#   docs/bench/metrics_scrape_cpu.sh 3000 /tmp/metrics_cpu   # requests per step, output
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-3000}
out=${2:-/tmp/metrics_cpu}
port=${BENCH_PORT:-21290}
api_port=${BENCH_API_PORT:-21291}
mkdir -p "$out"
. docs/bench/lib.sh
start_ebbsocks "$out" "$port" "[api]
enabled = true
listen = \"127.0.0.1:$api_port\"
token = \"bench-token\""
pid=$server
trap 'kill $pid 2>/dev/null || true' EXIT
wait_listening "$out"
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
for path in healthz metrics healthz metrics healthz metrics; do
  before=$(ticks)
  curl -sf -o /dev/null -H "Authorization: Bearer bench-token" \
    "http://127.0.0.1:$api_port/$path?[1-$n]"
  after=$(ticks)
  echo "/$path: $(( (after - before) * 1000000 / hz / n )) us of server CPU per request"
done
echo "body: $(curl -sf -H "Authorization: Bearer bench-token" "http://127.0.0.1:$api_port/metrics" | wc -c) bytes"
