#!/usr/bin/env bash
# Upgrade test (TAP on stdout): a database that installed subbilling 0.1 and billed in it is
# updated with ALTER EXTENSION subbilling UPDATE TO '0.2' and then to the current version,
# keeps its invoices and numbers, bills on gaplessly, and ends up with exactly the objects of a
# fresh install; so does a database that installed 0.2 and billed in it: the schema
# dumps (pg_dump --schema-only --binary-upgrade, which includes an extension's own objects) are
# compared after dropping what differs by construction (object OIDs, the dropped column's
# placeholder).  Runs against the server PG* points at (scripts/test-cluster.sh, pg_virtualenv);
# needs a superuser.  Leaves no database behind.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-build/test}
mkdir -p "$OUT"
export PGOPTIONS='-c client_min_messages=warning'
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
. test/tap.sh
cleanup() { "${PSQL[@]}" -d postgres -c 'DROP DATABASE IF EXISTS sb_upgrade' -c 'DROP DATABASE IF EXISTS sb_upgrade02' \
                -c 'DROP DATABASE IF EXISTS sb_fresh' -c 'DROP DATABASE IF EXISTS sb_restore02' >/dev/null 2>&1
            rm -f "$OUT/upgrade02.dump"; }
CURRENT=$(sed -nE "s/^default_version = '([^']+)'/\1/p" subbilling.control)
trap cleanup EXIT
cleanup
echo "1..26"

"${PSQL[@]}" -d postgres -c 'CREATE DATABASE sb_upgrade' -c 'CREATE DATABASE sb_upgrade02' -c 'CREATE DATABASE sb_fresh'
"${PSQL[@]}" -d sb_upgrade -c "CREATE EXTENSION subbilling VERSION '0.1' CASCADE" >/dev/null
ok $? "0.1 installs from its committed script"

# A small business billed under an earlier version: two monthly invoices in series 2024.
small_business() {  # DATABASE
    "${PSQL[@]}" -d "$1" >>"$OUT/upgrade_business.out" 2>&1 <<'SQL'
SET search_path = subbilling, public;
SET TimeZone = 'UTC';
INSERT INTO products (code, name, tax_rate) VALUES ('u_saas', 'Upgrade test SaaS', 25);
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price)
VALUES ('u_m100', (SELECT id FROM products WHERE code = 'u_saas'), 'Monthly', 'base', '1 month', 'per_unit', '100.00 SEK');
INSERT INTO accounts (external_id, name, country, currency) VALUES ('u1', 'Upgrade customer', 'SE', 'SEK');
SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'u1'), 'u_m100', 1, '2024-01-01');
SELECT run_billing('2024-01-01 12:00+00');
SELECT run_billing('2024-02-01 12:00+00');
SQL
}
: >"$OUT/upgrade_business.out"
small_business sb_upgrade
ok $? "0.1 bills a subscription (two monthly invoices)"
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT next_number FROM subbilling.invoice_series WHERE code = '2024'")" "3" \
   "0.1 keeps the counter in invoice_series.next_number"

"${PSQL[@]}" -d sb_upgrade -c "ALTER EXTENSION subbilling UPDATE TO '0.2'" >"$OUT/upgrade_update.out" 2>&1
ok $? "ALTER EXTENSION subbilling UPDATE TO '0.2'"
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'subbilling'")" "0.2" \
   "the extension reports version 0.2"
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT c.next_number FROM subbilling.invoice_counters c JOIN subbilling.invoice_series s ON s.id = c.series_id WHERE s.code = '2024'")" "3" \
   "the counter moved to invoice_counters with its value"
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'subbilling.invoice_series'::regclass AND attname = 'next_number' AND NOT attisdropped")" "0" \
   "invoice_series has no next_number any more"

"${PSQL[@]}" -d sb_upgrade -c "SET search_path = subbilling, public" -c "SET TimeZone = 'UTC'" \
    -c "SELECT run_billing('2024-03-01 12:00+00')" >>"$OUT/upgrade_business.out" 2>&1
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT string_agg(number, ',' ORDER BY number_seq) FROM subbilling.invoices")" \
   "2024-000001,2024-000002,2024-000003" \
   "after the update billing goes on in the same series without a gap"
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT count(*) FROM subbilling.journal_entries e WHERE e.kind = 'invoice'")" "3" \
   "every invoice is booked, before and after the update"

# From 0.2 to the current version: the same database, and one that installed 0.2 directly.
"${PSQL[@]}" -d sb_upgrade -c "ALTER EXTENSION subbilling UPDATE TO '$CURRENT'" >>"$OUT/upgrade_update.out" 2>&1
ok $? "ALTER EXTENSION subbilling UPDATE TO '$CURRENT' (from 0.1 by way of 0.2)"
"${PSQL[@]}" -d sb_upgrade -c "SET search_path = subbilling, public" -c "SET TimeZone = 'UTC'" \
    -c "SELECT run_billing('2024-04-01 12:00+00')" >>"$OUT/upgrade_business.out" 2>&1
is "$("${PSQL[@]}" -d sb_upgrade -c "SELECT string_agg(number, ',' ORDER BY number_seq) FROM subbilling.invoices")" \
   "2024-000001,2024-000002,2024-000003,2024-000004" \
   "after the update to $CURRENT billing goes on in the same series without a gap"

"${PSQL[@]}" -d sb_upgrade02 -c "CREATE EXTENSION subbilling VERSION '0.2' CASCADE" >/dev/null
ok $? "0.2 installs from its committed script"
small_business sb_upgrade02
ok $? "0.2 bills a subscription (two monthly invoices)"
# the operator maps the product's revenue (restored after the update: see the end)
"${PSQL[@]}" -d sb_upgrade02 -c "INSERT INTO subbilling.ledger_mappings (purpose, detail, code, description)
                                  VALUES ('revenue', 'u_saas', '3001', 'the SaaS product')" >/dev/null
"${PSQL[@]}" -d sb_upgrade02 -c "ALTER EXTENSION subbilling UPDATE" >>"$OUT/upgrade_update.out" 2>&1
ok $? "ALTER EXTENSION subbilling UPDATE (from 0.2)"
is "$("${PSQL[@]}" -d sb_upgrade02 -c "SELECT extversion FROM pg_extension WHERE extname = 'subbilling'")" "$CURRENT" \
   "the extension reports version $CURRENT"
"${PSQL[@]}" -d sb_upgrade02 -c "SET search_path = subbilling, public" -c "SET TimeZone = 'UTC'" \
    -c "SELECT run_billing('2024-03-01 12:00+00')" >>"$OUT/upgrade_business.out" 2>&1
is "$("${PSQL[@]}" -d sb_upgrade02 -c "SELECT string_agg(number, ',' ORDER BY number_seq) FROM subbilling.invoices")" \
   "2024-000001,2024-000002,2024-000003" \
   "a database updated from 0.2 bills on in the same series without a gap"

"${PSQL[@]}" -d sb_fresh -c "CREATE EXTENSION subbilling CASCADE" >/dev/null
# Both schemas as pg_dump sees them, without OIDs, comments and the dropped column's traces
# (15 restores a dropped column with "WHERE attname = ... AND attrelid = ...", 16 on with
# "FROM (VALUES ...) WHERE attrelid = ... AND attname = v.dname"),
# nor the stored default of a column added with ALTER TABLE ... ADD COLUMN ... DEFAULT
# (binary_upgrade_set_missing_value: it serves only the rows older than the column; a fresh
# install creates the column with its table and has none).
dump() {
    pg_dump --schema-only --binary-upgrade --no-owner -d "$1" \
        | grep -v -e '^--' -e 'binary_upgrade_set_next' -e 'pg\.dropped' -e '^SET ' -e '^SELECT pg_catalog.set_config' \
                 -e '^SELECT pg_catalog.binary_upgrade_set_missing_value(' \
                 -e '^\\restrict' -e '^\\unrestrict' -e '^$' -e '^SELECT pg_catalog.setval' \
                 -e '^UPDATE pg_catalog.pg_attribute' -e '^  AND attrelid = ' \
                 -e '^WHERE attrelid = .*::pg_catalog.regclass$' -e '^  AND attname = v.dname;$' \
        | sed -E -e "s/oid = '[0-9]+'/oid = 'N'/" -e "s/'\{[0-9,]+\}'/'{N}'/" \
              -e "s/(binary_upgrade_create_empty_extension\('subbilling', .*), '\{N\}', '\{.*\}', (ARRAY\[)/\1, CONFIG, \2/"
}
# The rows of the tables that ship rows, as installed or as an update left them (without ids
# and times): an update ships the same rows as a fresh install, marked shipped (new rows) or
# edited (rows of the earlier version, which kept no record of an operator's changes).
shipped_rows() {
    "${PSQL[@]}" -d "$1" <<'SQL'
DO $$
DECLARE
    r   record;
    h   text;
BEGIN
    CREATE TEMP TABLE shipped_snap (rel text, content text);
    FOR r IN SELECT tg.tgrelid::regclass AS rel FROM pg_trigger tg
              WHERE tg.tgname LIKE '%\_shipped\_row' ORDER BY tg.tgrelid::regclass::text LOOP
        EXECUTE format('SELECT count(*) || '' '' || coalesce(md5(string_agg(j::text, E''\n'' ORDER BY j::text)), ''-'')
                          FROM (SELECT to_jsonb(t) - ''id'' - ''created_at'' - ''updated_at'' - ''policy_id'' - ''origin'' AS j
                                  FROM %s t WHERE t.origin IN (''shipped'', ''edited'')) s', r.rel) INTO h;
        INSERT INTO shipped_snap VALUES (r.rel::text, h);
    END LOOP;
END
$$;
SELECT rel || ': ' || content FROM shipped_snap ORDER BY rel;
SQL
}
# What pg_dump dumps of the extension's tables (the order they were marked in differs by
# construction: a fresh install marks in its parts' order, an update in its steps' order).
dump_config() {
    "${PSQL[@]}" -d "$1" -c "SELECT c::regclass || ' ' || coalesce(nullif(cond, ''), '(all rows)')
                               FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS u(c, cond)
                              WHERE x.extname = 'subbilling' ORDER BY 1"
}
dump sb_fresh >"$OUT/upgrade_fresh.sql"
for db in sb_upgrade sb_upgrade02; do
    dump $db >"$OUT/${db}_schema.sql"
    diff -u "$OUT/upgrade_fresh.sql" "$OUT/${db}_schema.sql" >"$OUT/${db}_schema.diff"
    rc=$?
    ok $rc "$db: an updated database has exactly the objects, definitions, comments and privileges of a fresh install"
    if [ $rc -ne 0 ]; then sed 's/^/# /' "$OUT/${db}_schema.diff" | head -60; fi
    is "$(shipped_rows $db)" "$(shipped_rows sb_fresh)" \
       "$db: the tables that ship rows hold the rows a fresh install ships"
    is "$(dump_config $db)" "$(dump_config sb_fresh)" \
       "$db: pg_dump dumps the same tables and sequences, with the same filters, as from a fresh install"
done
# A database updated from 0.2 with a ledger mapping of the operator's (its id is one that a
# fresh install gives to a mapping shipped since 0.2) and a changed shipped mapping: dumped
# and restored into a new database (a fresh install of the current version), every mapping
# comes back as it was, and new mappings can be added.
"${PSQL[@]}" -d sb_upgrade02 -c "UPDATE subbilling.ledger_mappings SET description = 'changed by the operator'
                                  WHERE purpose = 'revenue_rate' AND detail = 'reverse_charge'" >/dev/null
mappings() {
    "${PSQL[@]}" -d "$1" -c "SELECT string_agg(concat_ws('/', purpose, currency, detail, code, description, origin), ';'
                                               ORDER BY purpose, currency, detail)
                               FROM subbilling.ledger_mappings"
}
is "$("${PSQL[@]}" -d sb_upgrade02 -c "SELECT count(*) FROM subbilling.ledger_mappings m, subbilling.ledger_mappings s
                                        WHERE m.origin = 'user' AND s.detail IN ('reverse_charge', 'outside_scope', 'oss')
                                          AND m.id < s.id")" "4" \
   "sb_upgrade02: the operator's mapping has an id below the 4 mappings the update shipped"
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE sb_restore02'
pg_dump -Fc -d sb_upgrade02 -f "$OUT/upgrade02.dump" 2>"$OUT/upgrade02_dump.err" \
    && pg_restore --exit-on-error -d sb_restore02 "$OUT/upgrade02.dump" >"$OUT/upgrade02_restore.out" 2>&1
rc=$?
ok $rc "sb_upgrade02: pg_dump -Fc and pg_restore into a new database, without an error"
if [ $rc -ne 0 ]; then sed 's/^/# /' "$OUT/upgrade02_restore.out" | head -20; fi
is "$(mappings sb_restore02)" "$(mappings sb_upgrade02)" \
   "sb_upgrade02: every ledger mapping is restored as it was (the operator's, the changed and the shipped ones)"
"${PSQL[@]}" -d sb_restore02 -c "INSERT INTO subbilling.ledger_mappings (purpose, detail, code) VALUES ('revenue', 'u_other', '3001')" >/dev/null 2>&1
ok $? "sb_upgrade02: after the restore a new mapping gets a free id"
[ "$n" -eq 26 ] && [ "$failed" -eq 0 ]
