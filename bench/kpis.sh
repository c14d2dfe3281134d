#!/usr/bin/env bash
# KPI views benchmark: builds N subscriptions with 24 months of history (items, plan changes,
# cancellations, pauses, discounts, monthly invoices and lines, open items, usage) in a fresh
# database of the server that PG* variables point at (the extension installed there), and
# times each KPI view's current month and its 24-month history against plain count(*) scans
# of the tables it reads, measured in the same run (ratio).  Prints the table; drops the
# database at the end.  Not a test.
#
#   PGHOST=/tmp PGPORT=5432 bash bench/kpis.sh [N [RUNS]]   N subscriptions (default 100000),
#                                                           best of RUNS timed runs after a warm-up (default 3)
#   SKIP=revenue_recognition bash bench/kpis.sh ...          leaves out the views whose names match the regex
#   KEEP=1 bash bench/kpis.sh ...     keeps the database (building 1,000,000 subscriptions takes long)
#   REUSE=1 bash bench/kpis.sh ...    times on the kept database instead of building a new one
#   DATA_ONLY=1 bash bench/kpis.sh .. builds the data and keeps it, no timing
#   DAYS=1 bash bench/kpis.sh ...     after the timing, bench/kpis_days.sql: the MRR views on the day after
#                                     the snapshot (read modes exact and snapshot), the daily refresh,
#                                     ar_aging against its previous formula
#   DB=name                           the database (default subbilling_bench_kpis)
#   REFRESH=0 bash bench/kpis.sh ...  no full refresh of the snapshots before timing (with SKIP for
#                                     the MRR views and revenue_recognition, which then compute live)
set -eu
N=${1:-100000}
RUNS=${2:-3}
DB=${DB:-subbilling_bench_kpis}
cd "$(dirname "$0")/.."
start=$SECONDS
if [ -z "${REUSE:-}" ]; then
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  psql -qX -d $DB -c 'CREATE EXTENSION subbilling CASCADE' 2>/dev/null
  psql -X -d $DB -v n="$N" -f bench/kpis_data.sql
  echo "data: $((SECONDS - start)) s"
fi
if [ -z "${DATA_ONLY:-}" ]; then
  N=$(psql -qXAt -d $DB -c 'SELECT count(*) FROM subbilling.subscriptions')
  psql -X -d $DB -v n="$N" -v runs="$RUNS" -v skip="${SKIP:-^$}" -v refresh="${REFRESH:-1}" -f bench/kpis.sql
  if [ -n "${DAYS:-}" ]; then
    psql -X -d $DB -v runs="$RUNS" -f bench/kpis_days.sql
  fi
  echo "N = $N subscriptions; $((SECONDS - start)) s in all"
fi
if [ -z "${KEEP:-}${REUSE:-}${DATA_ONLY:-}" ]; then
  psql -qX -d postgres -c "DROP DATABASE $DB"
fi
