#!/usr/bin/env bash
# Short sessions, ebbsocks against microsocks side by side: sessions per
# second and p50 latency from `pulse rate` (greeting, CONNECT to pulse's echo
# server, 32-byte echo, close) at concurrency 1 and 64, and each server's
# system calls per session counted by `strace -c -f` over a fixed number of
# sessions at concurrency 1.
#
# Rounds rotate which server goes first; the table gives medians over
# rounds and the ratio of the medians to microsocks'. The syscall count does
# not depend on the machine's load (only on what the server does per
# session); the rates do, so read the ratios.
#
#   cargo build --release -p ebbsocks -p pulse
#   docs/bench/short_sessions.sh [OUT_DIR]
#
# Environment: EBBSOCKS (binary, default target/release/ebbsocks),
# EBBSOCKS_BEFORE (a second ebbsocks binary, e.g. an older build, measured in
# the same rotation as "before"), PULSE, MICROSOCKS, EBBSOCKS_CONFIG (a config
# file whose listen line is `listen = "127.0.0.1:1080"`; default: the embedded
# default config, access log on), EBBSOCKS_ENV (NAME=VALUE words for the
# ebbsocks processes only, e.g. TOKIO_WORKER_THREADS=1), ROUNDS (default 6;
# 0 counts system calls only), SECONDS_PER_ROUND (3), SYSCALL_SESSIONS (2000),
# CPU_SESSIONS (20000: sessions at concurrency 64 over which each server's
# CPU time, and pulse's, is read).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/short_sessions}
pulse=${PULSE:-target/release/pulse}
microsocks=${MICROSOCKS:-microsocks}
rounds=${ROUNDS:-6}
seconds=${SECONDS_PER_ROUND:-3}
syscall_sessions=${SYSCALL_SESSIONS:-2000}
declare -A binary
binary[ebbsocks]=${EBBSOCKS:-target/release/ebbsocks}
names=(ebbsocks)
if [ -n "${EBBSOCKS_BEFORE:-}" ]; then
  binary[before]=$EBBSOCKS_BEFORE
  names+=(before)
fi
names+=(microsocks)
for tool in "${binary[@]}" "$pulse" "$microsocks" strace python3; do
  command -v "$tool" > /dev/null || { echo "missing: $tool" >&2; exit 1; }
done
mkdir -p "$out"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.time() + 10
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"nothing listens on port {sys.argv[1]}")
        time.sleep(0.1)
PY
}

declare -A port pid
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for name in "${names[@]}"; do
  port[$name]=$(free_port)
  if [ "$name" = microsocks ]; then
    "$microsocks" -i 127.0.0.1 -p "${port[$name]}" > "$out/$name.log" 2>&1 &
  else
    listen="s/^listen = \"127.0.0.1:1080\"/listen = \"127.0.0.1:${port[$name]}\"/"
    if [ -n "${EBBSOCKS_CONFIG:-}" ]; then
      sed "$listen" "$EBBSOCKS_CONFIG" > "$out/$name.toml"
    else
      "${binary[$name]}" default-config | sed "$listen" > "$out/$name.toml"
    fi
    grep -q "127.0.0.1:${port[$name]}" "$out/$name.toml" || { echo "could not set the listen address" >&2; exit 1; }
    # shellcheck disable=SC2086 # EBBSOCKS_ENV is a list of NAME=VALUE words
    env ${EBBSOCKS_ENV:-} "${binary[$name]}" --config "$out/$name.toml" 2> "$out/$name.log" &
  fi
  pid[$name]=$!
  pids+=("$!")
  wait_port "${port[$name]}"
done

for r in $(seq "$rounds"); do
  # Rotate the order: each server goes first as often as the others.
  n=${#names[@]}
  for i in $(seq 0 $((n - 1))); do
    name=${names[$(( (i + r) % n ))]}
    "$pulse" rate --proxy "127.0.0.1:${port[$name]}" --concurrency 1,64 --rounds 1 \
      --seconds "$seconds" --out "$out/rate-$name-$r" > "$out/rate-$name-$r.txt" 2>&1
  done
  echo "round $r/$rounds done (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done

for name in "${names[@]}"; do
  strace -c -f -q -p "${pid[$name]}" -o "$out/strace-$name.txt" &
  tracer=$!
  # strace says nothing once attached; the pause covers attaching, and only
  # the fixed batch of sessions below reaches the server meanwhile.
  sleep 1
  "$pulse" rate --proxy "127.0.0.1:${port[$name]}" --concurrency 1 --rounds 1 \
    --count "$syscall_sessions" --timeout 30 > "$out/strace-rate-$name.txt" 2>&1
  sleep 0.5
  kill -INT "$tracer"
  wait "$tracer" || true
done

# CPU per session at concurrency 64: the server's user+system time (from
# /proc/PID/stat) and the load generator's, over a fixed number of sessions.
# With every core busy, sessions per second can only be as far ahead as the
# CPU a session costs (server plus client) is below the peer's.
cpu_sessions=${CPU_SESSIONS:-20000}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for name in "${names[@]}"; do
  before=$(ticks "${pid[$name]}")
  python3 - "$out/cpu-$name.txt" "$pulse" rate --proxy "127.0.0.1:${port[$name]}" --concurrency 64 \
    --rounds 1 --count "$cpu_sessions" --timeout 60 <<'PY'
import resource, subprocess, sys
with open(sys.argv[1], "w") as log:
    subprocess.run(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT, check=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"client_cpu_s {used.ru_utime + used.ru_stime:.3f}", file=log)
PY
  after=$(ticks "${pid[$name]}")
  echo "server_ticks $((after - before)) $(getconf CLK_TCK)" >> "$out/cpu-$name.txt"
done

python3 - "$out" "$rounds" "$syscall_sessions" "${names[@]}" <<'PY'
import json, re, statistics, sys
out, rounds, sessions, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def medians(name):
    per = {}
    for r in range(1, rounds + 1):
        rep = json.load(open(f"{out}/rate-{name}-{r}/rate.json"))
        for case in rep["cases"]:
            p = case["proxy"]
            if p["conn_per_s"] is not None:
                per.setdefault(case["concurrency"], []).append((p["conn_per_s"], p["p50_us"]))
    return {c: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
            for c, vals in per.items()}
def syscalls(name):
    # Rows: % time, seconds, usecs/call, calls, [errors], name.
    rows = {}
    for line in open(f"{out}/strace-{name}.txt"):
        t = line.split()
        if len(t) >= 5 and re.fullmatch(r"[\d.]+", t[0]) and t[3].isdigit():
            rows[t[-1]] = int(t[3])
    return rows.pop("total", None), rows
rate = {n: medians(n) for n in names}
calls = {n: syscalls(n) for n in names}
peer = "microsocks"
print(f"short sessions: {rounds} rotating rounds per server, medians; "
      f"syscalls over {sessions} sessions at concurrency 1")
print("| figure | " + " | ".join(names) + " |")
print("|---" * (len(names) + 1) + "|")
def cell(v, ref, fmt):
    if v is None:
        return "-"
    if ref and v and ref is not v:
        return f"{fmt.format(v)} ({v / ref:.2f}x)"
    return fmt.format(v)
for c in sorted({c for n in names for c in rate[n]}):
    for i, label in ((0, "sessions/s"), (1, "p50 µs")):
        ref = rate[peer].get(c, (None, None))[i]
        vals = [rate[n].get(c, (None, None))[i] for n in names]
        print(f"| {label}, concurrency {c} | " + " | ".join(
            cell(v, ref if n != peer else None, "{:.0f}") for n, v in zip(names, vals)) + " |")
cpu_sessions = int(__import__("os").environ.get("CPU_SESSIONS", "20000"))
def cpu(name):
    server = client = None
    for line in open(f"{out}/cpu-{name}.txt"):
        t = line.split()
        if t[:1] == ["server_ticks"]:
            server = int(t[1]) / int(t[2])
        if t[:1] == ["client_cpu_s"]:
            client = float(t[1])
    return server, client
cpus = {n: cpu(n) for n in names}
print("| server CPU µs/session, concurrency 64 | " + " | ".join(
    f"{cpus[n][0] / cpu_sessions * 1e6:.1f}" for n in names) + " |")
print("| pulse CPU µs/session, concurrency 64 | " + " | ".join(
    f"{cpus[n][1] / cpu_sessions * 1e6:.1f}" for n in names) + " |")
print("| syscalls/session | " + " | ".join(
    f"{calls[n][0] / sessions:.1f}" if calls[n][0] else "-" for n in names) + " |")
print("(ratios in brackets: to microsocks' median in the same rotation)")
print()
print("system calls per session, by call:")
every = sorted({k for n in names for k in calls[n][1]},
               key=lambda k: -sum(calls[n][1].get(k, 0) for n in names))
print(f"  {'call':<16}" + "".join(f"{n:>12}" for n in names))
for k in every:
    if any(calls[n][1].get(k, 0) / sessions >= 0.01 for n in names):
        print(f"  {k:<16}" + "".join(f"{calls[n][1].get(k, 0) / sessions:12.2f}" for n in names))
PY
