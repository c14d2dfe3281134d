#!/usr/bin/env bash
# Tests of the test harness itself (TAP on stdout): scripts/lib.sh must read pg_regress's
# summary in the format of PostgreSQL 15 and in the TAP format of 16 on (logs of real runs in
# test/harness/), count failures in both, and fail a tier that counted nothing or did not
# report every test it was meant to run.  Needs no server.
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh
work=$(mktemp -d /tmp/subbilling-harness.XXXXXX)
trap 'rm -rf "$work"' EXIT
TALLY=$work/tally
n=0
failed=0
is() {      # is GOT WANTED DESCRIPTION
    n=$((n + 1))
    if [ "$1" = "$2" ]; then echo "ok $n - $3"; else
        echo "not ok $n - $3"; echo "#   got:    '$1'"; echo "#   wanted: '$2'"; failed=$((failed + 1))
    fi
}
# tallied COMMAND...: the "ok notok" that COMMAND appended to the tally
tallied() {
    : >"$TALLY"
    "$@" >/dev/null
    awk '{print $(NF-1), $NF}' "$TALLY"
}
echo "1..8"

for v in 15 17; do
    log=test/harness/installcheck_$v.log
    is "$(tallied count_regress t "$log" 0 14)" "14 0" "PostgreSQL $v: 11 pg_regress and 3 isolation tests passed are counted"
    is "$(tallied count_regress t "$log" 0 15)" "14 1" "PostgreSQL $v: a test that was not reported is a failure"
done
sed -E '0,/^test period_io +\.\.\. ok/s//test period_io ... FAILED/' test/harness/installcheck_15.log >"$work/f15.log"
is "$(tallied count_regress t "$work/f15.log" 2 14)" "13 1" "PostgreSQL 15: a FAILED test is counted as failed"
sed -E '0,/^ok 5 /s//not ok 5 /' test/harness/installcheck_17.log >"$work/f17.log"
is "$(tallied count_regress t "$work/f17.log" 2 14)" "13 1" "PostgreSQL 17: a \"not ok\" test is counted as failed"
: >"$work/empty.log"
is "$(tallied count_regress t "$work/empty.log" 0 0)" "0 1" "a pg_regress tier that ran nothing fails"
is "$(tallied tally_tap t "$work/empty.log" 0)" "0 1" "a TAP tier that printed no test line fails, even with exit code 0"

[ "$n" -eq 8 ] && [ "$failed" -eq 0 ]
