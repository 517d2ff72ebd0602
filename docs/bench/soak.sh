#!/usr/bin/env bash
# Soak: one release ebbsocks under repeated cycles of connection spikes,
# small pulses and bulk transfers (with a UDP run), for a set time. After
# every cycle the server's RSS is read once the load has stopped (lowest of
# three readings 1 s apart, after a settle). The figure that matters: RSS
# after the last cycle against RSS after the first.
#
#   cargo build --release -p ebbsocks -p pulse
#   docs/bench/soak.sh 1800 /tmp/soak      # seconds, output directory
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-1800}
out=${2:-/tmp/soak}
mkdir -p "$out"
port=${SOAK_PORT:-21180}
. docs/bench/lib.sh
start_ebbsocks "$out" "$port"
trap 'kill $server 2>/dev/null || true' EXIT
wait_listening "$out" 50

rss_kib() {
  local low=""
  for _ in 1 2 3; do
    local now
    now=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
    if [ -z "$low" ] || [ "$now" -lt "$low" ]; then low=$now; fi
    sleep 1
  done
  echo "$low"
}

echo "cycle,elapsed_s,rss_kib" > "$out/rss.csv"
echo "baseline: $(rss_kib) KiB" | tee "$out/summary.txt"
start=$(date +%s)
cycle=0
while [ $(( $(date +%s) - start )) -lt "$duration" ]; do
  cycle=$((cycle + 1))
  ./target/release/pulse spike --target "127.0.0.1:$port" --mode socks \
    --big 4000 --big-pulses 2 --big-gap 3 --small 500 --small-pulses 3 --small-gap 3 \
    --linger 2 --pid "$server" --out "$out/spike-$cycle" > "$out/spike-$cycle.txt" 2>&1 &
  spike=$!
  ./target/release/pulse throughput --proxy "127.0.0.1:$port" --streams 1,8 \
    --seconds 2 --rounds 1 --out "$out/tp-$cycle" > "$out/tp-$cycle.txt" 2>&1 || true
  ./target/release/pulse udp --proxy "127.0.0.1:$port" --concurrency 16 \
    --seconds 2 --rounds 1 > "$out/udp-$cycle.txt" 2>&1 || true
  wait "$spike" || echo "cycle $cycle: spike reported errors (see spike-$cycle.txt)"
  sleep 3
  rss=$(rss_kib)
  echo "$cycle,$(( $(date +%s) - start )),$rss" | tee -a "$out/rss.csv"
done
first=$(sed -n 2p "$out/rss.csv" | cut -d, -f3)
last=$(tail -1 "$out/rss.csv" | cut -d, -f3)
echo "cycles: $cycle; RSS after the first: $first KiB; after the last: $last KiB; difference: $((last - first)) KiB" \
  | tee -a "$out/summary.txt"
