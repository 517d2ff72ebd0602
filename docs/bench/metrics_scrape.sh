#!/usr/bin/env bash
# Cost of a /metrics scraper, and of an open dashboard, on the connection
# rate: one release ebbsocks with the API on (and a token), `pulse rate` at
# concurrency 64, in four modes run in rotating order within each round:
#   plain    nothing polls the API
#   healthz  a curl loop polls /healthz every INTERVAL seconds (a control:
#            a periodic poller that reads no metric)
#   metrics  the same loop polls /metrics
#   dashboard  what an open dashboard page polls, once a second
# Prints every run's conn/s and the medians per mode; the ratios that matter
# are metrics (and dashboard) / plain and / healthz.
#
#   cargo build --release -p ebbsocks -p pulse
#   docs/bench/metrics_scrape.sh 6 0.5 /tmp/metrics_bench   # rounds, interval, output
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-6}
interval=${2:-0.5}
out=${3:-/tmp/metrics_bench}
port=${BENCH_PORT:-21280}
api_port=${BENCH_API_PORT:-21281}
token=bench-token
mkdir -p "$out"
. docs/bench/lib.sh
start_ebbsocks "$out" "$port" "[api]
enabled = true
listen = \"127.0.0.1:$api_port\"
token = \"$token\""
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
}
trap cleanup EXIT
wait_listening "$out"

# A poll that fails (wrong token, server gone) stops the benchmark: the
# polled runs must really have been polled.
poll_loop() { # path
  while true; do
    curl -sf -o /dev/null -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$api_port$1" || { echo "poll of $1 failed" >&2; exit 1; }
    sleep "$interval"
  done
}

# What an open dashboard does (api/dashboard/app.js): every second one
# keep-alive connection fetches /api/stats, /api/memory and /api/pool/stats,
# and every third second /api/telemetry/events too.
dashboard_loop() {
  local n=0 paths args
  while true; do
    paths=(/api/stats /api/memory /api/pool/stats)
    [ $((n % 3)) -eq 0 ] && paths+=(/api/telemetry/events)
    args=()
    for p in "${paths[@]}"; do args+=(-o /dev/null "http://127.0.0.1:$api_port$p"); done
    curl -sf -H "Authorization: Bearer $token" "${args[@]}" \
      || { echo "dashboard poll failed" >&2; exit 1; }
    n=$((n + 1))
    sleep 1
  done
}

run() { # mode, round
  local dir="$out/$1-$2"
  ./target/release/pulse rate --proxy "127.0.0.1:$port" --concurrency 64 --rounds 3 \
    --out "$dir" > "$dir.txt"
}

modes=(plain healthz metrics dashboard)
for i in $(seq "$rounds"); do
  for k in 0 1 2 3; do
    mode=${modes[$(((i + k) % 4))]}
    case $mode in
      plain) run plain "$i" ;;
      dashboard)
        dashboard_loop & scraper=$!
        run dashboard "$i"
        kill "$scraper"; wait "$scraper" 2>/dev/null || true; scraper=""
        ;;
      *)
        path=/healthz; [ "$mode" = metrics ] && path=/metrics
        poll_loop "$path" & scraper=$!
        run "$mode" "$i"
        kill "$scraper"; wait "$scraper" 2>/dev/null || true; scraper=""
        ;;
    esac
    echo "round $i $mode done (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  done
done
sessions=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$api_port/metrics" \
  | awk '/^ebbsocks_sessions_started_total/ {print $2}')
echo "sessions served in all: $sessions"

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for mode in ("plain", "healthz", "metrics", "dashboard"):
    rates, p50, p99 = [], [], []
    for i in range(1, rounds + 1):
        case = json.load(open(f"{out}/{mode}-{i}/rate.json"))["cases"][0]
        rates.append(case["proxy"]["conn_per_s"])
        p50.append(case["proxy"]["p50_us"])
        p99.append(case["proxy"]["p99_us"])
    rows[mode] = (rates, statistics.median(rates), statistics.median(p50), statistics.median(p99))
    print(f"{mode:8} conn/s: {', '.join(f'{r:.0f}' for r in rates)}")
    print(f"{mode:8} median conn/s {rows[mode][1]:.0f}  median p50 {rows[mode][2]:.0f} us  median p99 {rows[mode][3]:.0f} us")
for poller in ("metrics", "dashboard"):
    for base in ("plain", "healthz"):
        print(f"ratio of medians, {poller} / {base}: {rows[poller][1] / rows[base][1]:.3f}")
PY
