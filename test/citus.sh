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
     WHERE partmethod = 'h' AND logicalrelid::text LIKE 'subbilling%'" "1"
is "accounts is distributed by id" \
   "SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition WHERE logicalrelid = 'subbilling.accounts'::regclass" "id"
is "the catalog is reference tables" \
   "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
     WHERE p.partmethod = 'n' AND p.repmodel = 't' AND c.relname IN ('plans', 'products')" \
   "plans,products"
runs "distribute() again changes nothing" "SELECT count(*) FROM subbilling.distribute(4)"
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

echo "1..$N"
[ -n "${CITUS_KEEP:-}" ] && echo "# cluster kept in $WORK (ports $PORTS)"
[ "$FAILED" -eq 0 ]
