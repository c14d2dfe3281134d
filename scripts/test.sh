#!/usr/bin/env bash
# Every test suite of subbilling on one or more PostgreSQL versions, in throwaway clusters;
# the last line is "N passed, N failed" over all of them.
#
#   bash scripts/test.sh                          the host's PostgreSQL (15 on bookworm)
#   PG_VERSIONS="15 17 18" bash scripts/test.sh   also 17 and 18, each in a Debian chroot
#
# Tiers, run for every version: the -Werror build, the harness's own test, unit tests of the
# plain-C core (with ASan/UBSan), a bounded libFuzzer run over the parsers, pg_regress,
# isolationtester, pgTAP (pg_prove), the upgrade test, the docs (every page run as written)
# and TAP (PostgreSQL::Test::Cluster, through make prove_installcheck).
# Every tier line is labelled with its version (pg15, pg17, ...); a tier that counts nothing
# fails.  A version other than the host's runs first, in a chroot of the Debian suite that
# ships it (trixie for 17, sid for 18), made once with debootstrap from the host's Debian
# archive and reused (scripts/chroot.sh); there the property test runs PROPERTY_STEPS_EXTRA
# steps.  The host's version runs last, here.
# Environment: PG_VERSIONS (default: the host's version), FUZZ_SECONDS (per harness, default
# 15), PROPERTY_STEPS_EXTRA (default 2500 of 10000), SUBBILLING_CHROOTS (chroot cache,
# default /var/cache/subbilling-chroots).
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh
. scripts/chroot.sh
# what only the tests need: xmllint for the e-invoice schemas, Chromium to render invoices
DEPS+=(libxml2-utils chromium)

HOST_PGVER=$PGVER
PG_VERSIONS=${PG_VERSIONS:-$HOST_PGVER}
OUT=$PWD/build/test
TALLY=$OUT/tally
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
PROPERTY_STEPS_EXTRA=${PROPERTY_STEPS_EXTRA:-2500}
export PROPERTY_STEPS=${PROPERTY_STEPS:-}
rm -rf "$OUT"; mkdir -p "$OUT"; : >"$TALLY"

tier_build() {
    if ensure_deps && build; then record "build (-Wall -Wextra -Werror)" 1 0
    else record "build (-Wall -Wextra -Werror)" 0 1; return 1; fi
}

tier_harness() {
    echo "== pg$PGVER: the test harness (test/harness.sh)"
    bash test/harness.sh >"$OUT/harness.out" 2>&1
    tally_tap "harness" "$OUT/harness.out" $?
}

tier_unit() {
    local CORE_SRC SAN t n rc
    CORE_SRC=$(ls src/core/*.c 2>/dev/null)
    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
    echo "== pg$PGVER: unit tests of the plain-C core (gcc, ASan, UBSan)"
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
}

tier_fuzz() {
    local CORE_SRC f n corpus rc
    CORE_SRC=$(ls src/core/*.c 2>/dev/null)
    echo "== pg$PGVER: fuzzing the parsers (libFuzzer, ASan, UBSan, ${FUZZ_SECONDS}s each)"
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
}

# pg_regress, isolation, pgTAP and the upgrade test (scripts/test-cluster.sh)
tier_cluster() {
    local rc
    echo "== pg$PGVER: pg_regress, isolation, pgTAP and upgrade in a throwaway cluster (pg_virtualenv)"
    pg_virtualenv -t -v "$PGVER" \
        -o shared_preload_libraries=subbilling -o subbilling.worker_enabled=off \
        bash scripts/test-cluster.sh "$OUT" >"$OUT/cluster.log" 2>&1
    rc=$?
    cat "$OUT/cluster.log"
    [ $rc -ne 0 ] && ! grep -q '^cluster-done' "$OUT/cluster.log" && record cluster 0 1
}

tier_tap() {
    local work t n rc
    echo "== pg$PGVER: TAP tests (PostgreSQL::Test::Cluster, run as postgres)"
    ls test/t/*.pl >/dev/null 2>&1 || return 0
    work=$(mktemp -d /tmp/subbilling-tap.XXXXXX)
    mkdir "$work/src"
    tar -c --exclude=./.git --exclude=./build . | tar -x -C "$work/src"
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
}

# Citus: distributed on a throwaway 3-node cluster where citus is installed, skipped otherwise
tier_citus() {
    echo "== pg$PGVER: Citus (test/citus.sh: a coordinator and two workers)"
    bash test/citus.sh >"$OUT/citus.out" 2>&1
    tally_tap "citus" "$OUT/citus.out" $?
}

# Every tier on the PostgreSQL installed here.  A new tier is one line.
run_here() {
    local t0=$SECONDS
    echo "== PostgreSQL $PGVER ($(. /etc/os-release && echo "$PRETTY_NAME"))"
    tier_build || return 0
    tier_harness
    tier_unit
    tier_fuzz
    # the system installation and the clusters: one run at a time per machine
    local w=$SECONDS
    exec 9>/tmp/subbilling-test.lock
    flock 9
    [ $((SECONDS - w)) -gt 1 ] && echo "   (waited $((SECONDS - w)) s for /tmp/subbilling-test.lock)"
    if install; then
        tier_cluster
        tier_tap
        tier_citus
    else
        record "install" 0 1
    fi
    exec 9>&-
    echo "== PostgreSQL $PGVER: $((SECONDS - t0)) s"
}

# Every tier on VERSION, in its Debian chroot: this script runs there on a copy of the tree,
# and its tally joins ours.
run_in_chroot() {
    local v=$1 dir src t0=$SECONDS
    if ! dir=$(chroot_ensure "$v"); then
        PGVER=$v record "chroot ($(suite_for "$v" || echo none))" 0 1
        return 0
    fi
    echo "== PostgreSQL $v in the $(basename "$dir") chroot ($((SECONDS - t0)) s to get it ready)"
    exec 8>"$dir.lock"
    flock 8
    src=$dir/root/subbilling
    rm -rf "$src"; mkdir -p "$src"
    # the sources only: objects built here for another version would be taken as up to date
    tar -c --exclude=./.git --exclude=./build --exclude='*.o' --exclude='*.so' --exclude='*.bc' . \
        | tar -x -C "$src"
    in_chroot "$dir" PGVER="$v" PG_VERSIONS="$v" SUBBILLING_PART=1 FUZZ_SECONDS="$FUZZ_SECONDS" \
        PROPERTY_STEPS="$PROPERTY_STEPS_EXTRA" bash /root/subbilling/scripts/test.sh
    if [ -s "$src/build/test/tally" ]; then
        cat "$src/build/test/tally" >>"$TALLY"
    else
        PGVER=$v record "chroot run" 0 1
    fi
    rm -rf "$src"
    exec 8>&-
    echo "== PostgreSQL $v in the chroot: $((SECONDS - t0)) s"
}

# The chroot versions first: they need not wait for the machine's test lock, which parallel
# runs may hold for a while.
for v in $PG_VERSIONS; do
    [ "$v" = "$HOST_PGVER" ] || run_in_chroot "$v"
done
for v in $PG_VERSIONS; do
    [ "$v" = "$HOST_PGVER" ] && run_here
done

read -r PASSED FAILED < <(awk '{p+=$(NF-1); f+=$NF} END {print p+0, f+0}' "$TALLY")
if [ -n "${SUBBILLING_PART:-}" ]; then
    echo "== PostgreSQL $PGVER done: $PASSED ok, $FAILED not ok"
else
    echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
