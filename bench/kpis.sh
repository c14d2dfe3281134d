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
set -eu
N=${1:-100000}
RUNS=${2:-3}
DB=subbilling_bench_kpis
cd "$(dirname "$0")/.."
psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -qX -d $DB -c 'CREATE EXTENSION subbilling CASCADE' 2>/dev/null
start=$SECONDS
psql -X -d $DB -v n="$N" -v runs="$RUNS" -v skip="${SKIP:-^$}" -f bench/kpis.sql
echo "N = $N subscriptions; $((SECONDS - start)) s in all"
psql -qX -d postgres -c "DROP DATABASE $DB"
