#!/usr/bin/env bash
# The cluster tiers of scripts/test.sh: pg_regress, isolation and pgTAP against the server
# that PG* variables point at (pg_virtualenv sets them).  Writes "label ok notok" lines into
# OUT/tally.  Usable by hand: PGHOST=... bash scripts/test-cluster.sh build/test
set -u
OUT=${1:-build/test}
mkdir -p "$OUT"
TALLY=$OUT/tally
cd "$(dirname "$0")/.."
. scripts/lib.sh

count_regress() {   # LABEL LOG EXIT
    local ok nok
    ok=$(grep -cE '^(test | +)?[a-z0-9_]+ +\.\.\. ok' "$2")
    nok=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$2")
    if [ "$3" -ne 0 ] && [ "$nok" -eq 0 ]; then nok=1; fi
    record "$1" "$ok" "$nok"
}

# pg_regress and isolationtester (PGXS installcheck runs both)
rm -rf results output_iso regression.diffs regression.out
make -s PG_CONFIG="$PG_CONFIG" installcheck >"$OUT/installcheck.log" 2>&1; rc=$?
grep -E '\.\.\. ' "$OUT/installcheck.log"
count_regress "pg_regress+isolation" "$OUT/installcheck.log" $rc
if [ $rc -ne 0 ]; then
    tail -20 "$OUT/installcheck.log"
    for d in regression.diffs output_iso/regression.diffs; do [ -f "$d" ] && cat "$d"; done
fi

# pgTAP: one database with the extension; every test file runs in BEGIN ... ROLLBACK
PGOPTIONS='-c client_min_messages=warning' psql -q -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS subbilling_test' -c 'CREATE DATABASE subbilling_test' >/dev/null
PGOPTIONS='-c client_min_messages=warning' psql -q -v ON_ERROR_STOP=1 -d subbilling_test \
    -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION subbilling CASCADE' >/dev/null
for f in test/pgtap/*.sql; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .sql)
    pg_prove -v --nocolor -d subbilling_test "$f" >"$OUT/pgtap_$n.out" 2>&1; rc=$?
    tally_tap "pgtap/$n" "$OUT/pgtap_$n.out" $rc
done
# upgrade: 0.1 with data, ALTER EXTENSION ... UPDATE, same schema as a fresh install
bash test/upgrade.sh "$OUT" >"$OUT/upgrade.out" 2>&1; rc=$?
tally_tap "upgrade" "$OUT/upgrade.out" $rc
# backups: a business dumped with pg_dump -Fc and restored with pg_restore comes back whole
bash test/dump_restore.sh "$OUT" >"$OUT/dump_restore.out" 2>&1; rc=$?
tally_tap "dump_restore" "$OUT/dump_restore.out" $rc
echo cluster-done
