#!/usr/bin/env bash
# Cost of a /metrics scraper on the connection rate: one release ebbsocks
# with the API on (and a token), `pulse rate` at concurrency 64, runs
# alternating between "a scraper polls /metrics every INTERVAL seconds" and
# "nothing scrapes", with the order flipped in each pair. Prints every run's
# conn/s and the medians; the ratio that matters is scraped / unscraped.
#
#   cargo build --release -p ebbsocks -p pulse
#   docs/bench/metrics_scrape.sh 8 0.5 /tmp/metrics_bench   # pairs, interval, output
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${1:-8}
interval=${2:-0.5}
out=${3:-/tmp/metrics_bench}
port=${BENCH_PORT:-21280}
api_port=${BENCH_API_PORT:-21281}
token=bench-token
mkdir -p "$out"
cat > "$out/ebbsocks.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
[logging]
access_log = false
[api]
enabled = true
listen = "127.0.0.1:$api_port"
token = "$token"
TOML
./target/release/ebbsocks --config "$out/ebbsocks.toml" 2> "$out/server.log" &
server=$!
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q "SOCKS proxy listening" "$out/server.log" && break
  sleep 0.1
done

# A scrape that fails (wrong token, server gone) stops the benchmark: the
# "scraped" runs must really have been scraped.
scrape_loop() {
  while true; do
    curl -sf -o /dev/null -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$api_port/metrics" || { echo "scrape failed" >&2; exit 1; }
    sleep "$interval"
  done
}

run() { # label, run number
  local dir="$out/$1-$2"
  ./target/release/pulse rate --proxy "127.0.0.1:$port" --concurrency 64 --rounds 3 \
    --out "$dir" > "$dir.txt"
}

for i in $(seq "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order="scraped plain"; else order="plain scraped"; fi
  for mode in $order; do
    if [ "$mode" = scraped ]; then
      scrape_loop & scraper=$!
      run scraped "$i"
      kill "$scraper"; wait "$scraper" 2>/dev/null || true; scraper=""
    else
      run plain "$i"
    fi
    echo "pair $i $mode done (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  done
done
sessions=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$api_port/metrics" \
  | awk '/^ebbsocks_sessions_started_total/ {print $2}')
echo "sessions served in all: $sessions"

python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
rows = {}
for mode in ("plain", "scraped"):
    rates, p50, p99 = [], [], []
    for i in range(1, pairs + 1):
        case = json.load(open(f"{out}/{mode}-{i}/rate.json"))["cases"][0]
        rates.append(case["proxy"]["conn_per_s"])
        p50.append(case["proxy"]["p50_us"])
        p99.append(case["proxy"]["p99_us"])
    rows[mode] = (rates, statistics.median(rates), statistics.median(p50), statistics.median(p99))
    print(f"{mode:8} conn/s: {', '.join(f'{r:.0f}' for r in rates)}")
    print(f"{mode:8} median conn/s {rows[mode][1]:.0f}  median p50 {rows[mode][2]:.0f} us  median p99 {rows[mode][3]:.0f} us")
print(f"ratio of medians, scraped / plain: {rows['scraped'][1] / rows['plain'][1]:.3f}")
PY
