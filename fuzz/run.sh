#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the
# other, each a single libFuzzer process (-jobs=1), and prints executions
# and crashes per target. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); see docs/fuzzing.md.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 60 s, every target
#
# Generated corpora go to fuzz/corpus/TARGET (not kept in git), crashes to
# fuzz/artifacts/TARGET, libFuzzer's output to fuzz/logs/TARGET.log. The
# committed seeds in fuzz/seeds/TARGET start each run. Exits non-zero if any
# target crashed.
set -euo pipefail

secs=${1:-60}
shift || true
cd "$(dirname "$0")"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# No sanitizer: the parsers are safe Rust (no `unsafe`), so ASan would only
# slow the search; panics, overflow checks and debug assertions still stop it.
cargo +nightly fuzz build --sanitizer none >/dev/null 2>&1 \
    || cargo +nightly fuzz build --sanitizer none
bin=target/x86_64-unknown-linux-gnu/release

mkdir -p logs
printf '%-18s %8s %14s %10s %8s\n' target seconds executions exec/s crashes
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "logs/$t.jobs"
    before=$(find "artifacts/$t" -type f | wc -l)
    # -jobs=1 runs the fuzzer in one child process whose output libFuzzer
    # writes to fuzz-0.log in the working directory.
    status=0
    (cd "logs/$t.jobs" && "../../$bin/$t" -jobs=1 -max_total_time="$secs" \
        -max_len=640 -print_final_stats=1 \
        -artifact_prefix="../../artifacts/$t/" \
        "../../corpus/$t" "../../seeds/$t" >/dev/null 2>&1) || status=$?
    mv "logs/$t.jobs/fuzz-0.log" "logs/$t.log"
    rmdir "logs/$t.jobs"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    # A crash ends the run before the final stats: take the last status line.
    if [ -z "$runs" ]; then
        runs=$(grep -o '^#[0-9]*' "logs/$t.log" | tail -1 | tr -d '#')
    fi
    crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # the process failed without leaving an artifact
    fi
    [ "$crashes" -eq 0 ] || failed=1
    printf '%-18s %8s %14s %10s %8s\n' "$t" "$secs" "${runs:-?}" \
        "$(( ${runs:-0} / secs ))" "$crashes"
done
[ "$failed" -eq 0 ] || echo "crashes: see fuzz/artifacts/ and fuzz/logs/" >&2
exit "$failed"
