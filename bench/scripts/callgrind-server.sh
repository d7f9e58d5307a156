#!/usr/bin/env bash
# Instructions the server spends per call, counted by valgrind's callgrind: unlike
# seconds, the same on a busy machine as on a quiet one (docs/benchmarks.md).
#
#   cargo build --release --workspace
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/rapport_bench bash bench/scripts/callgrind-server.sh
#   callgrind_annotate --inclusive=yes /tmp/rapport-callgrind.out | less
#
# It starts `rapport serve` under callgrind on port 47001, creates a tenant, drives it
# with `rapport-bench records --server` (RecordResponse, then GetSurvey) at concurrency
# C (16) for D (20) seconds each, stops the server and leaves the profile in OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database of its own}"
OUT=${OUT:-/tmp/rapport-callgrind.out}
BIN=target/release/rapport
BENCH=target/release/rapport-bench
# The bench's own sealing key unless the environment names one (bench/src/harness/server.rs).
export RAPPORT_SECRET_KEYS=${RAPPORT_SECRET_KEYS:-bench:cmFwcG9ydC1iZW5jaC1rZXktbm90LWZvci1yZWFsISE=}
export DATABASE_URL
$BIN migrate >/dev/null
KEY=$($BIN tenant create "callgrind-$(date +%s%N)" | sed -n 's/^secret key (shown once): //p')
RAPPORT_GRPC_ADDR=127.0.0.1:47001 RAPPORT_HTTP_ADDR=127.0.0.1:0 RAPPORT_ADMIN_ADDR=127.0.0.1:0 \
  RAPPORT_BOOTSTRAP_TENANT=false RAPPORT_LOG_LEVEL=warn \
  valgrind --tool=callgrind --callgrind-out-file="$OUT" $BIN serve &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if ss -ltn | grep -q ':47001 '; then break; fi
  sleep 1
done
RAPPORT_BENCH_KEY=$KEY $BENCH records --server 127.0.0.1:47001 --concurrency "${C:-16}" \
  --duration-seconds "${D:-20}" --warmup-seconds 2
kill -INT $SERVER
wait $SERVER || true
trap - EXIT
echo "profile: $OUT"
