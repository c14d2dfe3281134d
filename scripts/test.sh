#!/usr/bin/env bash
# Every test suite of subbilling, in a throwaway cluster; the last line is "N passed, N failed".
#
#   bash scripts/test.sh
#
# Tiers: unit tests of the plain-C core (with ASan/UBSan), a bounded libFuzzer run over the
# parsers, pg_regress, isolationtester, pgTAP (pg_prove), the upgrade test, the docs (every
# page run as written) and TAP (PostgreSQL::Test::Cluster).
# Environment: FUZZ_SECONDS (per harness, default 15).
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh

OUT=$PWD/build/test
TALLY=$OUT/tally
FUZZ_SECONDS=${FUZZ_SECONDS:-15}

fail_early() { echo "$1"; echo "0 passed, 1 failed"; exit 1; }
ensure_deps || fail_early "could not install dependencies"
build || fail_early "build failed"
rm -rf "$OUT"; mkdir -p "$OUT"; : >"$TALLY"

CORE_SRC=$(ls src/core/*.c 2>/dev/null)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"

echo "== unit tests of the plain-C core (gcc, ASan, UBSan)"
for t in test/unit/*.c; do
    [ -e "$t" ] || continue
    n=$(basename "$t" .c)
    if gcc -std=gnu11 -O1 -g -Wall -Wextra -Werror $SAN -Isrc/core "$t" $CORE_SRC -o "$OUT/$n" \
           >"$OUT/$n.build" 2>&1; then
        "$OUT/$n" >"$OUT/$n.out" 2>&1; rc=$?
    else
        cp "$OUT/$n.build" "$OUT/$n.out"; rc=1
    fi
    tally_tap "unit/$n" "$OUT/$n.out" $rc
done

echo "== fuzzing the parsers (libFuzzer, ASan, UBSan, ${FUZZ_SECONDS}s each)"
for f in test/fuzz/fuzz_*.c; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .c)
    corpus=$OUT/corpus_$n
    mkdir -p "$corpus"
    [ -d "test/fuzz/seeds/$n" ] && cp test/fuzz/seeds/$n/* "$corpus"/ 2>/dev/null
    if clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc/core \
           "$f" $CORE_SRC -o "$OUT/$n" >"$OUT/$n.build" 2>&1; then
        (cd "$OUT" && "./$n" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$corpus") \
            >"$OUT/$n.log" 2>&1; rc=$?
    else
        cp "$OUT/$n.build" "$OUT/$n.log"; rc=1
    fi
    if [ $rc -eq 0 ]; then echo "ok 1 - $n" >"$OUT/$n.out"
    else tail -40 "$OUT/$n.log"; echo "not ok 1 - $n" >"$OUT/$n.out"; fi
    tally_tap "fuzz/$n" "$OUT/$n.out" 0
done

# From here on the system installation and a cluster are used: one run at a time per machine.
exec 9>/tmp/subbilling-test.lock
flock 9
install || fail_early "install failed"

echo "== pg_regress, isolation, pgTAP, upgrade and docs in a throwaway cluster (pg_virtualenv)"
pg_virtualenv -t -v $PGVER \
    -o shared_preload_libraries=subbilling -o subbilling.worker_enabled=off \
    bash scripts/test-cluster.sh "$OUT" >"$OUT/cluster.log" 2>&1
rc=$?
cat "$OUT/cluster.log"
[ $rc -ne 0 ] && ! grep -q '^cluster-done' "$OUT/cluster.log" && record cluster 0 1

echo "== TAP tests (PostgreSQL::Test::Cluster, run as postgres)"
if ls test/t/*.pl >/dev/null 2>&1; then
    work=$(mktemp -d /tmp/subbilling-tap.XXXXXX)
    cp -r . "$work/src"
    chown -R postgres: "$work"
    for t in test/t/*.pl; do
        n=$(basename "$t" .pl)
        (cd "$work/src" && runuser -u postgres -- env PATH="$PATH" \
            make -s PG_CONFIG="$PG_CONFIG" prove_installcheck PROVE_TESTS="$t" PROVE_FLAGS=-v) \
            >"$OUT/tap_$n.out" 2>&1
        rc=$?
        tally_tap "tap/$n" "$OUT/tap_$n.out" $rc
        [ $rc -ne 0 ] && tail -60 "$OUT/tap_$n.out" && \
            find "$work/src" -path '*tmp_check/log/*' -name '*.log' -exec tail -30 {} \;
    done
    rm -rf "$work"
fi

read -r PASSED FAILED < <(awk '{p+=$2; f+=$3} END {print p+0, f+0}' "$TALLY")
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
