#!/usr/bin/env bash
# Benchmarks of the types: sum() over price vs numeric vs bigint vs money, and prorate() in C vs
# PL/pgSQL vs plain SQL.  Builds and installs this tree, starts a throwaway cluster tuned for
# the machine, loads each suite (bench/<suite>.sql), times every case (median of --runs runs
# after a warm-up, serial and parallel) and prints a table with the ratio of each case to its
# suite's baseline measured in the same run.  The cluster is dropped at the end.  Not a test:
# nothing passes or fails, except that every suite checks its cases agree before timing them.
#
#   bash bench/run.sh                        10M rows, every suite (several minutes)
#   bash bench/run.sh --rows 100000          a quick check
#   bash bench/run.sh --only prorate --prorate-rows 1000000
#   bash bench/run.sh --only billing_gen_check --rows 3000    (needs the lifecycle schema)
#   bash bench/run.sh --only billing --rows 100000   one billing cycle vs plain INSERTs A, B, C
#
# Options:
#   --rows N           rows of each suite's table (default 10000000)
#   --prorate-rows N   rows of the proration table (default: --rows)
#   --only NAME        run bench/NAME.sql only (types, prorate, billing_gen_check, billing); repeatable
#   --runs K           timed runs per case and mode (default 5), after one warm-up run
#   --jit              also time every case serially with jit = on (default: jit off only)
#
# Outputs in build/bench/: report.txt (the table), report.md (the same as Markdown),
# progress.log (every run), machine.txt (what it ran on), <suite>.txt (what each suite printed;
# billing.txt holds the billing suite's own table).
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh

ROWS=10000000
PRORATE_ROWS=
ONLY=()
RUNS=5
JIT=0
OUT=build/bench

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "$1"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS=$2; shift 2 ;;
        --prorate-rows) PRORATE_ROWS=$2; shift 2 ;;
        --only) ONLY+=("$2"); shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --jit) JIT=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option $1" >&2; usage 2 >&2 ;;
    esac
done
PRORATE_ROWS=${PRORATE_ROWS:-$ROWS}
for n in "$ROWS" "$PRORATE_ROWS" "$RUNS"; do
    case "$n" in ''|*[!0-9]*) echo "not a positive number: $n" >&2; exit 2 ;; esac
done
if [ ${#ONLY[@]} -eq 0 ]; then ONLY=(types prorate); fi
for s in "${ONLY[@]}"; do
    [ -f "bench/$s.sql" ] || { echo "no suite bench/$s.sql" >&2; exit 2; }
done

# ---------------------------------------------------------------- inside the cluster
# (run.sh runs itself again under pg_virtualenv, which exports PGHOST, PGPORT, ...)
if [ "${BENCH_INSIDE:-}" = 1 ]; then
    set -e -o pipefail
    PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d postgres)
    export PGOPTIONS="-c client_min_messages=warning"
    "${PSQL[@]}" -c "CREATE EXTENSION subbilling CASCADE" -c "CREATE EXTENSION pg_prewarm"
    # Other sessions on this machine may `make install` their own build while this one runs;
    # point every C function of the extension at the private copy of this tree's library so
    # that every backend and parallel worker loads the code being measured.
    "${PSQL[@]}" -v lib="$BENCH_LIB" <<'SQL'
UPDATE pg_proc SET probin = :'lib' WHERE probin = '$libdir/subbilling';
SELECT count(*) AS private FROM pg_proc WHERE probin = :'lib' \gset
SELECT count(*) AS left_on_libdir FROM pg_proc WHERE probin = '$libdir/subbilling' \gset
SELECT :private > 0 AND :left_on_libdir = 0 AS repointed \gset
\if :repointed
\else
  \warn 'could not point the C functions at the private library'
  SELECT 1 / 0;
\endif
SQL
    # The cluster and the extension exist: let the other sessions have the machine-wide lock.
    flock -u 9
    echo "== lock released; cluster on port $PGPORT"

    {
        echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "cpu:         $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
        echo "memory:      $(free -g | awk '/^Mem:/ {print $2 " GB"}')"
        echo "kernel:      $(uname -sr)"
        echo "postgresql:  $("${PSQL[@]}" -Atc 'SELECT version()')"
        echo "subbilling:  $(git log -1 --format='%h %s' 2>/dev/null | cut -c1-70)"
        echo "settings:    $("${PSQL[@]}" -Atc "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'max_parallel_workers', 'jit', 'lc_monetary', 'autovacuum', 'fsync')")"
        echo "rows:        types $ROWS, prorate $PRORATE_ROWS; $RUNS timed runs per case after a warm-up"
        echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    } >"$OUT/machine.txt"
    cat "$OUT/machine.txt"

    "${PSQL[@]}" -f bench/harness.sql
    if [ "$JIT" = 1 ]; then
        "${PSQL[@]}" -c "INSERT INTO bench.modes VALUES ('serial, jit on', 3, '{max_parallel_workers_per_gather=0,jit=on}')"
    fi
    export PGOPTIONS="-c client_min_messages=notice"
    for s in "${ONLY[@]}"; do
        echo "== loading bench/$s.sql"
        start=$(date +%s)
        "${PSQL[@]}" -v rows="$ROWS" -v prorate_rows="$PRORATE_ROWS" -v lib="$BENCH_LIB" -v copydir="$BENCH_COPY" \
            -f "bench/$s.sql" | tee "$OUT/$s.txt"
        echo "   loaded in $(( $(date +%s) - start )) s"
        for suite in $("${PSQL[@]}" -Atc "SELECT DISTINCT suite FROM bench.cases WHERE suite NOT IN (SELECT suite FROM bench.results) ORDER BY 1"); do
            for mode in $("${PSQL[@]}" -Atc "SELECT mode FROM bench.modes ORDER BY ord" | tr ' ' '_'); do
                mode=${mode//_/ }
                echo "== timing $suite, $mode"
                "${PSQL[@]}" -o /dev/null -c "SELECT bench.measure('$suite', '$mode', $RUNS)" 2>&1 \
                    | sed -u 's/^NOTICE:  /   /' | tee -a "$OUT/progress.log"
            done
        done
    done
    echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

    "${PSQL[@]}" -P footer=off -c "SELECT * FROM bench.report" >"$OUT/report.txt"
    # The same as a Markdown table.
    "${PSQL[@]}" -At >"$OUT/report.md" <<'SQL'
SELECT '| suite | mode | case | rows | workers | median ms | min ms | max ms | ns/row | ratio | ratio of min |';
SELECT '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
SELECT '| ' || concat_ws(' | ', suite, mode, "case", rows, workers, median_ms, min_ms, max_ms, ns_per_row, ratio, ratio_of_min) || ' |'
  FROM bench.report;
SQL
    exit 0
fi

# ---------------------------------------------------------------- outside: build, install, cluster
ensure_deps || { echo "could not install dependencies"; exit 1; }
build || exit 1
mkdir -p "$OUT"
: >"$OUT/progress.log"

# A private copy of the library just built, readable by the server (user postgres).
BENCH_DIR=$(mktemp -d /tmp/subbilling-bench.XXXXXX)
trap 'rm -rf "$BENCH_DIR"' EXIT
chmod 755 "$BENCH_DIR"
cp subbilling.so "$BENCH_DIR/subbilling.so"
chmod 755 "$BENCH_DIR/subbilling.so"
# Where the server may write files one suite reads into another database (bench/billing.sql).
mkdir "$BENCH_DIR/copy"
chmod 1777 "$BENCH_DIR/copy"

echo "== installing and creating the cluster (holding /tmp/subbilling-test.lock)"
exec 9>/tmp/subbilling-test.lock
flock 9
install || exit 1

# 2 cores, 24 GB: both suite tables (about 2 GB at 10M rows) fit in shared_buffers and are
# prewarmed; jit off so that compilation time does not blur the comparison (--jit adds a mode
# with it on); autovacuum off (the suites VACUUM (FREEZE, ANALYZE) their tables themselves);
# lc_monetary = C, so money has 2 decimals whatever the machine's locale.
BENCH_INSIDE=1 BENCH_LIB="$BENCH_DIR/subbilling.so" BENCH_COPY="$BENCH_DIR/copy" \
pg_virtualenv -t -v "$PGVER" \
    -o shared_buffers=4GB -o work_mem=64MB -o maintenance_work_mem=1GB \
    -o max_parallel_workers_per_gather=2 -o max_parallel_maintenance_workers=2 \
    -o jit=off -o autovacuum=off -o lc_monetary=C \
    -o max_wal_size=8GB -o checkpoint_timeout=30min -o synchronous_commit=off \
    bash "$0" --rows "$ROWS" --prorate-rows "$PRORATE_ROWS" --runs "$RUNS" \
        $( [ "$JIT" = 1 ] && echo --jit ) $(printf -- '--only %s ' "${ONLY[@]}")
rc=$?
exec 9>&-
if [ $rc -ne 0 ]; then
    echo "== benchmark failed (exit $rc); the throwaway cluster has been dropped"
    exit $rc
fi
echo
cat "$OUT/machine.txt"
echo
cat "$OUT/report.txt"
echo "ratio = median time of the case / median time of its suite's baseline in the same mode;"
echo "ratio_of_min = the same with the fastest of the runs"
echo "(types: sum(bigint); types_by_currency: sum(bigint) GROUP BY cur; prorate: plain SQL)."
echo "== the throwaway cluster has been dropped; tables in $OUT/report.txt and $OUT/report.md"
