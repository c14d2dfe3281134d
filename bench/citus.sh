#!/usr/bin/env bash
# One billing cycle on a Citus cluster (a coordinator and two workers on this machine) against
# a single server, same data: prints both times and their ratio.  Runs only where citus is
# installed in the PostgreSQL of $PG_CONFIG (see docs/citus.md); says so and exits otherwise.
#
#   PG_CONFIG=/path/to/pg_config bash bench/citus.sh [SUBSCRIPTIONS]     (default 10000)
# Environment: CITUS_BENCH_PORT (first of four loopback ports, default 5650).
# The subscriptions: one per account, monthly, started 40 days ago, so that one cycle bills
# each once, made with subscribe() one call per account on the single server.  The cluster
# gets the same rows: with CITUS_BENCH_LOAD=copy (the default) the customer tables are copied
# from the single server into the distributed tables through the coordinator (COPY, in
# foreign-key order, and the coordinator's sequences set past the copied ids), so that 100k
# subscriptions load in minutes; with CITUS_BENCH_LOAD=api they are made with subscribe()
# through the coordinator too, as an application would (slow: a commit across nodes per
# account).  On one machine the cluster measures overhead, not scale.
set -u
cd "$(dirname "$0")/.."
N=${1:-10000}
PG_CONFIG=${PG_CONFIG:-pg_config}
LIB=$("$PG_CONFIG" --pkglibdir)
BIN=$("$PG_CONFIG" --bindir)
if [ ! -e "$LIB/citus.so" ]; then
    echo "bench/citus.sh: citus is not installed in $LIB; nothing to measure"
    exit 0
fi
P=${CITUS_BENCH_PORT:-5650}
SINGLE=$P; COORD=$((P + 1)); PORTS="$SINGLE $COORD $((P + 2)) $((P + 3))"
WORK=$(mktemp -d /tmp/subbilling-citus-bench.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK"
stop_all() {
    local p
    for p in $PORTS; do
        [ -d "$WORK/n$p" ] && as_pg "$BIN/pg_ctl" -D "$WORK/n$p" -m immediate stop >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap stop_all EXIT
for p in $PORTS; do
    as_pg "$BIN/initdb" -D "$WORK/n$p" -A trust -U postgres >/dev/null 2>&1 || { echo "initdb failed"; exit 1; }
    libs='citus,subbilling'; [ "$p" = "$SINGLE" ] && libs='subbilling'
    cat >>"$WORK/n$p/postgresql.conf" <<CONF
port = $p
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_preload_libraries = '$libs'
subbilling.worker_enabled = off
subbilling.notify = off
max_prepared_transactions = 100
fsync = off
CONF
    as_pg "$BIN/pg_ctl" -D "$WORK/n$p" -l "$WORK/n$p.log" -w start >/dev/null || { tail "$WORK/n$p.log"; exit 1; }
    "$BIN/createdb" -h "$WORK" -p "$p" -U postgres subbilling
done
q() { local p=$1; shift; "$BIN/psql" -X -h "$WORK" -p "$p" -U postgres -d subbilling -v ON_ERROR_STOP=1 -qAt "$@"; }

for p in $PORTS; do [ "$p" = "$SINGLE" ] || q "$p" -c "CREATE EXTENSION citus"; done
q "$COORD" -c "SELECT citus_set_coordinator_host('127.0.0.1', $COORD)" >/dev/null
q "$COORD" -c "SELECT citus_add_node('127.0.0.1', $((P + 2)))" -c "SELECT citus_add_node('127.0.0.1', $((P + 3)))" >/dev/null
q "$SINGLE" -c "CREATE EXTENSION subbilling CASCADE"
q "$COORD" -c "CREATE EXTENSION subbilling CASCADE" \
           -c 'ALTER DATABASE subbilling SET search_path = "$user", public, subbilling'
q "$COORD" -c "SELECT count(*) FROM subbilling.distribute(32)" >/dev/null 2>"$WORK/distribute.log" \
    || { cat "$WORK/distribute.log"; exit 1; }

catalog() {
    q "$1" -c "
        INSERT INTO subbilling.products (code, name, tax_rate) VALUES ('bench', 'Bench', 25);
        INSERT INTO subbilling.plans (code, product_id, name, billing_period, pricing_model, price)
        SELECT 'bench-monthly', id, 'Monthly', '1 month', 'flat', '99.00 SEK' FROM subbilling.products WHERE code = 'bench';"
}
load() {
    catalog "$1"
    q "$1" -c "
        INSERT INTO subbilling.accounts (name, country, currency)
        SELECT 'Customer ' || g, 'SE', 'SEK' FROM generate_series(1, $N) g;"
    # one transaction per account, as an application subscribes (on Citus a transaction that
    # subscribes accounts on several workers is refused)
    q "$1" -c "DO \$\$ DECLARE a bigint; BEGIN
            FOR a IN SELECT id FROM subbilling.accounts ORDER BY id LOOP
                PERFORM subbilling.subscribe(a, 'bench-monthly', 1, current_date - 40);
                COMMIT;
            END LOOP; END \$\$"
}
# the single server's customer rows into the cluster: every distributed table that holds rows,
# referenced tables first; then the coordinator's sequences past the copied ids
copy_load() {
    local t
    catalog "$COORD"
    for t in $(q "$SINGLE" -c "
        WITH RECURSIVE t AS (
            SELECT c.oid FROM pg_class c
             WHERE c.relkind = 'r' AND c.relnamespace IN ('subbilling'::regnamespace, 'subbilling_internal'::regnamespace)),
        d(oid, depth) AS (
            SELECT t.oid, 0 FROM t
            UNION ALL
            SELECT k.conrelid, d.depth + 1 FROM d JOIN pg_constraint k ON k.contype = 'f' AND k.confrelid = d.oid
                                                                    AND k.conrelid <> k.confrelid
             WHERE d.depth < 12)
        SELECT d.oid::regclass FROM d GROUP BY d.oid ORDER BY max(d.depth), 1"); do
        q "$COORD" -c "SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = '$t'::regclass AND partmethod = 'h')" \
            | grep -q t || continue
        [ "$(q "$SINGLE" -c "SELECT EXISTS (SELECT FROM $t)")" = "t" ] || continue
        q "$SINGLE" -c "COPY $t TO STDOUT" | q "$COORD" -c "COPY $t FROM STDIN" || { echo "copy of $t failed"; exit 1; }
    done
    q "$SINGLE" -c "SELECT format('SELECT setval(%L, %s, %L);', c.oid::regclass, s.last_value, s.is_called)
                      FROM pg_class c, LATERAL (SELECT * FROM pg_sequence_last_value(c.oid) v(last_value)) x,
                           LATERAL (SELECT coalesce(x.last_value, 1) AS last_value, x.last_value IS NOT NULL AS is_called) s
                     WHERE c.relkind = 'S' AND c.relnamespace IN ('subbilling'::regnamespace, 'subbilling_internal'::regnamespace)" \
        | q "$COORD" >/dev/null
}
cycle() {   # prints: seconds invoices errors
    local t0 t1
    t0=$(date +%s.%N)
    q "$1" -c "SELECT subbilling.run_billing(now())" >/dev/null
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc) $(q "$1" -c "SELECT count(*) FROM subbilling.invoices") $(q "$1" -c "SELECT count(*) FROM subbilling.billing_errors")"
}
echo "== $N subscriptions, one billing cycle (run_billing), same machine"
load "$SINGLE"
[ "${CITUS_BENCH_LOAD:-copy}" = api ] || copy_load     # before billing: the same rows, not yet billed
read -r ts is es < <(cycle "$SINGLE")
echo "single server:                 ${ts}s, $is invoices, $es billing errors"
[ "${CITUS_BENCH_LOAD:-copy}" = api ] && load "$COORD"
echo "cluster loaded: $(q "$COORD" -c "SELECT count(*) FROM subbilling.subscriptions") subscriptions"
read -r tc ic ec < <(cycle "$COORD")
echo "coordinator + 2 workers:       ${tc}s, $ic invoices, $ec billing errors"
if [ "$ic" = "$is" ] && [ "$ec" = "0" ]; then
    echo "ratio (cluster / single):      $(echo "scale=2; $tc / $ts" | bc)"
    echo "per subscription:              single $(echo "scale=3; $ts * 1000 / $is" | bc) ms, cluster $(echo "scale=3; $tc * 1000 / $ic" | bc) ms"
else
    echo "ratio: none — the cluster did not bill what the single server billed (docs/citus.md, limits)"
fi
