#!/usr/bin/env bash
# Worker throughput: the background worker bills the same backlog of N subscriptions
# (bench/billing_gen.sql, bulk) with subbilling.batch_size = 100, 1000, 10000, one fresh copy of
# the data per batch size, and reports invoices per second from its worker_runs row.
#
#   bash bench/billing_worker.sh                  N = 100000, batch sizes 100 1000 10000
#   bash bench/billing_worker.sh 20000 100 1000   N, then the batch sizes
#
# A throwaway cluster (pg_virtualenv) with shared_preload_libraries = 'subbilling', the settings
# of bench/run.sh but autovacuum on (the default: the worker commits batch by batch and the
# planner needs the statistics of the growing invoice and journal tables), naptime 1 h (cycles run when woken) and the worker first disabled.
# The library is installed under the machine-wide lock and preloaded by the postmaster at start,
# so every backend and every (re)start of the worker, forked from it, runs this tree's build even
# if another session installs its own meanwhile.  Database gen gets the extension and the
# data once; for each batch size: CREATE DATABASE w<size> TEMPLATE gen, ALTER SYSTEM SET
# subbilling.database = 'w<size>', subbilling.batch_size = <size>, worker_enabled = on, reload
# (the worker restarts in that database), wake_worker(), wait for the run to finish.
# Output: build/bench/billing_worker.txt.
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh
OUT=build/bench

if [ "${BENCH_INSIDE:-}" = 1 ]; then
    set -e -o pipefail
    N=$1; shift
    PSQL=(psql -X -q -v ON_ERROR_STOP=1)
    export PGOPTIONS="-c client_min_messages=warning"
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE gen"
    "${PSQL[@]}" -d gen -c "CREATE EXTENSION subbilling CASCADE"
    flock -u 9
    echo "== lock released; cluster on port $PGPORT; load $(cut -d' ' -f1-3 /proc/loadavg)"
    start=$(date +%s)
    "${PSQL[@]}" -d gen -v n="$N" -f bench/billing_gen.sql
    "${PSQL[@]}" -d gen -c "VACUUM ANALYZE"
    echo "== generated $N subscriptions in $(( $(date +%s) - start )) s"
    : >"$OUT/billing_worker.runs"
    for bs in "$@"; do
        db=w$bs
        "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db TEMPLATE gen" -c "CHECKPOINT"
        load_before=$(cut -d' ' -f1 /proc/loadavg)
        "${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET subbilling.database = '$db'" \
            -c "ALTER SYSTEM SET subbilling.batch_size = $bs" \
            -c "ALTER SYSTEM SET subbilling.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
        # the worker exits on the database change and is restarted there after 5 s
        for _ in $(seq 1 120); do
            [ "$("${PSQL[@]}" -d "$db" -Atc "SELECT subbilling.wake_worker()" 2>/dev/null)" = t ] && break
            sleep 1
        done
        for _ in $(seq 1 3600); do
            done_=$("${PSQL[@]}" -d "$db" -Atc "SELECT count(*) FROM subbilling.worker_runs WHERE status <> 'running' AND invoices > 0")
            [ "$done_" -gt 0 ] && break
            sleep 1
        done
        "${PSQL[@]}" -d "$db" -At -F ' ' -c "
            SELECT $bs, invoices, errors, batches,
                   round(1000 * extract(epoch FROM finished_at - started_at))::bigint,
                   round(invoices / extract(epoch FROM finished_at - started_at)),
                   (SELECT count(*) FROM subbilling.invoice_lines), '$load_before',
                   split_part(pg_read_file('/proc/loadavg'), ' ', 1), status
              FROM subbilling.worker_runs WHERE invoices > 0 ORDER BY id LIMIT 1" | tee -a "$OUT/billing_worker.runs"
        "${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET subbilling.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
    done
    exit 0
fi

N=${1:-100000}; shift || true
SIZES=("$@"); [ ${#SIZES[@]} -eq 0 ] && SIZES=(100 1000 10000)
ensure_deps || exit 1
build || exit 1
mkdir -p "$OUT"
exec 9>/tmp/subbilling-test.lock
flock 9
install || exit 1
BENCH_INSIDE=1 \
pg_virtualenv -t -v "$PGVER" \
    -o shared_preload_libraries=subbilling \
    -o subbilling.worker_enabled=off -o subbilling.naptime=3600 \
    -o shared_buffers=4GB -o work_mem=64MB -o maintenance_work_mem=1GB \
    -o jit=off -o max_wal_size=8GB -o checkpoint_timeout=30min \
    -o synchronous_commit=off \
    bash "$0" "$N" "${SIZES[@]}"
rc=$?
exec 9>&-
[ $rc -eq 0 ] || { echo "== worker benchmark failed (exit $rc)"; exit $rc; }
{
    echo "N = $N subscriptions; one worker run per batch size on a fresh copy of the same data"
    echo "batch_size invoices errors batches ms invoices_per_s lines load_before load_after status"
    cat "$OUT/billing_worker.runs"
} | tee "$OUT/billing_worker.txt"
