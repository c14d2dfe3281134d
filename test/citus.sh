#!/usr/bin/env bash
# The Citus tier: subbilling distributed on a throwaway Citus cluster (a coordinator and two
# workers on loopback ports), then the public API checked through the coordinator.  Runs when
# citus is installed in the PostgreSQL of $PG_CONFIG (its citus.so in pkglibdir), and prints a
# TAP skip otherwise (Citus is not in Debian's archive).  Output: TAP ("ok N - ...").
#
#   PG_CONFIG=/path/to/pg_config bash test/citus.sh
# Environment: PG_CONFIG (default: pg_config on PATH), CITUS_PORT (coordinator's port, default
# 5640; the workers take the next two), CITUS_KEEP=1 keeps the cluster running (for a look).
set -u
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-pg_config}
LIB=$("$PG_CONFIG" --pkglibdir)
BIN=$("$PG_CONFIG" --bindir)
if [ ! -e "$LIB/citus.so" ]; then
    echo "1..1"
    echo "ok 1 # skip citus is not installed in $LIB"
    exit 0
fi
PORT=${CITUS_PORT:-5640}
PORTS="$PORT $((PORT + 1)) $((PORT + 2))"
WORK=$(mktemp -d /tmp/subbilling-citus.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK"

stop_all() {
    local p
    [ -n "${WHPID:-}" ] && kill "$WHPID" 2>/dev/null
    for p in $PORTS; do
        [ -d "$WORK/n$p" ] && as_pg "$BIN/pg_ctl" -D "$WORK/n$p" -m immediate stop >/dev/null 2>&1
    done
    [ -n "${CITUS_KEEP:-}" ] || rm -rf "$WORK"
}
[ -n "${CITUS_KEEP:-}" ] || trap stop_all EXIT

for p in $PORTS; do
    as_pg "$BIN/initdb" -D "$WORK/n$p" -A trust -U postgres >"$WORK/initdb$p.log" 2>&1 || {
        echo "1..1"; echo "not ok 1 - initdb"; cat "$WORK/initdb$p.log"; exit 1; }
    cat >>"$WORK/n$p/postgresql.conf" <<CONF
port = $p
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_preload_libraries = 'citus,subbilling'
subbilling.worker_enabled = off
max_prepared_transactions = 100
fsync = off
CONF
    as_pg "$BIN/pg_ctl" -D "$WORK/n$p" -l "$WORK/n$p.log" -w start >/dev/null || {
        echo "1..1"; echo "not ok 1 - start node $p"; tail "$WORK/n$p.log"; exit 1; }
done

# psql on a node: q PORT SQL -> unaligned, tuples only; errors on stderr
q() { local p=$1; shift; "$BIN/psql" -X -h "$WORK" -p "$p" -U postgres -d subbilling -v ON_ERROR_STOP=1 -qAt "$@"; }
qc() { q "$PORT" "$@"; }

N=0; FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
nok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"; [ -n "${2:-}" ] && sed 's/^/# /' <<<"$2"; }
# a check calling a helper not (yet) defined fails instead of being skipped
command_not_found_handle() { nok "no such command in test/citus.sh: $1"; return 127; }
# is DESC SQL EXPECTED: the coordinator's answer to SQL is EXPECTED
is() {
    local got
    if got=$(qc -c "$2" 2>&1) && [ "$got" = "$3" ]; then ok "$1"
    else nok "$1" "$(printf 'got:      %s\nexpected: %s' "$got" "$3")"; fi
}
# runs DESC SQL: SQL succeeds on the coordinator
runs() {
    local out
    if out=$(qc -c "$2" 2>&1); then ok "$1"; else nok "$1" "$out"; fi
}
# fails DESC SQL PATTERN: SQL fails on the coordinator with a message matching PATTERN
fails() {
    local out
    if out=$(qc -c "$2" 2>&1); then nok "$1" "succeeded: $out"
    elif grep -q -- "$3" <<<"$out"; then ok "$1"
    else nok "$1" "$out"; fi
}

for p in $PORTS; do
    "$BIN/createdb" -h "$WORK" -p "$p" -U postgres subbilling
    q "$p" -c "CREATE EXTENSION citus" 2>>"$WORK/setup.log"
done
qc -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)" >/dev/null
for p in $((PORT + 1)) $((PORT + 2)); do
    qc -c "SELECT citus_add_node('127.0.0.1', $p)" >/dev/null
done
is "two worker nodes" "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0" "2"
runs "CREATE EXTENSION subbilling on the coordinator" "CREATE EXTENSION subbilling CASCADE"
if out=$(qc -c "SELECT count(*) FROM subbilling.distribute(4)" 2>&1); then nok "distribute() asks for the search_path first" "$out"
elif grep -q "search_path does not include subbilling" <<<"$out"; then ok "distribute() asks for the search_path first"
else nok "distribute() asks for the search_path first" "$out"; fi
runs "the database's search_path" 'ALTER DATABASE subbilling SET search_path = "$user", public, subbilling'
runs "distribute()" "SELECT count(*) FROM subbilling.distribute(4)"
is "accounts and the customer tables are distributed, colocated" \
   "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
     WHERE partmethod = 'h' AND logicalrelid::text LIKE 'subbilling%'
       AND logicalrelid <> 'subbilling_internal.account_external_ids'::regclass" "1"
is "accounts is distributed by id" \
   "SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition WHERE logicalrelid = 'subbilling.accounts'::regclass" "id"
is "the catalog is reference tables" \
   "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
     WHERE p.partmethod = 'n' AND p.repmodel = 't' AND c.relname IN ('plans', 'products')" \
   "plans,products"
runs "distribute() again changes nothing" "SELECT count(*) FROM subbilling.distribute(4)"
# distribute()'s commands to the workers: DDL propagation off, a refusal raised
runs "run_on_workers: a command on every worker" \
     "SELECT subbilling_internal.run_on_workers('CREATE TABLE public.run_on_workers_probe (x int)')"
is "run_on_workers: it ran on both workers" \
   "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT to_regclass('public.run_on_workers_probe') IS NOT NULL\$\$)" "t,t"
fails "run_on_workers: a worker's refusal raises (55000)" \
      "SELECT subbilling_internal.run_on_workers('ALTER TABLE public.run_on_workers_probe ADD COLUMN x int')" \
      "a worker node refused a command of distribute()"
runs "run_on_workers: clean up" "SELECT subbilling_internal.run_on_workers('DROP TABLE public.run_on_workers_probe')"
is "the subbilling extension is on every worker" \
   "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT extversion FROM pg_extension WHERE extname = 'subbilling'\$\$)" \
   "$(qc -c "SELECT extversion || ',' || extversion FROM pg_extension WHERE extname = 'subbilling'")"

# The public API through the coordinator
SETUP="SET search_path = subbilling, public;"
runs "catalog: a product and a plan" "$SETUP
    INSERT INTO products (code, name, tax_rate) VALUES ('citus', 'Citus product', 25);
    INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
    SELECT 'citus-monthly', id, 'Monthly', '1 month', 'flat', '100.00 SEK' FROM products WHERE code = 'citus'"
runs "accounts on both workers" "$SETUP
    INSERT INTO accounts (name, country, currency) SELECT 'Customer ' || g, 'SE', 'SEK' FROM generate_series(1, 8) g"
is "the accounts are spread over the workers" \
   "SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement p
     WHERE p.shardid = ANY (ARRAY(SELECT get_shard_id_for_distribution_column('subbilling.accounts', a.id) FROM subbilling.accounts a))" "2"
# one call per account, as an application makes them (a call inside a query over accounts
# would run on the shards)
runs "subscribe on every account" "
    DO \$\$ DECLARE a bigint; BEGIN
        FOR a IN SELECT id FROM subbilling.accounts ORDER BY id LOOP
            PERFORM subbilling.subscribe(a, 'citus-monthly', 1, current_date - 40);
            COMMIT;
        END LOOP; END \$\$"
is "a subscription per account" "SELECT count(*) FROM subbilling.subscriptions" "8"
ACC=$(qc -c "SELECT min(id) FROM subbilling.accounts")
runs "subscribe with a repeating campaign" "$SETUP
    INSERT INTO campaigns (code, name, percent_off, duration, duration_periods) VALUES ('citus3', 'Three months', 10, 'repeating', 3);
    SELECT subscribe($ACC, 'citus-monthly', 1, current_date, 'citus3')"
is "the campaign's discount, for its periods" \
   "SELECT percent_off || '/' || periods FROM subbilling.subscription_discounts WHERE account_id = $ACC" "10/3"
SUB=$(qc -c "SELECT max(id) FROM subbilling.subscriptions")
runs "change_quantity by subscription id (locked by account and id)" "SELECT subbilling.change_quantity($SUB, 2)"
is "the new quantity" "SELECT quantity FROM subbilling.subscription_items
    WHERE subscription_id = $SUB AND kind = 'base' AND voided_at IS NULL AND upper_inf(validity)" "2"
runs "run_billing" "SELECT subbilling.run_billing(now())"
is "billing wrote invoices" "SELECT count(*) > 0 FROM subbilling.invoices" "t"

# billing, payments, dunning
# (8 subscriptions started 40 days ago, two monthly periods of 100.00 SEK + 25 % VAT each;
# the campaign subscription started today, 10 % off its first period)
is "billing: no billing errors" "SELECT count(*) FROM subbilling.billing_errors" "0"
is "billing: one invoice per due subscription, every account" \
   "SELECT count(*) || '/' || count(DISTINCT subscription_id) || '/' || count(DISTINCT account_id) FROM subbilling.invoices" "9/9/8"
is "billing: invoiced accounts on both workers" \
   "SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement p
     WHERE p.shardid = ANY (ARRAY(SELECT get_shard_id_for_distribution_column('subbilling.accounts', i.account_id)
                                  FROM subbilling.invoices i))" "2"
is "billing: amounts (two periods each, the campaign's first period 10 % off)" \
   "SELECT count(*) FILTER (WHERE total = '250.00 SEK') || ' x 250.00 SEK, ' || count(*) FILTER (WHERE total = '112.50 SEK')
           || ' x 112.50 SEK, sum ' || sum(minor_units(total)) FROM subbilling.invoices" "8 x 250.00 SEK, 1 x 112.50 SEK, sum 211250"
is "billing: a line per period (and the campaign's discount line)" \
   "SELECT count(*) FILTER (WHERE minor_units(net) = 10000) || '/' || count(*) FILTER (WHERE kind = 'discount')
      FROM subbilling.invoice_lines" "17/1"
is "billing: numbers 1 to 9 of one series, gapless, the counter moved once to 10" \
   "SELECT min(i.number_seq) || '-' || max(i.number_seq) || '/' || count(DISTINCT i.number_seq) || ' next ' ||
           max(c.next_number) || ' series ' || count(DISTINCT c.series_id)
      FROM subbilling.invoices i JOIN subbilling.invoice_counters c ON c.series_id = i.series_id" "1-9/9 next 10 series 1"
is "billing: each invoice booked once" \
   "SELECT count(*) || '/' || count(DISTINCT invoice_id) || '/' || bool_and(kind = 'invoice') FROM subbilling.journal_entries" "9/9/true"
is "billing: the journal balances, receivables = the invoices' totals" \
   "SELECT sum(minor_units(amount)) || '/' || sum(minor_units(amount)) FILTER (WHERE subledger = 'receivables')
      FROM subbilling.journal_lines" "0/211250"
is "billing: events invoice.created and invoice.finalized for each" \
   "SELECT count(*) FILTER (WHERE type = 'invoice.created') || '/' || count(*) FILTER (WHERE type = 'invoice.finalized')
      FROM subbilling.events" "9/9"
is "billing ran on the workers (delegated by shard): each line's id from its account's worker's range, ids unique" \
   "SELECT bool_and((l.id >> 48) = n.groupid) || '/' || (count(*) = count(DISTINCT l.id)) || '/' || count(DISTINCT n.groupid)
      FROM subbilling.invoice_lines l
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', l.account_id)
      JOIN pg_dist_node n ON n.nodeport = p.nodeport" "true/true/2"
is "billing: invoice, journal-entry and event ids drawn on the coordinator (below the workers' ranges)" \
   "SELECT (SELECT max(id) < 1::bigint << 48 FROM subbilling.invoices) AND (SELECT max(id) < 1::bigint << 48 FROM subbilling.journal_entries)
       AND (SELECT max(id) < 1::bigint << 48 FROM subbilling.events)" "t"
is "billing: events_after on the coordinator hands out every event, in id order" \
   "SELECT (SELECT array_agg(id) FROM subbilling.events_after(0, 100000))
           = (SELECT array_agg(id ORDER BY id) FROM subbilling.events)" "t"
is "billing: a second run bills nothing" "SELECT subbilling.run_billing(now())" "0"
SUB2=$(qc -c "SELECT min(id) FROM subbilling.subscriptions WHERE account_id = $ACC")
is "preview_invoice: the next period" \
   "SELECT string_agg(kind || ' ' || net::text || ' ' || tax::text, ',') FROM subbilling.preview_invoice($SUB2, current_date + 31)" \
   "recurring 100.00 SEK 25.00 SEK"
is "account_balance: the account's two open invoices" "SELECT subbilling.account_balance($ACC)" "362.50 SEK"
runs "events_after reads the outbox" "SELECT count(*) FROM subbilling.events_after(0)"
is "event ids are unique" "SELECT count(*) = count(DISTINCT id) FROM subbilling.events" "t"
INV=$(qc -c "SELECT i.total || '|' || subbilling.payment_reference('SE', i.id) || '|' || i.id || '|' || i.account_id
              FROM subbilling.invoices i WHERE i.status = 'open' AND i.account_id = $ACC ORDER BY i.id LIMIT 1" 2>&1)
IFS='|' read -r INV_TOTAL INV_REF INV_ID INV_ACC <<<"$INV"
runs "register_payment by reference" "SELECT subbilling.register_payment('$INV_TOTAL', '$INV_REF', current_date, 'bankgiro')"
is "the payment is booked on its invoice" "SELECT count(*) FROM subbilling.payments" "1"
is "payment: the invoice is paid, its open amount zero"    "SELECT i.status || ' ' || subbilling.invoice_open_amount($INV_ACC, $INV_ID)::text FROM subbilling.invoices i
     WHERE i.account_id = $INV_ACC AND i.id = $INV_ID" "paid 0.00 SEK"
is "payment: its entry (bank against receivables)"    "SELECT count(*) || ' ' || (sum(l.amount) FILTER (WHERE l.subledger = 'receivables'))::text
      FROM subbilling.journal_entries e JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
     WHERE e.account_id = $INV_ACC AND e.kind = 'payment'" "2 -$INV_TOTAL"
is "account_balance: less the payment" "SELECT subbilling.account_balance($ACC)" \
   "$(qc -c "SELECT (price '362.50 SEK' - price '$INV_TOTAL')::text")"
runs "run_dunning" "SELECT subbilling.run_dunning(current_date + 60)"
is "dunning: no dunning errors" "SELECT count(*) FROM subbilling.billing_errors WHERE invoice_id IS NOT NULL" "0"
is "dunning: every overdue open invoice got its overdue notice (step 0), on both workers" \
   "SELECT count(*) || '/' || count(DISTINCT p.nodeport)
      FROM subbilling.dunning_actions d
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', d.account_id)
     WHERE d.step_no = 0" \
   "$(qc -c "SELECT count(*) FROM subbilling.invoices WHERE status = 'open' AND kind = 'invoice' AND due_date < current_date + 60")/2"
# the next step's fee invoices: numbered from one block per series, the counter (a reference
# table, written on every node) moved once per batch, not once per fee invoice
DUN=$(qc -c "SET citus.log_remote_commands = on" -c "SELECT subbilling.run_dunning(current_date + 75)" 2>&1)
is "dunning: a later run takes the next step, fee invoices on both workers" \
   "SELECT (count(*) > 1) || '/' || count(DISTINCT p.nodeport)
      FROM subbilling.dunning_actions d
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', d.account_id)
     WHERE d.step_no = 2 AND d.fee_invoice_id IS NOT NULL" "true/2"
is "dunning: the invoice counter written once for the batch (one UPDATE per worker)" \
   "SELECT $(grep -c 'issuing UPDATE subbilling.invoice_counters' <<<"$DUN")" "2"
is "dunning: the fee invoices' numbers gapless, the counter after the last" \
   "SELECT count(*) = count(DISTINCT i.number_seq) AND max(i.number_seq) - min(i.number_seq) + 1 = count(*)
           AND max(i.number_seq) + 1 = max(c.next_number)
      FROM subbilling.invoices i JOIN subbilling.invoice_counters c ON c.series_id = i.series_id
     WHERE i.series_id = (SELECT x.series_id FROM subbilling.invoices x
                           WHERE x.id = (SELECT max(d.fee_invoice_id) FROM subbilling.dunning_actions d))" "t"
is "dunning: no dunning errors after the second run" "SELECT count(*) FROM subbilling.billing_errors WHERE invoice_id IS NOT NULL" "0"

# ---------------------------------------------------------------- the id-taking API and the schema
# External ids unique across the cluster, the foreign keys kept, ids unique across the workers,
# every public function that takes an account, subscription, invoice or payment id called once
# through the coordinator with a check of what it did, and the events relay.
S="SET search_path = subbilling, public;"
# node_of TABLE VALUE: the port of the node holding VALUE's shard of TABLE
node_of() {
    qc -c "SELECT p.nodeport FROM pg_dist_shard_placement p
            WHERE p.shardid = get_shard_id_for_distribution_column('$1', '$2')"
}

# the schema: foreign keys as on one server, but for those Citus cannot keep (from a reference
# table into a distributed one); compared with a fresh installation on the coordinator
if [ -z "${CITUS_API_PLAIN:-}" ]; then
"$BIN/createdb" -h "$WORK" -p "$PORT" -U postgres plain
"$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d plain -qAt -c "CREATE EXTENSION subbilling CASCADE" >/dev/null 2>&1
FK_SQL="SELECT c.relname || '.' || k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
         WHERE k.contype = 'f' AND c.relnamespace = 'subbilling'::regnamespace AND c.relname !~ '_[0-9]+\$' ORDER BY 1"
FK_PLAIN=$("$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d plain -qAt -c "$FK_SQL")
FK_CITUS=$(qc -c "$FK_SQL")
is "foreign keys: a fresh installation has them" "SELECT $(wc -l <<<"$FK_PLAIN") > 60" "t"
got=$(comm -23 <(echo "$FK_PLAIN") <(echo "$FK_CITUS") | paste -sd, -)
want="autogiro_claims.autogiro_claims_account_id_payment_request_id_fkey,autogiro_mandates.autogiro_mandates_account_id_fkey,autogiro_payouts.autogiro_payouts_account_id_fkey,avtalegiro_agreements.avtalegiro_agreements_account_id_fkey,avtalegiro_claims.avtalegiro_claims_account_id_payment_request_id_fkey,webhook_deliveries.webhook_deliveries_account_id_event_id_fkey"
if [ "$got" = "$want" ]; then ok "foreign keys after distribute(): all kept but the six from reference tables into distributed ones"
else nok "foreign keys after distribute(): all kept but the six from reference tables into distributed ones" "missing: $got"; fi
is "foreign keys after distribute(): none added" "SELECT '$(comm -13 <(echo "$FK_PLAIN") <(echo "$FK_CITUS") | paste -sd, -)'" ""
is "the reference tables' foreign keys are on the workers' shards" \
   "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_constraint
     WHERE contype = 'f' AND conname ~ '^(plans_product_id_fkey|dunning_steps_policy_id_fkey)_[0-9]+\$'\$\$)" "2,2"
fails "the reference tables' foreign keys hold" "$S INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
    VALUES ('no-product', -1, 'x', '1 month', 'flat', '1.00 SEK')" "plans_product_id_fkey"
is "distribute() again: the same placements, as Citus has them" \
   "SELECT (SELECT string_agg(table_name::text || ':' || placement, ',' ORDER BY table_name::text) FROM subbilling.distribute(4))
         = (SELECT string_agg(logicalrelid::regclass::text || ':' || CASE partmethod WHEN 'h' THEN 'distributed' ELSE 'reference' END,
                              ',' ORDER BY logicalrelid::regclass::text)
              FROM pg_dist_partition)" "t"
# refusing data it cannot move, on a Citus database
"$BIN/createdb" -h "$WORK" -p "$PORT" -U postgres withdata
"$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d withdata -qAt -c "CREATE EXTENSION citus" \
    -c "CREATE EXTENSION subbilling CASCADE" -c 'ALTER DATABASE withdata SET search_path = "$user", public, subbilling' \
    -c "INSERT INTO subbilling.accounts (name, country, currency) VALUES ('Early', 'SE', 'SEK')" >/dev/null 2>&1
out=$("$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d withdata -qAt -c "SELECT count(*) FROM subbilling.distribute(4)" 2>&1)
if grep -q "table accounts already holds customer rows" <<<"$out"; then ok "distribute() refuses a database with customer rows (55000)"
else nok "distribute() refuses a database with customer rows (55000)" "$out"; fi
got=$("$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d withdata -qAt -c "SELECT count(*) FROM pg_dist_partition" 2>&1)
if [ "$got" = "0" ]; then ok "... and converts nothing"; else nok "... and converts nothing" "$got"; fi
is "two functions registered for delegation by account: the billing and the dunning of a shard's accounts" \
   "SELECT string_agg(objid::regproc::text || ' ' || distribution_argument_index || ' ' ||
                      (colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'subbilling.accounts'::regclass)), ','
                      ORDER BY objid::regproc::text)
      FROM pg_dist_object WHERE classid = 'pg_proc'::regclass AND distribution_argument_index IS NOT NULL" \
   "subbilling_internal.bill_accounts_citus 0 true,subbilling_internal.dunning_accounts_citus 0 true"
# Citus 13.2 keeps one more local plan per execution of a cached generic plan on a shard's
# node (citusdata/citus#8824): the delegated functions plan at each execution, on every worker
is "the delegated functions plan their statements at each execution, on both workers" \
   "SELECT string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT count(*) FILTER (WHERE 'plan_cache_mode=force_custom_plan' = ANY (p.proconfig))
        || '/' || count(*) FROM pg_dist_object o JOIN pg_proc p ON p.oid = o.objid
     WHERE o.classid = 'pg_proc'::regclass AND o.distribution_argument_index IS NOT NULL\$\$)" \
   "2/2,2/2"
is "the workers' sequences have ranges of their own (group id << 48)" \
   "SELECT string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT count(*) FILTER (WHERE s.seqmin = (l.groupid::bigint << 48) + 1)
        || '/' || count(*) FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid, pg_dist_local_group l
     WHERE c.relname IN ('events_id_seq', 'invoices_id_seq', 'invoice_lines_id_seq', 'journal_lines_id_seq', 'billing_errors_id_seq')\$\$)" \
   "5/5,5/5"

fi

# the catalog and accounts of these checks
runs "api: catalog" "$S
    INSERT INTO products (code, name, tax_rate) VALUES ('api', 'API product', 25);
    INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price, tiers, billing_timing, delivery_period)
    SELECT v.code, p.id, v.name, v.kind, '1 month', v.model, v.price::price, v.tiers::tier[], v.timing, v.dp::billing_period
      FROM products p,
           (VALUES ('api-basic', 'Basic', 'base', 'flat', '100.00 SEK', NULL, 'in_advance', '1 month'),
                   ('api-pro', 'Pro', 'base', 'flat', '200.00 SEK', NULL, 'in_advance', NULL),
                   ('api-addon', 'Add-on', 'addon', 'per_unit', '10.00 SEK', NULL, 'in_advance', NULL),
                   ('api-calls', 'Calls', 'addon', 'usage', NULL, '{\"(,0.01 SEK,)\"}', 'in_arrears', NULL))
           AS v(code, name, kind, model, price, tiers, timing, dp)
     WHERE p.code = 'api';
    INSERT INTO plan_delivery_items (plan_id, sku, description, quantity) SELECT id, 'BOX', 'A box', 1 FROM plans WHERE code = 'api-basic';
    INSERT INTO features (code, name, unit) VALUES ('api-sso', 'SSO', NULL), ('api-seats', 'Seats', 'seats');
    SELECT set_plan_feature('api-pro', 'api-sso'), set_plan_feature('api-pro', 'api-seats', 5);
    INSERT INTO seller_settings (country, currency, vat_number, legal_name, address, f_skatt)
    SELECT 'SE', 'SEK', '556677-8899', 'API Seller AB', 'Storgatan 1, 111 22 Stockholm', true
     WHERE NOT EXISTS (SELECT FROM seller_settings);
    INSERT INTO seller_invoice_details (street, postal_code, city, email, bankgiro)
    SELECT 'Storgatan 1', '111 22', 'Stockholm', 'faktura@api.example', '5050-1055'
     WHERE NOT EXISTS (SELECT FROM seller_invoice_details)"
runs "api: accounts, their external ids set in one transaction" "$S
    INSERT INTO accounts (name, country, currency) SELECT 'API ' || g, 'SE', 'SEK' FROM generate_series(1, 8) g;
    DO \$\$ DECLARE a record; BEGIN
        FOR a IN SELECT id, name FROM subbilling.accounts WHERE name LIKE 'API %' ORDER BY id LOOP
            PERFORM subbilling.set_account_external_id(a.id, 'api-ext-' || substr(a.name, 5));
        END LOOP; END \$\$"
runs "200 accounts and their external ids in one transaction" "$S
    INSERT INTO accounts (name, country, currency) SELECT 'Bulk ' || g, 'SE', 'SEK' FROM generate_series(1, 200) g;
    DO \$\$ DECLARE a record; BEGIN
        FOR a IN SELECT id, name FROM subbilling.accounts WHERE name LIKE 'Bulk %' ORDER BY id LOOP
            PERFORM subbilling.set_account_external_id(a.id, 'bulk-' || substr(a.name, 6));
        END LOOP; END \$\$"
is "external ids: all set" "SELECT count(external_id) FROM subbilling.accounts WHERE name LIKE 'API %' OR name LIKE 'Bulk %'" "208"

# external ids: unique across the installation
fails "a duplicate external id is refused" "$S SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'API 5'), 'api-ext-3')" \
    "duplicate key value violates unique constraint"
if [ -z "${CITUS_API_PLAIN:-}" ]; then
fails "an external id written past set_account_external_id is refused" \
    "$S INSERT INTO accounts (external_id, name, country, currency) VALUES ('api-direct', 'Direct', 'SE', 'SEK')" \
    "the external id of an account is set with set_account_external_id"
fi
runs "a rolled-back external id stays free" "$S
    BEGIN; INSERT INTO subbilling.accounts (name, country, currency) VALUES ('Rolled back', 'SE', 'SEK');
    SELECT subbilling.set_account_external_id(max(id), 'api-rb') FROM subbilling.accounts WHERE name = 'Rolled back'; ROLLBACK;
    INSERT INTO subbilling.accounts (name, country, currency) VALUES ('Committed', 'SE', 'SEK');
    SELECT subbilling.set_account_external_id(max(id), 'api-rb') FROM subbilling.accounts WHERE name = 'Committed'"
runs "an external id changed" "$S SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'API 1'), 'api-ext-1b')"
runs "the old external id is free again" "$S INSERT INTO accounts (name, country, currency) VALUES ('New one', 'SE', 'SEK');
    SELECT set_account_external_id((SELECT id FROM accounts WHERE name = 'New one'), 'api-ext-1')"
is "account_by_external_id finds each account" "$S
    SELECT account_by_external_id('api-ext-1b') = (SELECT id FROM accounts WHERE name = 'API 1')
       AND account_by_external_id('api-ext-1') = (SELECT id FROM accounts WHERE name = 'New one')
       AND account_by_external_id('api-ext-8') = (SELECT id FROM accounts WHERE name = 'API 8')
       AND account_by_external_id('bulk-200') = (SELECT id FROM accounts WHERE name = 'Bulk 200')
       AND account_by_external_id('api-rb') = (SELECT id FROM accounts WHERE name = 'Committed')
       AND account_by_external_id('nobody') IS NULL" "t"
if [ -n "${CITUS_API_PLAIN:-}" ]; then :; else
is "the lookup table holds every external id once (distributed by external id)" \
   "SELECT (SELECT count(*) FROM subbilling_internal.account_external_ids) = (SELECT count(external_id) FROM subbilling.accounts)
       AND (SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition
             WHERE logicalrelid = 'subbilling_internal.account_external_ids'::regclass) = 'external_id'" "t"
far=0
for e in 1 1b 2 3 4 5 6 7 8; do
    a=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-$e'")
    [ "$(node_of subbilling.accounts "$a")" != "$(node_of subbilling_internal.account_external_ids "api-ext-$e")" ] && far=$((far + 1))
done
is "some external ids are kept on another node than their account" "SELECT $far > 0" "t"
is "the grants of external ids are colocated with accounts" \
   "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
     WHERE logicalrelid IN ('subbilling.accounts'::regclass, 'subbilling_internal.account_external_id_grants'::regclass)" "1"
fi

A=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-2'")
B=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-3'")
C=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-4'")
runs "subscribe(account_id, ...)" "SELECT subbilling.subscribe($A, 'api-basic', 1, current_date - 10)"
is "subscribe: the subscription" "SELECT count(*) FROM subbilling.subscriptions WHERE account_id = $A" "1"
SA=$(qc -c "SELECT id FROM subbilling.subscriptions WHERE account_id = $A")
is "subscription_status(subscription_id)" "SELECT subbilling.subscription_status($SA)" "active"
is "subscription_items_on(subscription_id)" "SELECT count(*) FROM subbilling.subscription_items_on($SA, current_date)" "1"
runs "change_quantity(subscription_id)" "SELECT subbilling.change_quantity($SA, 3)"
is "change_quantity: the new quantity" "SELECT quantity FROM subbilling.subscription_items
    WHERE account_id = $A AND subscription_id = $SA AND kind = 'base' AND voided_at IS NULL AND upper_inf(validity)" "3"
ADDON="SELECT count(*) FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
        WHERE i.account_id = $A AND i.subscription_id = $SA AND p.code = 'api-addon' AND i.voided_at IS NULL
          AND (upper_inf(i.validity) OR upper(i.validity) > current_date)"
runs "add_addon(subscription_id)" "SELECT subbilling.add_addon($SA, 'api-addon', 2)"
is "add_addon: the add-on's item" "$ADDON" "1"
runs "remove_addon(subscription_id)" "SELECT subbilling.remove_addon($SA, 'api-addon', current_date)"
is "remove_addon: the add-on's item ends" "$ADDON" "0"
runs "record_usage(subscription_id) on a metered add-on" "SELECT subbilling.add_addon($SA, 'api-calls');
    SELECT subbilling.record_usage($SA, 'api-calls', 5, now(), 'api-k1');
    SELECT subbilling.record_usage($SA, 'api-calls', 5, now(), 'api-k1')"
is "record_usage: one usage row (the retry changes nothing)" "SELECT count(*) || '/' || sum(quantity) FROM subbilling.usage WHERE account_id = $A" "1/5"
runs "set_shipping_address(account_id)" "SELECT subbilling.set_shipping_address($A, 'API 2', 'Storgatan 1', '111 22', 'Stockholm', 'SE')"
is "set_shipping_address: the address" "SELECT city FROM subbilling.shipping_addresses WHERE account_id = $A" "Stockholm"
DD=$(qc -c "SELECT (current_date - 10 + interval '1 month')::date")
runs "skip_delivery(subscription_id)" "SELECT subbilling.skip_delivery($SA, '$DD')"
is "skip_delivery: the delivery is skipped" "SELECT status FROM subbilling.delivery_records WHERE account_id = $A AND delivery_date = '$DD'" "skipped"
is "preview_invoice(subscription_id)" "SELECT count(*) > 0 FROM subbilling.preview_invoice($SA, current_date + 40)" "t"
runs "change_plan(subscription_id)" "SELECT subbilling.change_plan($SA, 'api-pro')"
is "change_plan: the base item's plan" "SELECT p.code FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
    WHERE i.account_id = $A AND i.subscription_id = $SA AND i.kind = 'base' AND i.voided_at IS NULL AND upper_inf(i.validity)" "api-pro"
is "has_access(account_id) after the plan change" "SELECT subbilling.has_access($A, 'api-sso')::text || '/' || subbilling.has_access($B, 'api-sso')::text" "true/false"
is "entitlement_limit(account_id)" "SELECT subbilling.entitlement_limit($A, 'api-seats')" "5"
is "refresh_entitlements(account_id)" "SELECT subbilling.refresh_entitlements($A) >= 0 AND subbilling.has_access($A, 'api-sso')" "t"
runs "pause(subscription_id)" "SELECT subbilling.pause($SA, current_date + 5, current_date + 15)"
is "pause: the pause" "SELECT upper(during) - current_date FROM subbilling.subscription_pauses WHERE account_id = $A" "15"
runs "resume(subscription_id)" "SELECT subbilling.resume($SA, current_date + 10)"
is "resume: the pause ends early" "SELECT upper(during) - current_date FROM subbilling.subscription_pauses WHERE account_id = $A" "10"
runs "set_subscription_status(subscription_id)" "SELECT subbilling.set_subscription_status($SA, 'suspended', 'api check')"
is "set_subscription_status: the status" "SELECT status FROM subbilling.subscriptions WHERE account_id = $A AND id = $SA" "suspended"
runs "set_subscription_status(subscription_id) back" "SELECT subbilling.set_subscription_status($SA, 'active', 'api check')"
is "subscription_history(subscription_id)" "SELECT count(*) >= 4 AND bool_or(plan_code = 'api-pro') AND bool_or(plan_code = 'api-addon')
    FROM subbilling.subscription_history($SA)" "t"
runs "cancel(subscription_id)" "SELECT subbilling.cancel($SA)"
is "cancel: the subscription ends" "SELECT cancel_at IS NOT NULL FROM subbilling.subscriptions WHERE account_id = $A AND id = $SA" "t"
runs "register_autogiro_mandate(account_id)" "$S INSERT INTO payment_methods (account_id, kind, is_default) VALUES ($B, 'autogiro', true);
    SELECT register_autogiro_mandate($B, '9001')"
is "register_autogiro_mandate: the mandate" "SELECT payer_number || '/' || account_id FROM subbilling.autogiro_mandates WHERE payer_number = '9001'" "9001/$B"
is "account_balance(account_id) and customer_credit(account_id)" \
   "SELECT subbilling.account_balance($A)::text || '/' || subbilling.customer_credit($A)::text" "0.00 SEK/0.00 SEK"

# invoice and payment ids: a draft written by hand on account C, finalised, then paid,
# refunded and credited (no billing run needed)
runs "a draft invoice by hand" "$S
    INSERT INTO account_invoice_details (account_id, org_number, street, postal_code, city, buyer_reference)
    VALUES ($C, '202100-0001', 'Rådhusgatan 1', '123 45', 'Exempelby', 'API-1');
    INSERT INTO invoices (account_id, currency, net, tax, total) VALUES ($C, 'SEK', '0 SEK', '0 SEK', '0 SEK')"
IC=$(qc -c "SELECT max(id) FROM subbilling.invoices WHERE account_id = $C")
runs "its line" "$S INSERT INTO invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
    VALUES ($C, $IC, 'setup', 'Installation', '1000.00 SEK', 25, '250.00 SEK')"
runs "finalize_invoice(invoice_id)" "SELECT subbilling.finalize_invoice($IC)"
is "finalize_invoice: open, numbered, total" "SELECT status || '/' || (number IS NOT NULL) || '/' || total FROM subbilling.invoices WHERE account_id = $C AND id = $IC" "open/true/1250.00 SEK"
is "invoice_open_amount(account_id, invoice_id)" "SELECT subbilling.invoice_open_amount($C, $IC)" "1250.00 SEK"
is "invoice_html(invoice_id)" "SELECT subbilling.invoice_html($IC) ~ 'Installation'" "t"
is "invoice_ubl(invoice_id)" "SELECT subbilling.invoice_ubl($IC)::text ~ '<Invoice'" "t"
REF=$(qc -c "SELECT reference FROM subbilling.invoices WHERE account_id = $C AND id = $IC")
runs "register_payment by the invoice's reference" "SELECT subbilling.register_payment('250.00 SEK', '$REF', current_date, 'bankgiro', 'api-pay-1')"
is "register_payment: booked on the invoice" "SELECT subbilling.invoice_open_amount($C, $IC)" "1000.00 SEK"
runs "an unmatched payment" "SELECT subbilling.register_payment('100.00 SEK', 'no such reference', current_date, 'bankgiro', 'api-pay-2')"
UP=$(qc -c "SELECT id FROM subbilling.unmatched_payments WHERE external_id = 'api-pay-2'")
runs "match_payment(payment_id, invoice_id)" "SELECT subbilling.match_payment($UP, $IC)"
is "match_payment: booked on the invoice" "SELECT subbilling.invoice_open_amount($C, $IC)" "900.00 SEK"
P1=$(qc -c "SELECT id FROM subbilling.payments WHERE account_id = $C AND external_id = 'api-pay-1'")
runs "refund(payment_id)" "SELECT subbilling.refund($P1, '50.00 SEK')"
is "refund: the refund" "SELECT amount FROM subbilling.refunds WHERE account_id = $C" "50.00 SEK"
runs "credit_invoice(invoice_id)" "SELECT subbilling.credit_invoice($IC, '100.00 SEK', 'api check')"
is "credit_invoice: the credit note" "SELECT total FROM subbilling.invoices WHERE account_id = $C AND credits_invoice_id = $IC" "-100.00 SEK"
qc -c "INSERT INTO subbilling.invoices (account_id, currency, net, tax, total) VALUES ($C, 'SEK', '0 SEK', '0 SEK', '0 SEK')"
IV=$(qc -c "SELECT max(id) FROM subbilling.invoices WHERE account_id = $C")
runs "a second draft, finalised" "$S INSERT INTO invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
    VALUES ($C, $IV, 'setup', 'Extra', '100.00 SEK', 25, '25.00 SEK');
    SELECT finalize_invoice($IV)"
runs "void_invoice(invoice_id)" "SELECT subbilling.void_invoice($IV, 'api check')"
is "void_invoice: void" "SELECT status FROM subbilling.invoices WHERE account_id = $C AND id = $IV" "void"

# booking on Citus account by account (book_account_citus): credit notes beyond the open
# amount, customer credit applied to a new invoice, a void invoice partly paid, an automatic
# payment method; the entries, amounts and events as on one server (same data, same answers)
D=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-5'")
E=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-6'")
F=$(qc -c "SELECT id FROM subbilling.accounts WHERE external_id = 'api-ext-7'")
# issued ACCOUNT NET TAX: a draft with one line, finalised; prints its id
issued() {
    local id
    id=$(qc -c "INSERT INTO subbilling.invoices (account_id, currency, net, tax, total) VALUES ($1, 'SEK', '0 SEK', '0 SEK', '0 SEK') RETURNING id") &&
    qc -c "INSERT INTO subbilling.invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
           VALUES ($1, $id, 'setup', 'Setup', '$2', 25, '$3')" &&
    qc -c "SELECT subbilling.finalize_invoice($id)" >/dev/null && echo "$id"
}
REF_OF="SELECT reference FROM subbilling.invoices WHERE account_id ="
D1=$(issued "$D" '1000.00 SEK' '250.00 SEK' 2>&1)
runs "booking: a part payment of an invoice" \
     "SELECT subbilling.register_payment('1000.00 SEK', '$(qc -c "$REF_OF $D AND id = $D1" 2>&1)', current_date, 'bankgiro', 'api-pay-d1')"
runs "booking: credit_invoice of the whole invoice, more than is open" "SELECT subbilling.credit_invoice($D1)"
is "booking: the credit note booked and applied (entries invoice, payment, credit_note, allocation)" \
   "SELECT string_agg(kind, ',' ORDER BY id) FROM subbilling.journal_entries WHERE account_id = $D" "invoice,payment,credit_note,allocation"
is "booking: the credited invoice paid by the credit note, the rest customer credit" \
   "SELECT status || ' ' || subbilling.invoice_open_amount(account_id, id)::text || ' ' || subbilling.customer_credit(account_id)::text
      FROM subbilling.invoices WHERE account_id = $D AND id = $D1" "paid 0.00 SEK 1000.00 SEK"
is "booking: events of the credit note (invoice.paid via credit)" \
   "SELECT string_agg(type || coalesce(' ' || (payload->>'via'), ''), ',' ORDER BY id) FROM subbilling.events WHERE account_id = $D" \
   "invoice.finalized,payment.received,invoice.created,invoice.finalized,invoice.credited,invoice.paid credit"
D2=$(issued "$D" '400.00 SEK' '100.00 SEK' 2>&1)
is "booking: customer credit applied to the next invoice (paid, credit left)" \
   "SELECT status || ' ' || subbilling.customer_credit(account_id)::text FROM subbilling.invoices WHERE account_id = $D AND id = $D2" \
   "paid 500.00 SEK"
is "booking: event credit.applied" \
   "SELECT string_agg((payload->>'amount') || '/' || (payload->>'credit_left'), ',') FROM subbilling.events
     WHERE account_id = $D AND type = 'credit.applied'" "500.00 SEK/500.00 SEK"
is "booking: the account's journal, line by line, as on one server" \
   "SELECT string_agg(e.kind || ':' || l.ledger_code || ':' || l.amount::text || ':' || coalesce(l.subledger, '') || ':' ||
                      coalesce((l.invoice_id = $D1)::text, ''), ',' ORDER BY e.id, l.id)
      FROM subbilling.journal_entries e JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
     WHERE e.account_id = $D" \
   "invoice:1510:1250.00 SEK:receivables:true,invoice:3001:-1000.00 SEK::,invoice:2611:-250.00 SEK::,payment:1930:1000.00 SEK::,payment:1510:-1000.00 SEK:receivables:true,credit_note:1510:-1250.00 SEK:receivables:false,credit_note:3001:1000.00 SEK::,credit_note:2611:250.00 SEK::,allocation:1510:1250.00 SEK:receivables:false,allocation:1510:-250.00 SEK:receivables:true,allocation:2420:-1000.00 SEK:customer_credit:,invoice:1510:500.00 SEK:receivables:false,invoice:3001:-400.00 SEK::,invoice:2611:-100.00 SEK::,credit_applied:2420:500.00 SEK:customer_credit:,credit_applied:1510:-500.00 SEK:receivables:false"
E1=$(issued "$E" '100.00 SEK' '25.00 SEK' 2>&1)
runs "booking: a part payment, then void_invoice" \
     "SELECT subbilling.register_payment('50.00 SEK', '$(qc -c "$REF_OF $E AND id = $E1" 2>&1)', current_date, 'bankgiro', 'api-pay-e1');
      SELECT subbilling.void_invoice($E1)"
is "booking: the void invoice reversed, the paid part customer credit" \
   "SELECT status || ' ' || subbilling.invoice_open_amount(account_id, id)::text || ' ' || subbilling.customer_credit(account_id)::text
      FROM subbilling.invoices WHERE account_id = $E AND id = $E1" "void 0.00 SEK 50.00 SEK"
is "booking: the reversing entry" \
   "SELECT string_agg(e.kind || ':' || l.ledger_code || ':' || l.amount::text || ':' || coalesce(l.subledger, ''), ',' ORDER BY e.id, l.id)
      FROM subbilling.journal_entries e JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
     WHERE e.account_id = $E AND e.kind = 'void'" \
   "void:1510:-75.00 SEK:receivables,void:3001:100.00 SEK:,void:2611:25.00 SEK:,void:2420:-50.00 SEK:customer_credit"
runs "booking: an automatic payment method" "INSERT INTO subbilling.payment_methods (account_id, kind, is_default) VALUES ($F, 'autogiro', true)"
F1=$(issued "$F" '200.00 SEK' '50.00 SEK' 2>&1)
is "booking: a payment request for the new invoice, event payment.requested" \
   "SELECT r.amount::text || ' ' || r.status || ' ' || (SELECT count(*) FROM subbilling.events e
                                                         WHERE e.account_id = $F AND e.type = 'payment.requested' AND e.invoice_id = $F1)
      FROM subbilling.payment_requests r WHERE r.account_id = $F AND r.invoice_id = $F1" "250.00 SEK requested 1"
runs "booking: void_invoice of the requested invoice" "SELECT subbilling.void_invoice($F1)"
is "booking: its payment request canceled" "SELECT status FROM subbilling.payment_requests WHERE account_id = $F AND invoice_id = $F1" "canceled"

# billing books through the same path (book_account_citus, inside the delegated call on the
# worker): an account with customer credit (D, 500.00 SEK left) and one with an automatic
# payment method (F) billed, the credit applied, the payment requested, as on one server
runs "billing with customer credit and an automatic payment method: subscriptions" \
     "SELECT subbilling.subscribe($D, 'citus-monthly', 1, current_date - 10); SELECT subbilling.subscribe($F, 'citus-monthly', 1, current_date - 10)"
runs "billing with customer credit and an automatic payment method: run_billing" "SELECT subbilling.run_billing(now())"
is "billing with customer credit and an automatic payment method: no billing errors" \
   "SELECT count(*) FROM subbilling.billing_errors WHERE account_id IN ($D, $F)" "0"
is "billing with customer credit: the new invoice paid by the credit, credit left, event credit.applied" \
   "SELECT i.total::text || ' ' || i.status || ' ' || subbilling.customer_credit($D)::text || ' ' ||
           (SELECT string_agg((payload->>'amount') || '/' || (payload->>'credit_left'), ',') FROM subbilling.events
             WHERE account_id = $D AND type = 'credit.applied' AND invoice_id = i.id)
      FROM subbilling.invoices i JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id
     WHERE i.account_id = $D" "125.00 SEK paid 375.00 SEK 125.00 SEK/375.00 SEK"
is "billing with customer credit: its entries, line by line, as on one server" \
   "SELECT string_agg(e.kind || ':' || l.ledger_code || ':' || l.amount::text || ':' || coalesce(l.subledger, ''), ',' ORDER BY e.id, l.id)
      FROM subbilling.journal_entries e JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
     WHERE e.account_id = $D AND e.invoice_id = (SELECT max(i.id) FROM subbilling.invoices i WHERE i.account_id = $D AND i.subscription_id IS NOT NULL)" \
   "invoice:1510:125.00 SEK:receivables,invoice:3001:-100.00 SEK:,invoice:2611:-25.00 SEK:,credit_applied:2420:125.00 SEK:customer_credit,credit_applied:1510:-125.00 SEK:receivables"
is "billing with an automatic payment method: the payment request, event payment.requested" \
   "SELECT i.total::text || ' ' || i.status || ' ' || r.amount::text || ' ' || r.status || ' ' ||
           (SELECT count(*) FROM subbilling.events e WHERE e.account_id = $F AND e.type = 'payment.requested' AND e.invoice_id = i.id)
      FROM subbilling.invoices i JOIN subbilling.payment_requests r ON r.account_id = i.account_id AND r.invoice_id = i.id
     WHERE i.account_id = $F AND i.subscription_id IS NOT NULL" "125.00 SEK open 125.00 SEK requested 1"
is "billing with credit and automatic payments: the journal balances per account" \
   "SELECT string_agg(s::text, ',' ORDER BY a) FROM (SELECT account_id AS a, sum(minor_units(amount)) AS s
      FROM subbilling.journal_lines WHERE account_id IN ($D, $F) GROUP BY account_id) x" "0,0"
is "billing with credit and automatic payments: entry and event ids from the coordinator, events_after in id order" \
   "SELECT (SELECT max(id) < 1::bigint << 48 FROM subbilling.journal_entries WHERE account_id IN ($D, $F))
       AND (SELECT max(id) < 1::bigint << 48 FROM subbilling.events WHERE account_id IN ($D, $F))
       AND (SELECT array_agg(id) FROM subbilling.events_after(0, 100000)) = (SELECT array_agg(id ORDER BY id) FROM subbilling.events)" "t"

# several accounts, on both workers, subscribed in one transaction (the plan grants features)
runs "subscribe: several accounts in one transaction" "
    DO \$\$ DECLARE a bigint; BEGIN
        FOR a IN SELECT id FROM subbilling.accounts WHERE name IN ('Bulk 11', 'Bulk 12', 'Bulk 13', 'Bulk 14', 'Bulk 15', 'Bulk 16') ORDER BY id LOOP
            PERFORM subbilling.subscribe(a, 'api-pro');
        END LOOP; END \$\$"
is "subscribe: one transaction, accounts on both workers, their entitlements" \
   "SELECT count(*) || '/' || count(DISTINCT p.nodeport) || '/' || bool_and(subbilling.has_access(s.account_id, 'api-sso'))
      FROM subbilling.subscriptions s
      JOIN subbilling.accounts a ON a.id = s.account_id
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', s.account_id)
     WHERE a.name IN ('Bulk 11', 'Bulk 12', 'Bulk 13', 'Bulk 14', 'Bulk 15', 'Bulk 16')" "6/2/true"

# ids: every call above went through the coordinator, which draws every id; accounts on both
# workers wrote events, invoices and payments, and no id was handed out twice
if [ -z "${CITUS_API_PLAIN:-}" ]; then
is "events of accounts on both workers, ids unique" \
   "WITH e AS MATERIALIZED (SELECT account_id, id FROM subbilling.events)
    SELECT count(DISTINCT p.nodeport) = 2 AND count(*) = count(DISTINCT e.id) AND count(*) > 20
      FROM e JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', e.account_id)" "t"
is "invoice and payment ids unique" \
   "SELECT (SELECT count(*) = count(DISTINCT id) AND count(*) >= 3 FROM subbilling.invoices)
       AND (SELECT count(*) = count(DISTINCT id) AND count(*) >= 2 FROM subbilling.payments)" "t"
fi

# the events relay: subbilling.notify = off (no NOTIFY from the functions), relay_events()
# on the coordinator announces what they wrote
RELAY=$(qc -c "LISTEN subbilling" -c "SELECT subbilling.relay_events(100000)" -c "SET subbilling.notify = off" \
            -c "SELECT 'before subscribe'" -c "SELECT subbilling.subscribe($B, 'api-basic')" -c "SELECT 'after subscribe'" \
            -c "SELECT subbilling.relay_events()" -c "SELECT 'after relay'" 2>&1)
SB=$(qc -c "SELECT max(id) FROM subbilling.subscriptions WHERE account_id = $B")
between() { awk -v a="$1" -v b="$2" '$0 == a {f = 1; next} $0 == b {f = 0} f' <<<"$RELAY"; }
is "notify off: the function's own transaction announces nothing" \
   "SELECT $(between 'before subscribe' 'after subscribe' | grep -c 'Asynchronous notification')" "0"
is "relay_events() announces the new events on the coordinator" \
   "SELECT $(between 'after subscribe' 'after relay' | grep 'Asynchronous notification' | grep -c '"subscription_id": '"$SB"'[,}]')
           = count(*) AND count(*) > 0 FROM subbilling.events WHERE account_id = $B AND subscription_id = $SB" "t"
is "relay_events() again: nothing new" "SELECT subbilling.relay_events()" "0"

# the KPI rows kept by triggers on the shards, as computed from their source
is "kpi_aging (kept on the shards) equals its source" \
   "SELECT count(*) FROM ((SELECT account_id, currency, due_dates, cum_minor, undated_minor FROM subbilling_internal.kpi_aging
                           EXCEPT SELECT account_id, currency, due_dates, cum_minor, undated_minor FROM subbilling_internal.kpi_aging_source)
                          UNION ALL
                          (SELECT account_id, currency, due_dates, cum_minor, undated_minor FROM subbilling_internal.kpi_aging_source
                           EXCEPT SELECT account_id, currency, due_dates, cum_minor, undated_minor FROM subbilling_internal.kpi_aging)) x" "0"
# ---- citcov
# The rest of the API on Citus (docs/citus.md "Limits"): direct debit and the bank files, the
# usage fold, the background worker.  Events on every node with subbilling.notify = off (a
# NOTIFY in a transaction that writes on several nodes cannot be prepared; relay_events
# announces them), as docs/citus.md tells users to.
for p in $PORTS; do
    q "$p" -c "SET citus.enable_ddl_propagation = off" -c "ALTER DATABASE subbilling SET subbilling.notify = off" >/dev/null
done
runs "direct debit: accounts paying by Autogiro and AvtaleGiro, mandates and an agreement" "$SETUP
    INSERT INTO accounts (name, country, currency)
    VALUES ('DD 1', 'SE', 'SEK'), ('DD 2', 'SE', 'SEK'), ('DD 3', 'SE', 'SEK'), ('DD NO', 'NO', 'NOK'), ('BG 1', 'SE', 'SEK'), ('NETS 1', 'NO', 'NOK');
    INSERT INTO payment_methods (account_id, kind, is_default)
    SELECT id, CASE WHEN name = 'DD NO' THEN 'avtalegiro' ELSE 'autogiro' END, true FROM accounts WHERE name IN ('DD 1', 'DD 2', 'DD NO');
    SELECT register_autogiro_mandate((SELECT id FROM accounts WHERE name = 'DD 1'), '1001', current_date - 10);
    SELECT register_autogiro_mandate((SELECT id FROM accounts WHERE name = 'DD 2'), '1002', current_date - 10);
    SELECT register_avtalegiro_agreement((SELECT id FROM accounts WHERE name = 'DD NO'), '1234567890123', false, current_date - 10)"
DD1=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'DD 1'"); DD2=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'DD 2'")
DD3=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'DD 3'"); DDNO=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'DD NO'")
BG1=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'BG 1'"); NETS1=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'NETS 1'")
is "direct debit: the accounts on both workers" \
   "SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement p
     WHERE p.shardid = ANY (ARRAY(SELECT get_shard_id_for_distribution_column('subbilling.accounts', a) FROM unnest(ARRAY[$DD1, $DD2, $DDNO]) a))" "2"
is "request_autogiro_mandate: requested, in the mandate file" \
   "SELECT m.status || ' ' || m.request || ' ' || (SELECT count(*) FROM regexp_split_to_table(subbilling.autogiro_mandate_file(current_date, '123456', '9912346'), E'\r\n') l
                                                  WHERE l LIKE '04%1003%')
      FROM subbilling.request_autogiro_mandate($DD3, '1003', '8327-9 1234 5678', '5560000001', current_date) m" "requested new 1"
runs "import_autogiro_mandates: the advice activates it" "SELECT subbilling.import_autogiro_mandates(
    rpad('01AUTOGIRO' || repeat(' ', 14) || to_char(current_date, 'YYYYMMDD') || repeat(' ', 12) || 'AG-MEDAVI' || repeat(' ', 11) || '1234560009912346', 80) || E'\r\n' ||
    rpad('73' || '0009912346' || '0000000000001003' || '0008327912345678' || '005560000001' || '00000' || '04' || '32' || to_char(current_date, 'YYYYMMDD'), 80) || E'\r\n' ||
    rpad('09' || to_char(current_date, 'YYYYMMDD') || '9900' || '0000001', 80) || E'\r\n')"
is "the mandate active" "SELECT status FROM subbilling.autogiro_mandates WHERE payer_number = '1003'" "active"
runs "cancel_autogiro_mandate" "SELECT subbilling.cancel_autogiro_mandate('1003', current_date)"
is "the mandate cancelled, its cancellation for the next mandate file" \
   "SELECT status || ' ' || coalesce(request, '') FROM subbilling.autogiro_mandates WHERE payer_number = '1003'" "cancelled cancel"
DI1=$(issued "$DD1" '800.00 SEK' '200.00 SEK' 2>&1); DI2=$(issued "$DD2" '800.00 SEK' '200.00 SEK' 2>&1)
DIN=$(qc -c "INSERT INTO subbilling.invoices (account_id, currency, net, tax, total) VALUES ($DDNO, 'NOK', '0 NOK', '0 NOK', '0 NOK') RETURNING id" 2>&1)
runs "direct debit: a NOK invoice issued" "INSERT INTO subbilling.invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
           VALUES ($DDNO, $DIN, 'setup', 'Setup', '800.00 NOK', 25, '200.00 NOK'); SELECT subbilling.finalize_invoice($DIN)"
is "direct debit: payment requests for the three invoices" \
   "SELECT count(*) FROM subbilling.payment_requests WHERE status = 'requested' AND account_id IN ($DD1, $DD2, $DDNO)" "3"
is "autogiro_claim_file: a claim per requested payment with an active mandate (requests locked by account on their shards)" \
   "SELECT count(*) FROM regexp_split_to_table(subbilling.autogiro_claim_file(current_date, '123456', '9912346'), E'\r\n') l WHERE l LIKE '82%'" "2"
is "autogiro_claims: the two requests claimed" "SELECT string_agg(payer_number, ',' ORDER BY payer_number) FROM subbilling.autogiro_claims" "1001,1002"
is "avtalegiro_claim_file: the NOK request claimed" \
   "SELECT count(*) FROM regexp_split_to_table(subbilling.avtalegiro_claim_file(current_date, '12345678', '000123456', '12345678903'), E'\n') l
     WHERE l LIKE 'NY2102%'" "3"
AGANS=$(qc -c "SELECT string_agg(rec, E'\r\n' ORDER BY k) || E'\r\n' FROM (
    SELECT 1 AS k, rpad('01AUTOGIRO' || repeat(' ', 14) || to_char(current_date, 'YYYYMMDD') || '061500000000BET. SPEC & STOPP TK1234560009912346', 80) AS rec
    UNION ALL SELECT 2, rpad('15' || repeat('0', 35) || to_char(current_date, 'YYYYMMDD') || '00017' || lpad('100000', 18, '0') || '   ' || '00000001', 80)
    UNION ALL SELECT 2 + row_number() OVER (ORDER BY c.payer_number),
           '82' || to_char(c.due_date, 'YYYYMMDD') || '0    ' || lpad(c.payer_number, 16, '0') || lpad(subbilling.minor_units(c.amount)::text, 12, '0')
           || '0009912346' || rpad(c.reference, 16) || repeat(' ', 10) || CASE WHEN c.payer_number = '1001' THEN '0' ELSE '1' END
      FROM subbilling.autogiro_claims c
    UNION ALL SELECT 9, rpad('09' || to_char(current_date, 'YYYYMMDD') || '9900000001000000000001' || repeat('0', 36), 80)) t")
is "import_autogiro_payments: one approved (register_payment), one insufficient funds (payment_failed)" \
   "SELECT approved || '/' || rejected || '/' || unknown FROM subbilling.import_autogiro_payments('$AGANS')" "1/1/0"
is "the approved claim: invoice paid, request succeeded" \
   "SELECT i.status || ' ' || r.status FROM subbilling.invoices i JOIN subbilling.payment_requests r ON r.account_id = i.account_id AND r.invoice_id = i.id
     WHERE i.account_id = $DD1 AND i.id = $DI1" "paid succeeded"
is "payment_failed: the request failed, a retry scheduled, event payment.failed" \
   "SELECT r.status || ' ' || r.failure_reason || ' ' || (r.next_attempt_on IS NOT NULL) || ' ' ||
           (SELECT count(*) FROM subbilling.events e WHERE e.account_id = r.account_id AND e.type = 'payment.failed')
      FROM subbilling.payment_requests r WHERE r.account_id = $DD2 AND r.invoice_id = $DI2" "failed autogiro: insufficient funds true 1"
runs "run_payment_retries: the due retries (requests locked one by one on their shards)" "SELECT subbilling.run_payment_retries(current_date + 60)"
is "run_payment_retries: the failed request requested again, attempt 2, event payment.requested" \
   "SELECT r.status || ' ' || r.attempt || ' ' || r.amount::text || ' ' ||
           (SELECT count(*) FROM subbilling.events e WHERE e.account_id = r.account_id AND e.type = 'payment.requested')
      FROM subbilling.payment_requests r WHERE r.account_id = $DD2 AND r.invoice_id = $DI2" "requested 2 1000.00 SEK 2"
DP1=$(qc -c "SELECT id FROM subbilling.payments WHERE account_id = $DD1 AND invoice_id = $DI1")
is "autogiro_refund: a refund to pay back, the invoice reopened by it" \
   "SELECT r.outcome || ' ' || r.amount::text || ' ' || subbilling.invoice_open_amount($DD1, $DI1)::text
      FROM subbilling.autogiro_refund($DP1, '100.00 SEK', current_date + 5) r" "sent 100.00 SEK 100.00 SEK"
is "autogiro_claim_file: the refund paid back (an outgoing payment, 32)" \
   "SELECT count(*) FROM regexp_split_to_table(subbilling.autogiro_claim_file(current_date + 1, '123456', '9912346'), E'\r\n') l WHERE l LIKE '32%'" "1"
# the bank files: BgMax and Nets OCR made as the pgTAP tests make them (test/pgtap/710_bank_import.sql)
BANKFN=$(awk '/^CREATE FUNCTION pg_temp.bgmax_file/ {f = 1} f {print} f && /^END \$\$;/ {n++; if (n == 2) exit}' test/pgtap/710_bank_import.sql)
BI1=$(issued "$BG1" '400.00 SEK' '100.00 SEK' 2>&1)
BREF=$(qc -c "SELECT reference FROM subbilling.invoices WHERE account_id = $BG1 AND id = $BI1")
is "import_bgmax through the coordinator: a payment by reference, one unmatched" \
   "SET client_min_messages = error; $BANKFN
    SELECT payments || '/' || imported || '/' || unmatched FROM subbilling.import_bgmax(pg_temp.bgmax_file(jsonb_build_array(
        jsonb_build_object('date', to_char(current_date, 'YYYYMMDD'), 'payments', jsonb_build_array(
            jsonb_build_object('ref', '$BREF', 'minor', 50000, 'serial', 1001),
            jsonb_build_object('ref', '9999999999', 'minor', 30000, 'serial', 1002))))))" "2/1/1"
is "import_bgmax: the invoice paid" "SELECT status FROM subbilling.invoices WHERE account_id = $BG1 AND id = $BI1" "paid"
NI1=$(qc -c "INSERT INTO subbilling.invoices (account_id, currency, net, tax, total) VALUES ($NETS1, 'NOK', '0 NOK', '0 NOK', '0 NOK') RETURNING id" 2>&1)
qc -c "INSERT INTO subbilling.invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
       VALUES ($NETS1, $NI1, 'setup', 'Setup', '400.00 NOK', 25, '100.00 NOK'); SELECT subbilling.finalize_invoice($NI1)" >/dev/null 2>&1
NREF=$(qc -c "SELECT reference FROM subbilling.invoices WHERE account_id = $NETS1 AND id = $NI1")
is "import_nets_ocr through the coordinator: a payment by KID and the AvtaleGiro claim settled" \
   "SET client_min_messages = error; $BANKFN
    SELECT payments || '/' || imported || '/' || unmatched FROM subbilling.import_nets_ocr(pg_temp.nets_file(jsonb_build_array(
        jsonb_build_object('number', 41, 'transactions', jsonb_build_array(
            jsonb_build_object('type', 10, 'number', 1, 'date', to_char(current_date, 'DDMMYY'), 'minor', 50000, 'kid', '$NREF'),
            jsonb_build_object('type', 15, 'number', 2, 'date', to_char(current_date, 'DDMMYY'), 'minor', 100000, 'kid', '1234567890123'))))))" "2/2/0"
is "import_nets_ocr: both invoices paid" "SELECT string_agg(status, ',') FROM subbilling.invoices WHERE id IN ($DIN, $NI1)" "paid,paid"
is "import_nets_ocr: the AvtaleGiro request succeeded" \
   "SELECT status FROM subbilling.payment_requests WHERE account_id = $DDNO AND invoice_id = $DIN" "succeeded"

# the usage queue folded on Citus: refresh_kpi_snapshots folds it account by account, each on
# its shard (kpi_usage_fold); upsell_candidates reads the same before and after
runs "usage fold: plans with included units, two accounts on both workers, usage in the last three months" "$SETUP
    INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, included_units)
    SELECT v.code, p.id, v.code, '1 month', 'flat', v.price::price, v.inc FROM products p,
           (VALUES ('up-s', '100.00 SEK', 1000), ('up-m', '250.00 SEK', 5000)) AS v(code, price, inc)
     WHERE p.code = 'api';
    INSERT INTO accounts (name, country, currency) VALUES ('UP 1', 'SE', 'SEK'), ('UP 2', 'SE', 'SEK'), ('UP 3', 'SE', 'SEK'), ('UP 4', 'SE', 'SEK')"
runs "usage fold: subscriptions and their usage (record_usage)" "
    DO \$\$ DECLARE a bigint; s bigint; k integer; BEGIN
        FOR a IN SELECT id FROM subbilling.accounts WHERE name LIKE 'UP %' ORDER BY id LOOP
            s := subbilling.subscribe(a, 'up-s', 1, (date_trunc('month', current_date) - interval '4 months')::date);
            FOR k IN 1 .. 3 LOOP
                PERFORM subbilling.record_usage(s, 'up-s', CASE k WHEN 1 THEN 1500 WHEN 2 THEN 900 ELSE 3000 END + a % 7,
                            date_trunc('month', current_date) - k * interval '1 month' + interval '1 day', 'up-' || a || '-' || k);
            END LOOP;
        END LOOP; END \$\$"
UPACC="(SELECT id FROM subbilling.accounts WHERE name LIKE 'UP %')"
UPSELL="SELECT string_agg(account_id || ':' || plan_code || ':' || periods_over || ':' || average_usage || ':' || suggested_plan_code, ',' ORDER BY account_id)
          FROM subbilling.upsell_candidates WHERE account_id IN $UPACC"
UPBEFORE=$(qc -c "$UPSELL" 2>&1)
is "usage fold: the usage queued on the accounts' shards, on both workers" \
   "SELECT count(*) || '/' || count(DISTINCT p.nodeport) FROM subbilling_internal.kpi_usage_queue q
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', q.account_id)
     WHERE q.account_id IN $UPACC" "12/2"
is "usage fold: upsell_candidates before the fold (read from the usage)" \
   "SELECT count(*) FROM subbilling.upsell_candidates WHERE account_id IN $UPACC AND suggested_plan_code = 'up-m' AND periods_over = 2" "4"
runs "usage fold: refresh_kpi_snapshots folds the queue on Citus" "SELECT subbilling.refresh_kpi_snapshots()"
is "usage fold: the queue emptied" "SELECT count(*) FROM subbilling_internal.kpi_usage_queue" "0"
UPKEPT="SELECT sum(x) FROM subbilling_internal.kpi_usage_periods w CROSS JOIN LATERAL unnest(w.used) x WHERE w.account_id IN $UPACC"
UPUSED="SELECT sum(quantity) FROM subbilling.usage WHERE account_id IN $UPACC"
is "usage fold: the kept rows keyed" "SELECT bool_and(billing_period IS NOT NULL) FROM subbilling_internal.kpi_usage_periods WHERE account_id IN $UPACC" "t"
is "usage fold: the kept totals are the usage's" "$UPKEPT" "$(qc -c "$UPUSED")"
is "usage fold: upsell_candidates the same after the fold" "$UPSELL" "$UPBEFORE"
runs "usage fold: more usage after the fold" "SELECT subbilling.record_usage((SELECT min(s.id) FROM subbilling.subscriptions s WHERE s.account_id IN $UPACC), 'up-s', 1000,
    date_trunc('month', current_date) - interval '2 months' + interval '2 days', 'up-more')"
runs "usage fold: refresh_kpi_snapshots(true) folds it" "SELECT subbilling.refresh_kpi_snapshots(true)"
is "usage fold: the queue emptied again" "SELECT count(*) FROM subbilling_internal.kpi_usage_queue" "0"
is "usage fold: the new usage in the kept totals" "$UPKEPT" "$(qc -c "$UPUSED")"

# the background worker on the coordinator only (the workers keep subbilling.worker_enabled off):
# it bills, dunns, folds the usage queue (refresh_kpi_snapshots) and relays the events
runs "worker: accounts with due subscriptions, new usage queued" "
    INSERT INTO subbilling.accounts (name, country, currency) SELECT 'WK ' || g, 'SE', 'SEK' FROM generate_series(1, 4) g;
    SELECT subbilling.record_usage((SELECT min(s.id) FROM subbilling.subscriptions s WHERE s.account_id IN $UPACC), 'up-s', 10,
        date_trunc('month', current_date) - interval '1 month' + interval '3 days', 'up-worker')"
runs "worker: subscriptions started 40 days ago" "
    DO \$\$ DECLARE a bigint; BEGIN
        FOR a IN SELECT id FROM subbilling.accounts WHERE name LIKE 'WK %' ORDER BY id LOOP
            PERFORM subbilling.subscribe(a, 'api-basic', 1, current_date - 40);
            COMMIT;
        END LOOP; END \$\$"
WKACC="(SELECT id FROM subbilling.accounts WHERE name LIKE 'WK %')"
is "worker: their accounts on both workers" \
   "SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement p
     WHERE p.shardid = ANY (ARRAY(SELECT get_shard_id_for_distribution_column('subbilling.accounts', a.id) FROM subbilling.accounts a WHERE a.name LIKE 'WK %'))" "2"
# webhooks: an endpoint (a reference table) on a receiver on loopback (test/webhook_receiver.py),
# the events of the accounts on both workers fanned out and delivered by the webhooks worker
# that starts on the coordinator with the worker's database
python3 test/webhook_receiver.py --port-file "$WORK/whport" --log "$WORK/wh.log" >"$WORK/wh.out" 2>&1 &
WHPID=$!
for i in $(seq 1 100); do [ -s "$WORK/whport" ] && break; sleep 0.1; done
WHPORT=$(cat "$WORK/whport" 2>/dev/null)
is "webhooks: an endpoint for the invoice events on the receiver" \
   "INSERT INTO subbilling.webhook_allowed_hosts (pattern, note) VALUES ('127.0.0.1', 'citus tier');
    SELECT count(*) FROM subbilling.create_webhook_endpoint('http://127.0.0.1:$WHPORT/ok/citus', '{invoice.created}')" "1"
WKRUN=$(qc -c "SELECT coalesce(max(id), 0) FROM subbilling.worker_runs")
runs "worker: enabled on the coordinator (naptime 1 s, KPI refresh every second)" "ALTER SYSTEM SET subbilling.worker_enabled = on" && qc -c "ALTER SYSTEM SET subbilling.database = 'subbilling'" -c "ALTER SYSTEM SET subbilling.naptime = 1" \
         -c "ALTER SYSTEM SET subbilling.kpi_refresh_interval = 1" -c "SELECT pg_reload_conf()" >/dev/null
deadline=$(($(date +%s) + 90))
until [ "$(qc -c "SELECT count(*) FROM subbilling.invoices WHERE account_id IN $WKACC" 2>/dev/null)" = "4" ] \
      && [ "$(qc -c "SELECT count(*) FROM subbilling.worker_runs WHERE id > $WKRUN AND status = 'ok' AND invoices > 0" 2>/dev/null)" = "1" ] \
      && [ "$(qc -c "SELECT count(*) FROM subbilling_internal.kpi_usage_queue" 2>/dev/null)" = "0" ] \
      && [ "$(qc -c "SELECT (SELECT last_event_id FROM subbilling_internal.relay_cursor) = (SELECT max(id) FROM subbilling.events)" 2>/dev/null)" = "t" ] \
      && [ "$(qc -c "SELECT count(*) FROM subbilling.webhook_deliveries WHERE status = 'succeeded' AND account_id IN $WKACC" 2>/dev/null)" = "4" ] \
      || [ "$(date +%s)" -ge "$deadline" ]; do
    sleep 1
done
is "worker: a run on the coordinator billed (status ok)" \
   "SELECT count(*) > 0 AND bool_and(status = 'ok') FROM subbilling.worker_runs WHERE id > $WKRUN AND invoices > 0" "t"
is "worker: the four subscriptions (accounts on both workers) invoiced" "SELECT count(*) FROM subbilling.invoices WHERE account_id IN $WKACC" "4"
is "worker: no billing errors" "SELECT count(*) FROM subbilling.billing_errors WHERE account_id IN $WKACC" "0"
is "worker: its runs end ok (billing and dunning batches on Citus)" \
   "SELECT bool_and(status = 'ok') AND min(batches) >= 2 FROM subbilling.worker_runs WHERE id > $WKRUN AND status <> 'running'" "t"
is "worker: the KPI refresh folded the usage queue" "SELECT count(*) FROM subbilling_internal.kpi_usage_queue" "0"
is "worker: the events relayed (the relay's cursor at the last event)" \
   "SELECT (SELECT last_event_id FROM subbilling_internal.relay_cursor) = (SELECT max(id) FROM subbilling.events)" "t"
is "worker: disabled on the worker nodes" \
   "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SHOW subbilling.worker_enabled\$\$)" "off,off"
is "worker: every run by the coordinator's worker" \
   "SELECT bool_and(r.pid = a.pid) FROM subbilling.worker_runs r, pg_stat_activity a WHERE r.id > $WKRUN AND a.backend_type = 'subbilling worker'" "t"
is "webhooks: a delivery of invoice.created per invoice the worker made, accounts on both workers, delivered" \
   "SELECT count(*) || '/' || count(DISTINCT p.nodeport) || '/' || bool_and(d.event_type = 'invoice.created' AND d.status = 'succeeded' AND d.last_status_code = 200)
      FROM subbilling.webhook_deliveries d
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', d.account_id)
     WHERE d.account_id IN $WKACC" "4/2/true"
WHN=$(grep -c 'invoice.created' "$WORK/wh.log" 2>/dev/null)
is "webhooks: the receiver got them" "SELECT ${WHN:-0} >= 4" "t"
kill "$WHPID" 2>/dev/null
qc -c "ALTER SYSTEM RESET subbilling.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null

# ---- cids
# Ids inside the billing batch (issue #18): every event and journal entry written inside the
# delegated call (bill_accounts_citus, on the worker) takes its id from the coordinator's
# pools, on whatever path; an account whose credit settles more open invoices than the
# pools cover is billed again with larger pools, not recorded as a billing error.
# 1. a payment stop lifted by customer credit inside the billing batch
G=$(qc -c "INSERT INTO subbilling.accounts (name, country, currency) VALUES ('Cids stop', 'SE', 'SEK') RETURNING id")
GS1=$(qc -c "SELECT subbilling.subscribe($G, 'citus-monthly', 1, current_date - 10)")
runs "ids: the stopped subscription's first invoice billed" "SELECT subbilling.run_billing(now())"
G1=$(qc -c "SELECT max(id) FROM subbilling.invoices WHERE account_id = $G AND subscription_id = $GS1")
GSE=$(qc -c "SELECT subbilling_internal.emit_event($G, 'dunning.payment_stop', $GS1, '{}', $G1)")
runs "ids: a payment stop on the overdue invoice, the subscription suspended" "
    INSERT INTO subbilling.dunning_actions (account_id, invoice_id, step_no, action, days_after_due, executed_on,
                                            open_amount, subscription_id, event_id)
    SELECT account_id, id, 3, 'payment_stop', 30, current_date, total, subscription_id, ${GSE:-0}
      FROM subbilling.invoices WHERE account_id = $G AND id = $G1;
    SELECT subbilling.set_subscription_status($GS1, 'suspended', 'cids check')"
G0=$(issued "$G" '100.00 SEK' '25.00 SEK' 2>&1)
runs "ids: customer credit (an overpayment)" \
     "SELECT subbilling.register_payment('250.00 SEK', '$(qc -c "$REF_OF $G AND id = $G0" 2>&1)', current_date, 'bankgiro', 'cids-pay-g0')"
is "ids: the older invoice still open, credit 125.00 SEK" \
   "SELECT status || ' ' || subbilling.customer_credit($G)::text FROM subbilling.invoices WHERE account_id = $G AND id = $G1" "open 125.00 SEK"
GEV=$(qc -c "SELECT max(id) FROM subbilling.events")
runs "ids: a second subscription billed (the credit settles the older invoice)" \
     "SELECT subbilling.subscribe($G, 'citus-monthly', 1, current_date - 10); SELECT subbilling.run_billing(now())"
is "ids: no billing errors" "SELECT count(*) FROM subbilling.billing_errors WHERE account_id = $G" "0"
is "ids: the older invoice paid by the credit, the payment stop lifted, the subscription active" \
   "SELECT i.status || ' ' || (d.lifted_at IS NOT NULL) || ' ' || s.status
      FROM subbilling.invoices i
      JOIN subbilling.dunning_actions d ON d.account_id = i.account_id AND d.invoice_id = i.id
      JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = $GS1
     WHERE i.account_id = $G AND i.id = $G1" "paid true active"
is "ids: event dunning.payment_stop_lifted, its id from the coordinator's pool (below 2^48)" \
   "SELECT count(*) || ' ' || bool_and(id < 1::bigint << 48) FROM subbilling.events
     WHERE account_id = $G AND type = 'dunning.payment_stop_lifted'" "1 true"
is "ids: every event and entry of the account from the coordinator" \
   "SELECT (SELECT bool_and(id < 1::bigint << 48) FROM subbilling.events WHERE account_id = $G)
       AND (SELECT bool_and(id < 1::bigint << 48) FROM subbilling.journal_entries WHERE account_id = $G)" "t"
is "ids: events_after hands out the lifted stop's event, every event in id order" \
   "SELECT (SELECT count(*) FROM subbilling.events_after($GEV, 100000) WHERE account_id = $G AND type = 'dunning.payment_stop_lifted')
       || ' ' || ((SELECT array_agg(id) FROM subbilling.events_after(0, 100000)) = (SELECT array_agg(id ORDER BY id) FROM subbilling.events))" "1 true"
# 2. credit settling more open invoices than the default pools cover (an entry and two
# events each): the account billed again with pools sized by its open invoices
H=$(qc -c "INSERT INTO subbilling.accounts (name, country, currency) VALUES ('Cids many', 'SE', 'SEK') RETURNING id")
for k in $(seq 1 12); do issued "$H" '10.00 SEK' '2.50 SEK' >/dev/null 2>&1; done
H0=$(issued "$H" '10.00 SEK' '2.50 SEK' 2>&1)
runs "pools: customer credit for twelve open invoices and more" \
     "SELECT subbilling.register_payment('500.00 SEK', '$(qc -c "$REF_OF $H AND id = $H0" 2>&1)', current_date, 'bankgiro', 'cids-pay-h0')"
is "pools: twelve open invoices, credit 487.50 SEK" \
   "SELECT count(*) FILTER (WHERE status = 'open') || ' ' || subbilling.customer_credit($H)::text FROM subbilling.invoices WHERE account_id = $H" \
   "12 487.50 SEK"
runs "pools: a subscription billed" "SELECT subbilling.subscribe($H, 'citus-monthly', 1, current_date - 10); SELECT subbilling.run_billing(now())"
is "pools: no billing errors" "SELECT count(*) FROM subbilling.billing_errors WHERE account_id = $H" "0"
is "pools: every invoice paid by the credit, the new one too, credit left" \
   "SELECT count(*) || ' ' || bool_and(status = 'paid') || ' ' || subbilling.customer_credit($H)::text
      FROM subbilling.invoices WHERE account_id = $H" "14 true 212.50 SEK"
is "pools: thirteen credit.applied events, ids from the coordinator, events_after in id order" \
   "SELECT (SELECT count(*) FROM subbilling.events WHERE account_id = $H AND type = 'credit.applied') || ' ' ||
           ((SELECT bool_and(id < 1::bigint << 48) FROM subbilling.events WHERE account_id = $H)
            AND (SELECT bool_and(id < 1::bigint << 48) FROM subbilling.journal_entries WHERE account_id = $H)
            AND (SELECT array_agg(id) FROM subbilling.events_after(0, 100000)) = (SELECT array_agg(id ORDER BY id) FROM subbilling.events))" \
   "13 true"
is "pools: the journal balances, no receivables left" \
   "SELECT sum(minor_units(amount)) || ' ' || coalesce(sum(minor_units(amount)) FILTER (WHERE subledger = 'receivables'), 0)
      FROM subbilling.journal_lines WHERE account_id = $H" "0 0"

# ---- ckpi
# The KPI snapshots on Citus: refresh_kpi_snapshots builds them through the coordinator (each
# shard's customer rows computed by one command routed to it), the MRR views read them, and
# their figures are a single server's with the same rows: a database without citus on the
# coordinator's node ("single"), to which the rows the views read are copied.
KPIS="SELECT md5(string_agg(v, ',' ORDER BY v)) || '/' || count(*) FROM (
          SELECT 'mrr' || t::text AS v FROM subbilling.kpi_mrr t UNION ALL
          SELECT 'mov' || t::text FROM subbilling.kpi_mrr_movements t UNION ALL
          SELECT 'churn' || t::text FROM subbilling.kpi_churn t UNION ALL
          SELECT 'ltv' || t::text FROM subbilling.kpi_ltv t UNION ALL
          SELECT 'growth' || t::text FROM subbilling.kpi_growth t) x"
SNAPROWS="SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) || '/' || count(*) FROM subbilling_internal.kpi_snapshot_customers t"
SNAPMONTHS="SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) || '/' || count(*) FROM subbilling_internal.kpi_snapshot_months t WHERE t.customer_rows <> 0"
KPITABLES="products plans campaigns accounts subscriptions subscription_items subscription_discounts subscription_pauses dunning_actions"
qs() { "$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d single -v ON_ERROR_STOP=1 -qAt "$@"; }
# the rows the MRR views read, copied from the cluster (through the coordinator) to "single",
# which then has no snapshot (its views compute the definition)
to_single() {
    local t cols
    qs -c "SET session_replication_role = replica" -c "SET client_min_messages = warning" \
       -c "TRUNCATE $(for t in $KPITABLES; do printf 'subbilling.%s,' "$t"; done | sed 's/,$//') CASCADE" || return 1
    for t in $KPITABLES; do
        cols=$(qs -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                       WHERE attrelid = 'subbilling.$t'::regclass AND attnum > 0 AND NOT attisdropped") || return 1
        qc -c "COPY (SELECT $cols FROM subbilling.$t) TO STDOUT" \
            | qs -c "SET session_replication_role = replica" -c "COPY subbilling.$t ($cols) FROM STDIN" || return 1
    done
    # copied past the triggers that mark changed accounts: no snapshot there, the views compute live
    qs -c "DELETE FROM subbilling_internal.kpi_snapshot_state" -c "DELETE FROM subbilling_internal.kpi_dirty_accounts"
}
if "$BIN/createdb" -h "$WORK" -p "$PORT" -U postgres single 2>>"$WORK/setup.log" \
   && qs -c "CREATE EXTENSION subbilling CASCADE" >/dev/null 2>>"$WORK/setup.log"; then
    ok "ckpi: a database without citus on the coordinator's node (the single server)"
else
    nok "ckpi: a database without citus on the coordinator's node (the single server)" "$(tail -5 "$WORK/setup.log")"
fi
KPISUB="SELECT s.id FROM subbilling.subscriptions s JOIN subbilling.subscription_items i ON i.account_id = s.account_id AND i.subscription_id = s.id
         WHERE s.status = 'active' AND s.cancel_at IS NULL AND i.voided_at IS NULL AND upper(i.validity) IS NULL
           AND s.start_date < current_date - 70"
runs "ckpi: a backdated churn and expansion (accounts on both workers)" "
    DO \$\$ DECLARE s bigint; BEGIN
        SELECT min(x.id) INTO s FROM ($KPISUB) x;
        PERFORM subbilling.cancel(s, current_date - 35);
        SELECT max(x.id) INTO s FROM ($KPISUB) x;
        PERFORM subbilling.change_quantity(s, 3, current_date - 40);
    END \$\$"
runs "ckpi: no snapshot (made unusable)" "DELETE FROM subbilling_internal.kpi_snapshot_state"
is "ckpi: kpi_snapshot_status says so" "SELECT read_mode || '/' || unusable_reason FROM subbilling.kpi_snapshot_status" "exact/no snapshot"
if to_single; then ok "ckpi: the rows copied to the single server"; else nok "ckpi: the rows copied to the single server"; fi
is "ckpi: the single server has the cluster's subscription items" "SELECT count(*) FROM subbilling.subscription_items" \
   "$(qs -c "SELECT count(*) FROM subbilling.subscription_items")"
KPI0=$(qs -c "$KPIS")
is "ckpi: MRR views with movements to compare (churn, expansion, months)" \
   "SELECT count(*) FILTER (WHERE churned_mrr > 0) > 0 AND count(*) FILTER (WHERE expansion_mrr > 0) > 0 AND count(*) >= 3 FROM subbilling.kpi_mrr_movements" "t"
is "ckpi: exact without a snapshot (computed shard by shard): the five MRR views as the single server's" "$KPIS" "$KPI0"
KPIN=$(qc -c "SELECT subbilling.refresh_kpi_snapshots()" 2>&1)
is "ckpi: refresh_kpi_snapshots builds the snapshot on Citus (returns the customer rows written)" \
   "SELECT count(*) || '/' || (count(*) > 0) FROM subbilling_internal.kpi_snapshot_customers" "$KPIN/true"
is "ckpi: the snapshot rows are on the accounts' shards, on both workers" \
   "SELECT count(DISTINCT p.nodeport) FROM subbilling_internal.kpi_snapshot_customers c
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', c.account_id)" "2"
qs -c "SELECT subbilling.refresh_kpi_snapshots()" >/dev/null 2>&1
is "ckpi: the snapshot's customer rows are the single server's" "$SNAPROWS" "$(qs -c "$SNAPROWS")"
is "ckpi: the snapshot's month sums are the single server's" "$SNAPMONTHS" "$(qs -c "$SNAPMONTHS")"
is "ckpi: kpi_snapshot_status: of today, nothing marked" \
   "SELECT (as_of = current_date) || '/' || of_today || '/' || marked_accounts || '/' || read_mode FROM subbilling.kpi_snapshot_status" "true/true/0/exact"
is "ckpi: exact with the snapshot: the five MRR views as the single server's" "$KPIS" "$KPI0"
is "ckpi: read mode snapshot: kpi_snapshot_status says snapshot" \
   "SET subbilling.kpi_read = snapshot; SELECT read_mode FROM subbilling.kpi_snapshot_status" "snapshot"
is "ckpi: read mode snapshot: the five MRR views as the single server's" "SET subbilling.kpi_read = snapshot; $KPIS" "$KPI0"
runs "ckpi: a backdated change after the refresh (a cancellation 50 days back)" "
    SELECT subbilling.cancel((SELECT min(x.id) FROM ($KPISUB) x), current_date - 50)"
is "ckpi: its account is marked" "SELECT marked_accounts FROM subbilling.kpi_snapshot_status" "1"
if to_single; then ok "ckpi: the rows copied to the single server again"; else nok "ckpi: the rows copied to the single server again"; fi
KPI1=$(qs -c "$KPIS")
is "ckpi: the change moves the figures" "SELECT '$KPI1' <> '$KPI0'" "t"
is "ckpi: exact with a marked account (it live, less its snapshot rows): the single server's" "$KPIS" "$KPI1"
is "ckpi: read mode snapshot: the snapshot's figures as stored (nothing live)" "SET subbilling.kpi_read = snapshot; $KPIS" "$KPI0"
KPIACC=$(qc -c "SELECT account_id FROM subbilling_internal.kpi_dirty_accounts LIMIT 1")
KPIN=$(qc -c "SELECT subbilling.refresh_kpi_snapshots(true)" 2>&1)
is "ckpi: refresh_kpi_snapshots(true) recomputes the marked account only (returns its rows)" \
   "SELECT count(*) FROM subbilling_internal.kpi_snapshot_customers WHERE account_id = ${KPIACC:-0}" "$KPIN"
is "ckpi: nothing marked after it" "SELECT marked_accounts FROM subbilling.kpi_snapshot_status" "0"
qs -c "SELECT subbilling.refresh_kpi_snapshots()" >/dev/null 2>&1
is "ckpi: the snapshot's customer rows are the single server's (rebuilt whole there)" "$SNAPROWS" "$(qs -c "$SNAPROWS")"
is "ckpi: the snapshot's month sums are the single server's" "$SNAPMONTHS" "$(qs -c "$SNAPMONTHS")"
is "ckpi: read mode snapshot after it: the single server's" "SET subbilling.kpi_read = snapshot; $KPIS" "$KPI1"
is "ckpi: exact after it: the single server's" "$KPIS" "$KPI1"
runs "ckpi: a snapshot of an earlier day" "UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date - 1"
is "ckpi: exact with an earlier day's snapshot: the single server's" "$KPIS" "$KPI1"
KPIN=$(qc -c "SELECT subbilling.refresh_kpi_snapshots(true)" 2>&1)
is "ckpi: refresh_kpi_snapshots(true) on an earlier day's snapshot rebuilds it (the customer rows)" \
   "SELECT count(*) FROM subbilling_internal.kpi_snapshot_customers" "$KPIN"
is "ckpi: ... as of today" "SELECT of_today FROM subbilling.kpi_snapshot_status" "t"
is "ckpi: ... with the single server's rows" "$SNAPROWS" "$(qs -c "$SNAPROWS")"
# The readers on Citus: Citus plans a view's query on the shards as the session's user, who has
# no way into subbilling_internal; distribute() makes each KPI view read its query through a
# SECURITY DEFINER function, so the reader (a role without LOGIN, which Citus could not even
# connect to the workers as) reads what the owner reads, and still nothing internal.
for v in kpi_mrr kpi_mrr_movements kpi_churn kpi_ltv kpi_growth kpi_snapshot_status ar_aging upsell_candidates; do
    VQ="SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '-') FROM subbilling.$v x"
    for mode in exact snapshot; do
        want=$(qc -c "SET subbilling.kpi_read = $mode; $VQ" 2>&1)
        is "readers on Citus: subbilling_reader reads $v ($mode) as the owner does" \
           "SET subbilling.kpi_read = $mode; SET ROLE subbilling_reader; $VQ" "$want"
    done
done
is "readers on Citus: the rows of ar_aging are there to compare" "SELECT count(*) > 0 FROM subbilling.ar_aging" "t"
fails "readers on Citus: the reader still cannot read a view's query directly" \
      "SET ROLE subbilling_reader; SELECT count(*) FROM subbilling_internal.citus_kpi_mrr_q" "permission denied"
runs "readers on Citus: distribute() again leaves the views wrapped once" \
     "SELECT count(*) FROM subbilling.distribute(4)"
is "readers on Citus: ... each view reads its function, members of the extension" \
   "SELECT count(*) FILTER (WHERE pg_get_viewdef(c.oid) ~ ('citus_' || c.relname || '_rows\\(')) || '/' ||
           (SELECT count(*) FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
               AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'subbilling')
               AND ((d.classid = 'pg_proc'::regclass AND d.objid::regproc::text ~ '^subbilling_internal.citus_.*_rows$')
                 OR (d.classid = 'pg_class'::regclass AND d.objid::regclass::text ~ '^subbilling_internal.citus_.*_q$')))
      FROM pg_class c WHERE c.relnamespace = 'subbilling'::regnamespace AND c.relkind = 'v'
       AND c.relname IN ('kpi_mrr', 'kpi_mrr_movements', 'kpi_churn', 'kpi_ltv', 'kpi_growth',
                         'kpi_snapshot_status', 'ar_aging', 'upsell_candidates', 'revenue_recognition')" "9/18"

# a worker that crashed (a trigger on a shard that reached another node, then a commit) is
# restarted by its postmaster and the next check may pass: the logs tell
crashed=$(grep -l "terminated by signal" "$WORK"/n*.log 2>/dev/null | paste -sd, -)
if [ -z "$crashed" ]; then ok "no node crashed"; else nok "no node crashed" "$(grep -h -B3 "terminated by signal" "$WORK"/n*.log)"; fi

# ---- cdun: dunning delegated by shard (docs/citus.md "Dunning on Citus"), compared with the same
# runs on one server (a database without citus on the coordinator's node); import_autogiro_rejections
# through the coordinator
"$BIN/createdb" -h "$WORK" -p "$PORT" -U postgres cdun_plain
qp() { "$BIN/psql" -X -h "$WORK" -p "$PORT" -U postgres -d cdun_plain -v ON_ERROR_STOP=1 -qAt "$@"; }
qp -c "SET client_min_messages = warning" -c "CREATE EXTENSION subbilling CASCADE" >/dev/null
# a policy with every kind of step, eight accounts on it (both workers), a subscription each,
# billed; the same on one server
CD_SETUP="SET search_path = subbilling, public;
    INSERT INTO products (code, name, tax_rate) VALUES ('citus', 'Citus product', 25) ON CONFLICT (code) DO NOTHING;
    INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
    SELECT 'citus-monthly', id, 'Monthly', '1 month', 'flat', '100.00 SEK' FROM products WHERE code = 'citus'
        ON CONFLICT (code) DO NOTHING;
    DO \$\$ DECLARE pol bigint; BEGIN
        INSERT INTO subbilling.dunning_policies (code, name) VALUES ('cdun', 'Every kind of step') RETURNING id INTO pol;
        INSERT INTO subbilling.dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, fees, charge_interest)
        VALUES (pol, 1, 5, 'reminder', 'fixed', '{\"60.00 SEK\"}', false), (pol, 2, 15, 'reminder', 'country', NULL, true),
               (pol, 3, 25, 'payment_stop', 'none', NULL, false), (pol, 4, 35, 'collection', 'none', NULL, true),
               (pol, 5, 50, 'write_off', 'none', NULL, false);
        INSERT INTO subbilling.accounts (name, country, currency, dunning_policy_id)
        SELECT 'CDUN ' || g, 'SE', 'SEK', pol FROM generate_series(1, 8) g;
    END \$\$"
CD_SUB="DO \$\$ DECLARE a record; BEGIN
        FOR a IN SELECT id, substr(name, 6)::int AS g FROM subbilling.accounts WHERE name LIKE 'CDUN %' ORDER BY name LOOP
            PERFORM subbilling.subscribe(a.id, 'citus-monthly', 1 + a.g % 3, current_date - 40);
            COMMIT;
        END LOOP; END \$\$"
runs "cdun: a policy with every kind of step, eight accounts, a subscription each" "$CD_SETUP"
runs "cdun: subscribed" "$CD_SUB"
qp -c "$CD_SETUP" -c "$CD_SUB" >/dev/null
is "cdun: the accounts on both workers" \
   "SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement p
     WHERE p.shardid = ANY (ARRAY(SELECT get_shard_id_for_distribution_column('subbilling.accounts', a.id)
                                  FROM subbilling.accounts a WHERE a.name LIKE 'CDUN %'))" "2"
runs "cdun: billed" "SELECT subbilling.run_billing(now())"
qp -c "SELECT subbilling.run_billing(now())" >/dev/null
# what dunning did to the CDUN accounts, by account name (ids differ between the databases)
CD_SIG="SELECT string_agg(a.name || ' ' || d.step_no || ' ' || d.action || ' ' || d.executed_on - current_date || ' '
                          || d.open_amount::text || ' ' || coalesce(d.fee::text, '-') || ' ' || coalesce(d.interest::text, '-')
                          || ' ' || coalesce(d.written_off::text, '-') || ' ' || (d.subscription_id IS NOT NULL) || ' '
                          || coalesce(f.total::text || ' ' || f.status || ' ' || f.due_date - current_date, '-'),
                          E'\n' ORDER BY a.name, d.step_no)
      FROM subbilling.dunning_actions d
      JOIN subbilling.accounts a ON a.id = d.account_id
      LEFT JOIN subbilling.invoices f ON f.account_id = d.account_id AND f.id = d.fee_invoice_id
     WHERE a.name LIKE 'CDUN %'"
CD_STATE="SELECT (SELECT string_agg(a.name || ' ' || s.status, ',' ORDER BY a.name) FROM subbilling.subscriptions s
                   JOIN subbilling.accounts a ON a.id = s.account_id WHERE a.name LIKE 'CDUN %') || ' | ' ||
                 (SELECT string_agg(a.name || ' ' || i.status || ' ' || i.total::text, ',' ORDER BY a.name, i.total, i.status)
                    FROM subbilling.invoices i JOIN subbilling.accounts a ON a.id = i.account_id WHERE a.name LIKE 'CDUN %') || ' | ' ||
                 (SELECT string_agg(t.type || ' ' || t.n, ',' ORDER BY t.type)
                    FROM (SELECT e.type, count(*) AS n FROM subbilling.events e JOIN subbilling.accounts a ON a.id = e.account_id
                           WHERE a.name LIKE 'CDUN %' GROUP BY e.type) t) || ' | ' ||
                 (SELECT sum(subbilling.minor_units(l.amount)) || ' ' || count(*)
                    FROM subbilling.journal_lines l JOIN subbilling.accounts a ON a.id = l.account_id
                   WHERE a.name LIKE 'CDUN %' AND l.subledger = 'receivables')"
EV0=$(qc -c "SELECT coalesce(max(id), 0) FROM subbilling.events")
for d in 45 100 110 120 135; do   # a run per step: each is due days after the one before
    runs "cdun: run_dunning(current_date + $d) through the coordinator" "SELECT subbilling.run_dunning(current_date + $d)"
    qp -c "SELECT subbilling.run_dunning(current_date + $d)" >/dev/null
    is "cdun: after +$d, the same actions and fee invoices as on one server" "$CD_SIG" "$(qp -c "$CD_SIG" 2>&1)"
done
CD_N="SELECT count(*) || '/' || count(DISTINCT d.step_no) || '/' || count(d.fee_invoice_id) || '/' || count(*) FILTER (WHERE d.action = 'write_off')
      FROM subbilling.dunning_actions d JOIN subbilling.accounts a ON a.id = d.account_id WHERE a.name LIKE 'CDUN %'"
is "cdun: every step taken on every invoice (the notice and five steps, eight write-offs), fee invoices as on one server" \
   "$CD_N" "$(qp -c "$CD_N" 2>&1)"
is "cdun: ... that is 48 actions of 6 steps" "SELECT split_part(($CD_N), '/', 1) || '/' || split_part(($CD_N), '/', 2) || '/' || split_part(($CD_N), '/', 4)" "48/6/8"
is "cdun: subscriptions, invoices, events and receivables as on one server" "$CD_STATE" "$(qp -c "$CD_STATE" 2>&1)"
is "cdun: no dunning errors" "SELECT count(*) FROM subbilling.billing_errors WHERE invoice_id IS NOT NULL AND resolved_at IS NULL" "0"
is "cdun: the steps ran on the workers (each action's id from its account's worker's range)" \
   "SELECT bool_and((d.id >> 48) = n.groupid) || '/' || count(DISTINCT n.groupid)
      FROM subbilling.dunning_actions d JOIN subbilling.accounts a ON a.id = d.account_id
      JOIN pg_dist_shard_placement p ON p.shardid = get_shard_id_for_distribution_column('subbilling.accounts', d.account_id)
      JOIN pg_dist_node n ON n.nodeport = p.nodeport
     WHERE a.name LIKE 'CDUN %'" "true/2"
is "cdun: fee invoice, journal-entry and event ids drawn on the coordinator (below the workers' ranges)" \
   "SELECT (SELECT max(f.id) < 1::bigint << 48 FROM subbilling.dunning_actions d
             JOIN subbilling.invoices f ON f.account_id = d.account_id AND f.id = d.fee_invoice_id)
       AND (SELECT max(id) < 1::bigint << 48 FROM subbilling.journal_entries)
       AND (SELECT max(id) < 1::bigint << 48 FROM subbilling.events)" "t"
is "cdun: every series' numbers gapless from 1, its counter after the last" \
   "SELECT bool_and(q.n = q.d AND q.mn = 1 AND q.mx = q.n AND c.next_number = q.mx + 1) || '/' || count(*)
      FROM (SELECT i.series_id, count(*) AS n, count(DISTINCT i.number_seq) AS d, min(i.number_seq) AS mn, max(i.number_seq) AS mx
              FROM subbilling.invoices i WHERE i.number_seq IS NOT NULL GROUP BY i.series_id) q
      JOIN subbilling.invoice_counters c ON c.series_id = q.series_id" \
   "true/$(qc -c "SELECT count(DISTINCT series_id) FROM subbilling.invoices WHERE number_seq IS NOT NULL")"
is "cdun: events_after hands out the dunning's events, in id order" \
   "SELECT (SELECT array_agg(id) FROM subbilling.events_after($EV0, 100000))
           = (SELECT array_agg(id ORDER BY id) FROM subbilling.events WHERE id > $EV0)
       AND (SELECT count(*) FROM subbilling.events WHERE id > $EV0 AND type LIKE 'dunning.%') >= 40" "t"
is "cdun: a second run takes nothing" "SELECT subbilling.run_dunning(current_date + 135)" "0"
is "cdun: a second run takes nothing on one server either" "SELECT 0" "$(qp -c "SELECT subbilling.run_dunning(current_date + 135)" 2>&1)"

# import_autogiro_rejections through the coordinator: an account paying by Autogiro, its claim
# refused by Bankgirot (comment 03, mandate stopped), one claim not ours, and the refund paid back
# earlier (an outgoing payment, 32) refused; the report made as docs/directdebit.md makes it
runs "cdun: an Autogiro account with a mandate" "$SETUP
    INSERT INTO accounts (name, country, currency) VALUES ('CDUN AG', 'SE', 'SEK');
    INSERT INTO payment_methods (account_id, kind, is_default) SELECT id, 'autogiro', true FROM accounts WHERE name = 'CDUN AG';
    SELECT register_autogiro_mandate((SELECT id FROM accounts WHERE name = 'CDUN AG'), '7001', current_date - 10)"
CAG=$(qc -c "SELECT id FROM subbilling.accounts WHERE name = 'CDUN AG'")
CAI=$(issued "$CAG" '400.00 SEK' '100.00 SEK' 2>&1)
is "cdun: its invoice's payment request in a claim file" \
   "SELECT count(*) FROM regexp_split_to_table(subbilling.autogiro_claim_file(current_date + 3, '123456', '9912346'), E'\r\n') l
     WHERE l LIKE '82%' AND l LIKE '%0000000000007001%'" "1"
AGREJ=$(qc -c "WITH r AS (
        SELECT 1 AS k, '82' || to_char(c.due_date, 'YYYYMMDD') || '0   ' || lpad(c.payer_number, 16, '0')
               || lpad(subbilling.minor_units(c.amount)::text, 12, '0') || rpad(c.reference, 16) || '03' AS rec,
               0::bigint AS n32, 0::bigint AS s32, 1::bigint AS n82, subbilling.minor_units(c.amount) AS s82
          FROM subbilling.autogiro_claims c WHERE c.payer_number = '7001' AND c.outcome = 'sent'
        UNION ALL
        SELECT 2, '82' || to_char(current_date + 3, 'YYYYMMDD') || '0   ' || lpad('7999', 16, '0') || lpad('12300', 12, '0')
               || rpad('NOT OURS', 16) || '01', 0, 0, 1, 12300
        UNION ALL
        SELECT 3, '32' || to_char(o.pay_date, 'YYYYMMDD') || '0   ' || lpad(o.payer_number, 16, '0')
               || lpad(subbilling.minor_units(o.amount)::text, 12, '0') || rpad(o.reference, 16) || '09',
               1, subbilling.minor_units(o.amount), 0, 0
          FROM subbilling.autogiro_payouts o WHERE o.outcome = 'sent' AND o.file_id IS NOT NULL)
    SELECT rpad('01AUTOGIRO' || repeat(' ', 14) || to_char(current_date + 3, 'YYYYMMDD') || repeat(' ', 12) || 'AVVISADE BET UPPDR  1234560009912346', 80)
           || E'\r\n' || string_agg(rpad(r.rec, 80), E'\r\n' ORDER BY r.k) || E'\r\n'
           || rpad('09' || to_char(current_date + 3, 'YYYYMMDD') || '9900' || lpad(sum(r.n32)::text, 6, '0') || lpad(sum(r.s32)::text, 12, '0')
                   || lpad(sum(r.n82)::text, 6, '0') || lpad(sum(r.s82)::text, 12, '0'), 80) || E'\r\n'
      FROM r" 2>&1)
NPO=$(qc -c "SELECT count(*) FROM subbilling.autogiro_payouts WHERE outcome = 'sent' AND file_id IS NOT NULL")
is "import_autogiro_rejections through the coordinator: the claim and the payout refused, one claim not ours" \
   "SELECT refused || '/' || unknown || '/' || repeated FROM subbilling.import_autogiro_rejections('$AGREJ')" "$((1 + NPO))/1/false"
is "import_autogiro_rejections: the claim refused (comment 03), its request failed with the reason" \
   "SELECT c.outcome || ' ' || c.status_code || ' ' || r.status || ' ' || r.failure_reason
      FROM subbilling.autogiro_claims c JOIN subbilling.payment_requests r ON r.account_id = c.account_id AND r.id = c.payment_request_id
     WHERE c.payer_number = '7001'" "refused 3 failed autogiro: mandate stopped"
is "import_autogiro_rejections: event payment.failed on the account" \
   "SELECT count(*) FROM subbilling.events WHERE account_id = $CAG AND type = 'payment.failed'" "1"
is "import_autogiro_rejections: the payouts refused" \
   "SELECT count(*) FROM subbilling.autogiro_payouts WHERE outcome = 'sent' AND file_id IS NOT NULL" "0"
is "import_autogiro_rejections: the same report again changes nothing" \
   "SELECT refused || '/' || unknown || '/' || repeated FROM subbilling.import_autogiro_rejections('$AGREJ')" "0/0/true"

echo "1..$N"
[ -n "${CITUS_KEEP:-}" ] && echo "# cluster kept in $WORK (ports $PORTS)"
[ "$FAILED" -eq 0 ]
