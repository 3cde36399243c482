#!/usr/bin/env bash
# Quick load figures for the demo workflows: builds release binaries, starts `hookflow serve --demo`
# on a free loopback port with a fresh data directory, loads the sync and the async webhook, stops.
#   bench/quick.sh [CONNECTIONS] [SECONDS]      (defaults: 32 connections, 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-32}
seconds=${2:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hookflow/target}"
cargo build --release --quiet -p hookflow -p hookflow-bench
bin="$CARGO_TARGET_DIR/release"
data=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
"$bin/hookflow" serve --demo --listen "127.0.0.1:$port" --data "$data" >/dev/null 2>"$data/serve.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $connections connections, $seconds s each"
printf 'sync  demo-payment        '
"$bin/load" "http://127.0.0.1:$port/api/webhook:trigger/demo-payment" "$connections" "$seconds"
printf 'async demo-payment-async  '
"$bin/load" "http://127.0.0.1:$port/api/webhook:trigger/demo-payment-async" "$connections" "$seconds"
