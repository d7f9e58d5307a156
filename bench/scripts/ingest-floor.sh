#!/usr/bin/env bash
# The least PostgreSQL work any RecordEvents keeping its guarantees could do, measured
# by pgbench against the raw-row INSERT that `rapport-bench engagement` uses as its
# baseline (docs/benchmarks.md, "The floor of ingestion"). Three scripts, each one
# statement of N generated rows into the service's real tables:
#   raw    the raw rows into activity_events (the baseline's work);
#   dedup  the same rows and their dedup records (activity_event_ids) together;
#   days   dedup, and each (customer, day) row of activity_days upserted: one roll-up.
# Rows per second and the ratio to `raw` of the same round, for N = 100 and 1 000.
#
#   cargo build --release --workspace
#   bash bench/scripts/ingest-floor.sh [rounds=3] [seconds=10]
#
# It makes the database rapport_bench_floor on the server of ADMIN_URL (default
# postgres://postgres@127.0.0.1:5432/postgres), migrates it with target/release/rapport
# (RAPPORT_BIN to override) and drops it at the end.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
rounds=${1:-3}
seconds=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
admin=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=rapport_bench_floor
url=${admin%/*}/$db
bin=${RAPPORT_BIN:-$here/../../target/release/rapport}
psql "$admin" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db"' EXIT
DATABASE_URL=$url RAPPORT_LOG_LEVEL=warn "$bin" migrate >/dev/null
work=$(mktemp -d)
for n in 100 1000; do
  for s in raw dedup days; do
    sed "s/generate_series(1,100)/generate_series(1,$n)/" "$here/ingest-floor/$s.sql" >"$work/$s-$n.sql"
  done
done
echo "round rows script rows/s ratio-to-raw"
for round in $(seq "$rounds"); do
  for n in 100 1000; do
    raw=
    for s in raw dedup days; do
      psql "$url" -qc CHECKPOINT
      tps=$(pgbench "$url" -n -M prepared -c 8 -j 2 -T "$seconds" -f "$work/$s-$n.sql" 2>/dev/null |
        awk '/^tps/ {print $3; exit}')
      rate=$(awk -v t="$tps" -v n="$n" 'BEGIN {printf "%.0f", t * n}')
      raw=${raw:-$rate}
      echo "$round $n $s $rate $(awk -v r="$rate" -v b="$raw" 'BEGIN {printf "%.2f", r / b}')"
    done
  done
done
rm -rf "$work"
