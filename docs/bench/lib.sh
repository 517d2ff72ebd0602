# Sourced by the benchmark scripts here (after they `cd` to the repository
# root): starts one release ebbsocks and waits until it listens.

# start_ebbsocks OUT PORT [EXTRA_TOML]: writes OUT/ebbsocks.toml (SOCKS on
# 127.0.0.1:PORT, no access log, then EXTRA_TOML), starts the server with
# its log in OUT/server.log and sets `server` to its pid. The caller sets
# its own trap to stop it.
start_ebbsocks() {
  local out=$1 port=$2 extra=${3:-}
  cat > "$out/ebbsocks.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
[logging]
access_log = false
$extra
TOML
  ./target/release/ebbsocks --config "$out/ebbsocks.toml" 2> "$out/server.log" &
  server=$!
}

# wait_listening OUT [TRIES]: polls OUT/server.log every 0.1 s until the
# server says it listens, at most TRIES times (default 100).
wait_listening() {
  local out=$1 tries=${2:-100}
  for _ in $(seq "$tries"); do
    grep -q "SOCKS proxy listening" "$out/server.log" && break
    sleep 0.1
  done
}
