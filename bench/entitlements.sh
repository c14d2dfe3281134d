#!/usr/bin/env bash
# Entitlements benchmark: builds N subscriptions with bench/billing_gen.sql (bulk) in a fresh
# database of the server that PG* variables point at (the extension installed there), gives
# the benchmark plans features, rebuilds every account's entitlements, and times has_access()
# and entitlement_limit() called M times in one session (a PL/pgSQL loop in one backend: the
# cost of the call, no network) against a primary-key lookup of one row (accounts by id)
# timed the same way in the same run (ratio).  Then the same through the client protocol:
# pgbench, one client, prepared statements, SELECT has_access(...) vs SELECT of one account
# by id.  Prints the tables; drops the database at the end.  Not a test.
#
#   PGHOST=/tmp PGPORT=5432 bash bench/entitlements.sh [N [M [RUNS]]]
#       N subscriptions (default 100000), M calls per timed run (default 200000),
#       best of RUNS timed runs after a warm-up (default 3)
set -eu
N=${1:-100000}
M=${2:-200000}
RUNS=${3:-3}
DB=subbilling_bench_entitlements
cd "$(dirname "$0")/.."
psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -qX -d $DB -c 'CREATE EXTENSION subbilling CASCADE' 2>/dev/null
start=$SECONDS
psql -qX -d $DB -v n="$N" -f bench/billing_gen.sql >/dev/null
echo "generated N = $N subscriptions in $((SECONDS - start)) s"
psql -X -d $DB -v m="$M" -v runs="$RUNS" -f bench/entitlements.sql
if command -v pgbench >/dev/null 2>&1; then
    max=$(psql -qAtX -d $DB -c 'SELECT max(id) FROM subbilling.accounts')
    for case in "has_access:SELECT subbilling.has_access(:a, 'storage');" \
                "pk_lookup:SELECT true FROM subbilling.accounts WHERE id = :a;"; do
        name=${case%%:*}
        printf '\\set a random(1, %s)\n%s\n' "$max" "${case#*:}" >"/tmp/entitlements_bench_$name.sql"
        tps=$(pgbench -n -M prepared -c 1 -T 10 -f "/tmp/entitlements_bench_$name.sql" $DB 2>/dev/null \
              | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "pgbench, one client, prepared: $name $tps statements per second"
        rm -f "/tmp/entitlements_bench_$name.sql"
    done
fi
echo "$((SECONDS - start)) s in all"
psql -qX -d postgres -c "DROP DATABASE $DB"
