#!/usr/bin/env bash
# Where PostgreSQL spends one phase of a bench run, statement by statement: calls, total
# and mean execution time and rows, from pg_stat_statements (docs/benchmarks.md). It
# runs the bench, resets the statistics when the bench announces START on stderr,
# prints them when it announces STOP, and lets the run finish.
#
#   cargo build --release --workspace
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/rapport_bench_statements \
#     bash bench/scripts/pg-statements.sh 'batches of 100,' 'batches of 1000,' \
#     engagement --seconds 8 --history-events 200 --customers 200 --samples 3
#
# The start and stop patterns are the bench's own progress lines ("c=64: RecordResponse
# over gRPC", "c=64: GetSurvey over gRPC", "RecordEvents, batches of 100,", …).
# pg_stat_statements must be loaded by the server, which takes a restart:
#
#   psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
#   pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main restart
#
# and `ALTER SYSTEM RESET shared_preload_libraries` (and a restart) afterwards: measure
# the reported figures without it. ADMIN_URL (default: the postgres database on the same
# server) is where the extension is created and read; the statistics are the cluster's.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database of its own}"
START=${1:?the progress line that starts the phase}
STOP=${2:?the progress line that ends it}
shift 2
ADMIN_URL=${ADMIN_URL:-${DATABASE_URL%/*}/postgres}
psql "$ADMIN_URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
target/release/rapport-bench "$@" 2>"$LOG" &
BENCH=$!
wait_for() {
  until grep -qF -- "$1" "$LOG"; do
    kill -0 $BENCH 2>/dev/null || { echo "the bench ended before printing: $1" >&2; cat "$LOG" >&2; exit 1; }
    sleep 0.2
  done
}
wait_for "$START"
psql "$ADMIN_URL" -qc "SELECT pg_stat_statements_reset()" >/dev/null
wait_for "$STOP"
psql "$ADMIN_URL" -c "SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
    round((total_exec_time / calls)::numeric, 3) AS mean_ms, rows,
    left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS statement
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 20"
psql "$ADMIN_URL" -c "SELECT count(*) AS distinct_texts, sum(calls) AS calls FROM pg_stat_statements"
wait $BENCH
