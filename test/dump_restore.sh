#!/usr/bin/env bash
# Backup test (TAP on stdout): a business with a few months of billing, payments, dunning, a
# bank file, changed settings and a worker cycle is dumped with pg_dump -Fc and restored with
# pg_restore into a new database.  Every table of the extension must come back row for row and
# every sequence with its value; events_after continues where it was; the next month bills in
# both databases with the same amounts and gaplessly continuing numbers; the worker, the bank
# import and the settings behave as before the dump.
# Runs against the server PG* points at (scripts/test-cluster.sh, pg_virtualenv); needs a
# superuser.  VERSION=0.2 bash test/dump_restore.sh runs it against another installed version
# (0.2 fails it: it dumps no customer rows).  Leaves no database behind.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-build/test}
mkdir -p "$OUT"
export PGOPTIONS='-c client_min_messages=warning'
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
VERSION=${VERSION:-}
. test/tap.sh
DUMP=$OUT/dump_restore.dump
cleanup() { "${PSQL[@]}" -d postgres -c 'DROP DATABASE IF EXISTS sb_dump_a' -c 'DROP DATABASE IF EXISTS sb_dump_b' >/dev/null 2>&1
            rm -f "$DUMP"; }
trap cleanup EXIT
cleanup
echo "1..18"

"${PSQL[@]}" -d postgres -c 'CREATE DATABASE sb_dump_a' -c 'CREATE DATABASE sb_dump_b'
if [ -n "$VERSION" ]; then
    "${PSQL[@]}" -d sb_dump_a -c "CREATE EXTENSION subbilling VERSION '$VERSION' CASCADE" >/dev/null
else
    "${PSQL[@]}" -d sb_dump_a -c "CREATE EXTENSION subbilling CASCADE" >/dev/null
fi
ok $? "subbilling ${VERSION:-(default version)} installs"

BANKFILE=$(iconv -f ISO-8859-1 -t UTF-8 test/bankfiles/bgmax_good.txt)

# The business: two Swedish customers, one pays and one is dunned to a payment stop; four
# months of billing; a bank file; changed settings; a worker cycle; a consumer's cursor.
"${PSQL[@]}" -d sb_dump_a -v bankfile="$BANKFILE" >"$OUT/dump_restore_business.out" 2>&1 <<'SQL'
SET search_path = subbilling, public;
SET TimeZone = 'UTC';
INSERT INTO products (code, name, tax_rate) VALUES ('b_saas', 'Backup test SaaS', 25);
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price)
VALUES ('b_m100', (SELECT id FROM products WHERE code = 'b_saas'), 'Monthly', 'base', '1 month', 'per_unit', '100.00 SEK');
INSERT INTO accounts (external_id, name, country, currency) VALUES ('b_pays', 'Paying customer', 'SE', 'SEK'),
                                                                   ('b_late', 'Late customer', 'SE', 'SEK');
SELECT subscribe(id, 'b_m100', 1, '2025-01-01') FROM accounts WHERE external_id LIKE 'b\_%' ORDER BY id;
SELECT run_billing('2025-01-01 12:00+00');
SELECT register_payment(i.total, i.reference, '2025-01-20', 'bankgiro')
  FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id = 'b_pays';
SELECT run_billing('2025-02-01 12:00+00');
SELECT run_dunning('2025-02-15');
SELECT run_billing('2025-03-01 12:00+00');
SELECT run_dunning('2025-03-05');
SELECT * FROM import_bgmax(:'bankfile', true);
SELECT run_dunning('2025-03-20');
SELECT register_payment(i.total, i.reference, '2025-03-21', 'bankgiro')
  FROM invoices i JOIN accounts a ON a.id = i.account_id
 WHERE a.external_id = 'b_pays' AND i.status = 'open';
SELECT run_worker_cycle('2025-04-01 12:00+00');
-- changed settings: an operator's values, a changed shipped row, an added row
UPDATE payment_settings SET retry_days = '{2,4}';
UPDATE country_settings SET reminder_fees = '{"50.00 SEK"}' WHERE country = 'SE';
INSERT INTO ledger_accounts (code, name, kind) VALUES ('3990', 'Backup test revenue', 'revenue');
INSERT INTO country_settings (country, reference_kind) VALUES ('DE', 'luhn');
-- invoice details of the seller and of an account (invoice documents)
INSERT INTO seller_invoice_details (street, postal_code, city, bankgiro) VALUES ('Backup street 1', '111 22', 'Stockholm', '5050-1055');
INSERT INTO account_invoice_details (account_id, org_number, buyer_reference)
SELECT id, '202100-0001', 'Backup reference' FROM accounts WHERE external_id = 'b_pays';
SQL
ok $? "a business bills four months, takes payments, dunning, a bank file and a worker cycle"
counts=$("${PSQL[@]}" -d sb_dump_a -c "SELECT (SELECT count(*) FROM subbilling.invoices) > 8,
            (SELECT count(*) FROM subbilling.payments) >= 3, (SELECT count(*) FROM subbilling.dunning_actions) >= 2,
            (SELECT count(*) FROM subbilling.bank_files) = 1, (SELECT count(*) FROM subbilling.worker_runs) = 1")
is "$counts" "t|t|t|t|t" "the business has invoices, payments, dunning steps, a bank file and a worker run"
CURSOR=$("${PSQL[@]}" -d sb_dump_a -c "SELECT max(id) FROM subbilling.events_after(0, 100000)")

pg_dump -Fc -d sb_dump_a -f "$DUMP" 2>"$OUT/dump_restore_dump.err"
ok $? "pg_dump -Fc"
pg_restore --exit-on-error -d sb_dump_b "$DUMP" >"$OUT/dump_restore_restore.out" 2>&1
rc=$?
ok $rc "pg_restore into a new database, without an error"
[ $rc -ne 0 ] && sed 's/^/# /' "$OUT/dump_restore_restore.out" | head -20

# Every table and sequence of the extension, as text, in a stable order.
snapshot() {
    "${PSQL[@]}" -d "$1" <<'SQL'
DO $$
DECLARE
    r   record;
    h   text;
BEGIN
    CREATE TEMP TABLE snap (rel text, content text);
    FOR r IN SELECT c.oid::regclass AS rel, c.relkind
               FROM pg_class c
               JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                               AND d.refclassid = 'pg_extension'::regclass
               JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'subbilling'
              WHERE c.relkind IN ('r', 'S')
                -- internal state that is never dumped (the outbox slots: who holds which now)
                AND NOT EXISTS (SELECT FROM unnest(x.extconfig, x.extcondition) AS u(o, cond)
                                 WHERE u.o = c.oid AND u.cond = 'WHERE false')
              ORDER BY c.relname LOOP
        IF r.relkind = 'S' THEN
            EXECUTE format('SELECT last_value || '' '' || is_called FROM %s', r.rel) INTO h;
        ELSE
            -- rows as installed (origin shipped) carry the time of the install: a restore is one
            EXECUTE format('SELECT count(*) || '' rows, md5 '' || coalesce(md5(string_agg(j::text, E''\n'' ORDER BY j::text)), ''-'')
                              FROM (SELECT CASE WHEN to_jsonb(t)->>''origin'' = ''shipped''
                                                THEN to_jsonb(t) - ''created_at'' - ''updated_at'' ELSE to_jsonb(t) END AS j
                                      FROM %s t) s', r.rel) INTO h;
        END IF;
        INSERT INTO snap VALUES (r.rel::text, h);
    END LOOP;
END
$$;
SELECT rel || ': ' || content FROM snap ORDER BY rel;
SQL
}
snapshot sb_dump_a >"$OUT/dump_restore_a.txt"
snapshot sb_dump_b >"$OUT/dump_restore_b.txt"
diff -u "$OUT/dump_restore_a.txt" "$OUT/dump_restore_b.txt" >"$OUT/dump_restore.diff"
rc=$?
ok $rc "every table of the extension is equal row for row and every sequence has its value after the restore"
[ $rc -ne 0 ] && sed 's/^/# /' "$OUT/dump_restore.diff" | head -40
is "$(grep -c 'rows, md5 -' "$OUT/dump_restore_a.txt") $(wc -l <"$OUT/dump_restore_a.txt")" \
   "$(grep -c 'rows, md5 -' "$OUT/dump_restore_b.txt") $(wc -l <"$OUT/dump_restore_b.txt")" \
   "the same tables are empty in both (a table count check of the comparison)"

# The open items and aging rows that a trigger keeps (never dumped) are filled again by the
# restore's journal inserts: the same items and rows, and ar_aging equals its definition; the
# per-period usage is filled by the usage inserts, and upsell_candidates equals its definition.
KEPT="SELECT count(*) || ' ' || coalesce(md5(string_agg(k::text, ',' ORDER BY k::text)), '-') FROM subbilling_internal.kpi_open_items k UNION ALL SELECT count(*) || ' ' || coalesce(md5(string_agg(k::text, ',' ORDER BY k::text)), '-') FROM subbilling_internal.kpi_aging k"
is "$("${PSQL[@]}" -d sb_dump_b -c "$KEPT")|$("${PSQL[@]}" -d sb_dump_b -c "SELECT count(*) FROM ((TABLE subbilling.ar_aging EXCEPT ALL TABLE subbilling_internal.ar_aging_ref) UNION ALL (TABLE subbilling_internal.ar_aging_ref EXCEPT ALL TABLE subbilling.ar_aging)) x")|$("${PSQL[@]}" -d sb_dump_b -c "SELECT count(*) > 0 FROM subbilling_internal.kpi_open_items")" \
   "$("${PSQL[@]}" -d sb_dump_a -c "$KEPT")|0|t" "the kept open items and aging rows come back with the journal (ar_aging equals its definition)"
is "$("${PSQL[@]}" -d sb_dump_b -c "SELECT count(*) FROM ((TABLE subbilling.upsell_candidates EXCEPT ALL TABLE subbilling_internal.upsell_candidates_ref) UNION ALL (TABLE subbilling_internal.upsell_candidates_ref EXCEPT ALL TABLE subbilling.upsell_candidates)) x")|$("${PSQL[@]}" -d sb_dump_b -c "SELECT count(*) FROM subbilling_internal.kpi_usage_periods")" \
   "0|$("${PSQL[@]}" -d sb_dump_a -c "SELECT count(DISTINCT (account_id, subscription_id)) FROM subbilling.usage")" "the kept usage per period comes back with the usage (upsell_candidates equals its definition)"

is "$("${PSQL[@]}" -d sb_dump_b -c "SELECT retry_days FROM subbilling.payment_settings")|$("${PSQL[@]}" -d sb_dump_b -c "SELECT reminder_fees::text || ' ' || origin FROM subbilling.country_settings WHERE country = 'SE'")" \
   '{2,4}|{"50.00 SEK"} edited' "the changed settings are restored, not the install defaults"

# events_after goes on: no event is handed out again, a new one follows.
is "$("${PSQL[@]}" -d sb_dump_b -c "SELECT count(*) FROM subbilling.events_after($CURSOR)")" "0" \
   "events_after after the consumer's cursor hands out nothing again in the restored database"

# The next month in both databases: same invoices, same amounts, gapless numbers.
for db in sb_dump_a sb_dump_b; do
    "${PSQL[@]}" -d $db -c "SET search_path = subbilling, public" -c "SET TimeZone = 'UTC'" \
        -c "SELECT run_billing('2025-05-01 12:00+00')" >>"$OUT/dump_restore_business.out" 2>&1
done
month() {
    "${PSQL[@]}" -d "$1" -c "SELECT string_agg(a.external_id || ' ' || i.number || ' ' || i.total, ', ' ORDER BY i.number_seq)
                              FROM subbilling.invoices i JOIN subbilling.accounts a ON a.id = i.account_id
                             WHERE i.issue_date = '2025-05-01'"
}
A=$(month sb_dump_a)
B=$(month sb_dump_b)
is "$B" "$A" "the next month bills the same invoices with the same numbers and amounts in both databases"
gapless() {
    "${PSQL[@]}" -d "$1" -c "SELECT count(*) = max(number_seq) AND min(number_seq) = 1 FROM subbilling.invoices
                              WHERE series_id = (SELECT id FROM subbilling.invoice_series WHERE code = '2025')"
}
is "$(gapless sb_dump_b)" "t" "the restored database numbers on without a gap"
is "$("${PSQL[@]}" -d sb_dump_b -c "SELECT count(*) > 0 FROM subbilling.events_after($CURSOR)")" "t" \
   "the restored database's new events follow the cursor"

# The worker, the bank import and the settings work on the restored data.
"${PSQL[@]}" -d sb_dump_b -c "SET TimeZone = 'UTC'" -c "SELECT subbilling.run_worker_cycle('2025-05-02 12:00+00')" \
    >>"$OUT/dump_restore_business.out" 2>&1
ok $? "the worker's cycle runs in the restored database (worker_runs goes on from its sequence)"
is "$(echo "SELECT repeated, imported + unmatched FROM subbilling.import_bgmax(:'bankfile', true)" | "${PSQL[@]}" -d sb_dump_b -v bankfile="$BANKFILE")" \
   "t|$("${PSQL[@]}" -d sb_dump_a -c "SELECT imported + unmatched FROM subbilling.bank_files")" \
   "the bank file imported before the dump is known as a repeat, with its payments"
is "$("${PSQL[@]}" -d sb_dump_b -c "SELECT (SELECT count(*) FROM subbilling.payments) + (SELECT count(*) FROM subbilling.unmatched_payments)")" \
   "$("${PSQL[@]}" -d sb_dump_a -c "SELECT (SELECT count(*) FROM subbilling.payments) + (SELECT count(*) FROM subbilling.unmatched_payments)")" \
   "the payments of the bank file are there once"
"${PSQL[@]}" -d sb_dump_b -c "UPDATE subbilling.payment_settings SET retry_days = '{3,5,7}'" \
    -c "INSERT INTO subbilling.ledger_accounts (code, name, kind) VALUES ('3991', 'After the restore', 'revenue')" >/dev/null 2>&1
ok $? "settings can be changed and rows added after the restore"
[ "$n" -eq 18 ] && [ "$failed" -eq 0 ]
