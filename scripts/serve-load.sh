#!/usr/bin/env bash
# The serving load figures of docs/serve.md and the README, in one run on loopback:
#   1. one client sending n=16 OpenAI image requests one at a time (the sequential throughput),
#   2. 32 concurrent clients sending n=1 (dynamic batching merges them),
#   3. 50 clients of mixed valid and invalid traffic with an API key for 60 s, server RSS sampled.
# Usage: scripts/serve-load.sh HYPERNET_DIR [OUT_DIR]   (builds the binary and loadgen first)
set -euo pipefail
cd "$(dirname "$0")/.."
HN=${1:?usage: scripts/serve-load.sh HYPERNET_DIR [OUT_DIR]}
OUT=${2:-/tmp/serve-load}
mkdir -p "$OUT"
go build -o "$OUT/hypernoise" ./cmd/hypernoise
go build -o "$OUT/loadgen" ./serve/loadgen
KEY=load-test-key-$$
printf '%s\n' "$KEY" > "$OUT/keys"
ADDR=127.0.0.1:18093
# The server runs directly (not under /usr/bin/time, which would not pass SIGTERM on and would leave
# it running, holding any lock the caller took); loadgen samples its memory from /proc.
"$OUT/hypernoise" serve --addr "$ADDR" --hypernet "$HN" --api-key-file "$OUT/keys" --log off \
  > "$OUT/serve.out" 2> "$OUT/serve.err" &
PID=$!
trap 'kill $PID 2> /dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$ADDR/healthz" > /dev/null && break; sleep 0.2; done
"$OUT/loadgen" -url "http://$ADDR" -key "$KEY" -mode images -clients 1 -n 16 -duration 20s -json > "$OUT/seq16.json"
"$OUT/loadgen" -url "http://$ADDR" -key "$KEY" -mode images -clients 32 -n 1 -duration 20s -json > "$OUT/c32n1.json"
"$OUT/loadgen" -url "http://$ADDR" -key "$KEY" -clients 50 -duration 60s -pid "$PID" -json > "$OUT/mix50.json"
kill -TERM $PID; wait $PID || true
trap - EXIT
for f in seq16 c32n1 mix50; do echo "$f: $(cat "$OUT/$f.json")"; done
