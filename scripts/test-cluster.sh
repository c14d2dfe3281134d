#!/usr/bin/env bash
# The cluster tiers of scripts/test.sh: pg_regress, isolation, pgTAP, upgrade and docs against the server
# that PG* variables point at (pg_virtualenv sets them).  Writes "label ok notok" lines into
# OUT/tally.  Usable by hand: PGHOST=... bash scripts/test-cluster.sh build/test
set -u
OUT=${1:-build/test}
mkdir -p "$OUT"
TALLY=$OUT/tally
cd "$(dirname "$0")/.."
. scripts/lib.sh

# pg_regress and isolationtester (PGXS installcheck runs both)
rm -rf results output_iso regression.diffs regression.out
make -s PG_CONFIG="$PG_CONFIG" installcheck >"$OUT/installcheck.log" 2>&1; rc=$?
grep -E -e '\.\.\. ' -e '^(not )?ok [0-9]+ ' "$OUT/installcheck.log"
count_regress "pg_regress+isolation" "$OUT/installcheck.log" $rc \
    $(( $(ls test/sql/*.sql 2>/dev/null | wc -l) + $(ls test/specs/*.spec 2>/dev/null | wc -l) ))
if [ $rc -ne 0 ]; then
    tail -20 "$OUT/installcheck.log"
    for d in regression.diffs output_iso/regression.diffs; do [ -f "$d" ] && cat "$d"; done
fi

# pgTAP: one database with the extension; every test file runs in BEGIN ... ROLLBACK
PGOPTIONS='-c client_min_messages=warning' psql -q -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS subbilling_test' -c 'CREATE DATABASE subbilling_test' >/dev/null
PGOPTIONS='-c client_min_messages=warning' psql -q -v ON_ERROR_STOP=1 -d subbilling_test \
    -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION subbilling CASCADE' >/dev/null
# PROPERTY_STEPS (scripts/test.sh sets it on the extra versions): fewer steps of the property
# test, read by it from the setting subbilling_test.property_steps.
if [ -n "${PROPERTY_STEPS:-}" ]; then
    echo "   the property test runs $PROPERTY_STEPS steps on this version (10000 on the host's)"
    export PGOPTIONS="-c subbilling_test.property_steps=$PROPERTY_STEPS"
fi
for f in test/pgtap/*.sql; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .sql)
    pg_prove -v --nocolor -d subbilling_test "$f" >"$OUT/pgtap_$n.out" 2>&1; rc=$?
    tally_tap "pgtap/$n" "$OUT/pgtap_$n.out" $rc
done
unset PGOPTIONS
# upgrade: 0.1 with data, ALTER EXTENSION ... UPDATE, same schema as a fresh install
bash test/upgrade.sh "$OUT" >"$OUT/upgrade.out" 2>&1; rc=$?
tally_tap "upgrade" "$OUT/upgrade.out" $rc
# backups: a business dumped with pg_dump -Fc and restored with pg_restore comes back whole
bash test/dump_restore.sh "$OUT" >"$OUT/dump_restore.out" 2>&1; rc=$?
tally_tap "dump_restore" "$OUT/dump_restore.out" $rc
# invoice documents: UBL 2.1 schema (xmllint), the official examples' shape, Chromium renders
bash test/einvoice.sh "$OUT" >"$OUT/einvoice.out" 2>&1; rc=$?
tally_tap "einvoice" "$OUT/einvoice.out" $rc
# docs: every page of docs/ and the README run as written, output compared (test/docs.pl);
# and the docs tier itself can fail (test/docs_selftest.sh)
perl test/docs.pl >"$OUT/docs.out" 2>&1; rc=$?
tally_tap "docs" "$OUT/docs.out" $rc
bash test/docs_selftest.sh >"$OUT/docs_selftest.out" 2>&1; rc=$?
tally_tap "docs_selftest" "$OUT/docs_selftest.out" $rc
echo cluster-done
