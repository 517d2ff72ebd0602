#!/usr/bin/env bash
# Short sessions, ebbsocks against microsocks side by side: sessions per
# second and p50 latency from `pulse rate` (greeting, CONNECT to pulse's echo
# server, 32-byte echo, close) at concurrency 1 and 64, and the server's
# system calls per session counted by `strace -c -f` over a fixed number of
# sessions at concurrency 1.
#
# Rounds alternate which server goes first; the table gives medians over
# rounds and the ratio of the medians. The syscall count does not depend on
# the machine's load (only on what the server does per session), the rates
# do: read the ratios.
#
#   cargo build --release -p ebbsocks -p pulse
#   docs/bench/short_sessions.sh [OUT_DIR]
#
# Environment: EBBSOCKS (binary, default target/release/ebbsocks), PULSE,
# EBBSOCKS_CONFIG (a config file; default: the embedded default config, access
# log on, with the listen address changed), ROUNDS (pairs, default 6),
# SECONDS_PER_ROUND (3), SYSCALL_SESSIONS (2000), MICROSOCKS (binary).
# ROUNDS=0 counts system calls only. EBBSOCKS_ENV: NAME=VALUE words for the
# server's environment only (e.g. TOKIO_WORKER_THREADS=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/short_sessions}
ebbsocks=${EBBSOCKS:-target/release/ebbsocks}
pulse=${PULSE:-target/release/pulse}
microsocks=${MICROSOCKS:-microsocks}
rounds=${ROUNDS:-6}
seconds=${SECONDS_PER_ROUND:-3}
syscall_sessions=${SYSCALL_SESSIONS:-2000}
for tool in "$ebbsocks" "$pulse" "$microsocks" strace python3; do
  command -v "$tool" > /dev/null || { echo "missing: $tool" >&2; exit 1; }
done
mkdir -p "$out"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
eport=$(free_port)
mport=$(free_port)
if [ -n "${EBBSOCKS_CONFIG:-}" ]; then
  sed "s/^listen = \"127.0.0.1:1080\"/listen = \"127.0.0.1:$eport\"/" "$EBBSOCKS_CONFIG" > "$out/ebbsocks.toml"
else
  "$ebbsocks" default-config | sed "s/^listen = \"127.0.0.1:1080\"/listen = \"127.0.0.1:$eport\"/" > "$out/ebbsocks.toml"
fi
grep -q "listen = \"127.0.0.1:$eport\"" "$out/ebbsocks.toml" || { echo "could not set the listen address" >&2; exit 1; }

# shellcheck disable=SC2086 # EBBSOCKS_ENV is a list of NAME=VALUE words
env ${EBBSOCKS_ENV:-} "$ebbsocks" --config "$out/ebbsocks.toml" 2> "$out/ebbsocks.log" &
epid=$!
"$microsocks" -i 127.0.0.1 -p "$mport" > "$out/microsocks.log" 2>&1 &
mpid=$!
trap 'kill $epid $mpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "SOCKS proxy listening" "$out/ebbsocks.log" && break
  sleep 0.1
done
grep -q "SOCKS proxy listening" "$out/ebbsocks.log" || { echo "ebbsocks did not start" >&2; exit 1; }
python3 - "$mport" <<'PY'
import socket, sys, time
deadline = time.time() + 10
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("microsocks did not start")
        time.sleep(0.1)
PY

run_rate() { # name port round
  "$pulse" rate --proxy "127.0.0.1:$2" --concurrency 1,64 --rounds 1 \
    --seconds "$seconds" --out "$out/rate-$1-$3" > "$out/rate-$1-$3.txt" 2>&1
}
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    run_rate ebbsocks "$eport" "$r"; run_rate microsocks "$mport" "$r"
  else
    run_rate microsocks "$mport" "$r"; run_rate ebbsocks "$eport" "$r"
  fi
  echo "round $r/$rounds done (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done

count_syscalls() { # name pid port
  strace -c -f -q -p "$2" -o "$out/strace-$1.txt" &
  local tracer=$!
  # strace prints nothing when it has attached; give it a moment, then make
  # sure the first session is seen by counting only the fixed batch below.
  sleep 1
  "$pulse" rate --proxy "127.0.0.1:$3" --concurrency 1 --rounds 1 \
    --count "$syscall_sessions" --timeout 30 > "$out/strace-rate-$1.txt" 2>&1
  sleep 0.5
  kill -INT "$tracer"
  wait "$tracer" || true
}
count_syscalls ebbsocks "$epid" "$eport"
count_syscalls microsocks "$mpid" "$mport"

python3 - "$out" "$rounds" "$syscall_sessions" <<'PY'
import json, re, statistics, sys
out, rounds, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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
e, m = medians("ebbsocks"), medians("microsocks")
ec, erows = syscalls("ebbsocks")
mc, mrows = syscalls("microsocks")
print(f"short sessions, {rounds} alternating rounds per server, medians; syscalls over {sessions} sessions at concurrency 1")
print("| figure | ebbsocks | microsocks | ratio |")
print("|---|---|---|---|")
for c in sorted(set(e) | set(m)):
    er, ep = e.get(c, (None, None))
    mr, mp = m.get(c, (None, None))
    ratio = f"{er / mr:.2f}x" if er and mr else "-"
    print(f"| sessions/s, concurrency {c} | {er:.0f} | {mr:.0f} | {ratio} |")
    pr = f"{ep / mp:.2f}x" if ep and mp else "-"
    print(f"| p50 µs, concurrency {c} | {ep:.0f} | {mp:.0f} | {pr} |")
per = lambda c: f"{c / sessions:.1f}" if c else "-"
print(f"| syscalls/session (strace -c -f) | {per(ec)} | {per(mc)} | |")
print()
print("per session, by call:")
for name in sorted(set(erows) | set(mrows), key=lambda n: -(erows.get(n, 0) + mrows.get(n, 0))):
    print(f"  {name:<16} ebbsocks {erows.get(name, 0) / sessions:6.2f}   microsocks {mrows.get(name, 0) / sessions:6.2f}")
PY
