#!/usr/bin/env bash
# Webhook throughput: deliveries per second of the webhook worker to a local receiver with 1, 10
# and 100 endpoints, against the same number of plain HTTP POSTs made by libcurl's multi
# interface in one process (bench/webhook_baseline.c: the limit), and the ratio.
#
#   PGHOST=/tmp PGPORT=5607 PGUSER=postgres bash bench/webhooks.sh [TOTAL]   (default 3000)
#
# Runs against the cluster PGHOST/PGPORT name, which must preload subbilling (its webhook
# worker serves subbilling.database): use a private or throwaway cluster, since the script
# sets subbilling.webhook_concurrency = 100 and webhook_poll_interval = 100ms with ALTER SYSTEM
# (reset at the end), allows 127.0.0.1, disables every other endpoint, and leaves its events,
# endpoints (disabled) and deliveries in the database.  For each endpoint count E it creates
# E endpoints, commits TOTAL/E events in one transaction and measures from the commit to the
# last delivery's finished_at; the baseline POSTs the same number of bodies of the same size
# to the same receiver, one request in flight per URL (the worker's order per endpoint).
# The receiver is test/webhook_receiver.py --quiet (Python's threaded http.server, one thread
# per connection), the same for both.  Output: build/bench/webhooks.txt.
set -eu -o pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-3000}
OUT=build/bench; mkdir -p $OUT
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
DB=$("${PSQL[@]}" -d postgres -c "SHOW subbilling.database")
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)

cc -O2 -Wall -Wextra -o $OUT/webhook_baseline bench/webhook_baseline.c -lcurl
TMP=$(mktemp -d /tmp/subbilling-whbench.XXXXXX)
$PY test/webhook_receiver.py --port-file $TMP/port --quiet >$TMP/receiver.out 2>&1 &
RECV=$!
trap 'kill $RECV 2>/dev/null; rm -rf $TMP' EXIT
for _ in $(seq 100); do [ -s $TMP/port ] && break; sleep 0.1; done
PORT=$(cat $TMP/port)

"${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET subbilling.webhook_concurrency = 100" \
    -c "ALTER SYSTEM SET subbilling.webhook_poll_interval = '100ms'" -c "SELECT pg_reload_conf()" >/dev/null
"${PSQL[@]}" -d "$DB" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS subbilling CASCADE;
INSERT INTO subbilling.webhook_allowed_hosts (pattern) VALUES ('127.0.0.1') ON CONFLICT DO NOTHING;
INSERT INTO subbilling.accounts (external_id, name, email, country, currency)
SELECT 'webhook-bench', 'Bench AB', 'bench@example.com', 'SE', 'SEK'
 WHERE NOT EXISTS (SELECT FROM subbilling.accounts WHERE external_id = 'webhook-bench');
SQL
ACCT=$("${PSQL[@]}" -d "$DB" -c "SELECT id FROM subbilling.accounts WHERE external_id = 'webhook-bench'")

{
echo "webhook deliveries per second, $TOTAL deliveries per row; receiver test/webhook_receiver.py on 127.0.0.1"
echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $("${PSQL[@]}" -d postgres -c 'SELECT version()' | cut -d, -f1), $(curl --version | head -1 | cut -d' ' -f1-2)"
printf '%-10s %12s %12s %14s %14s %8s\n' endpoints deliveries worker_s worker_per_s curl_multi_s ratio
} | tee $OUT/webhooks.txt

for E in 1 10 100; do
    N=$((TOTAL / E))
    "${PSQL[@]}" -d "$DB" -c "UPDATE subbilling.webhook_endpoints SET active = false, disabled_at = now() WHERE active" >/dev/null
    RUN=$("${PSQL[@]}" -d "$DB" -c "SELECT coalesce(max(id), 0) FROM subbilling.webhook_endpoints")
    "${PSQL[@]}" -d "$DB" -c "SELECT count(*) FROM generate_series(0, $E - 1) i, subbilling.create_webhook_endpoint('http://127.0.0.1:$PORT/ok/e' || i)" >/dev/null
    T0=$("${PSQL[@]}" -d "$DB" <<SQL
BEGIN;
SELECT count(subbilling_internal.emit_event($ACCT, 'bench.delivered', NULL, jsonb_build_object('n', g, 'invoice', 'INV-2026-' || lpad(g::text, 6, '0'), 'amount', '129.00 SEK'))) FROM generate_series(1, $N) g;
COMMIT;
SELECT clock_timestamp();
SQL
)
    T0=$(echo "$T0" | tail -1)
    WHERE="endpoint_id > $RUN"
    for _ in $(seq 3000); do
        left=$("${PSQL[@]}" -d "$DB" -c "SELECT $N * $E - count(*) FILTER (WHERE status = 'succeeded') FROM subbilling.webhook_deliveries WHERE $WHERE")
        [ "$left" = 0 ] && break
        sleep 0.2
    done
    [ "$left" = 0 ] || { echo "E=$E: $left deliveries not done" >&2; exit 1; }
    read -r D S BYTES < <("${PSQL[@]}" -F' ' -d "$DB" -c "SELECT count(*), extract(epoch FROM max(d.finished_at) - '$T0'::timestamptz),
        (SELECT round(avg(length(to_jsonb(e)::text))) FROM subbilling.events e WHERE e.type = 'bench.delivered')
        FROM subbilling.webhook_deliveries d WHERE $WHERE")
    read -r _ CS _ < <($OUT/webhook_baseline "http://127.0.0.1:$PORT/ok/b" "$E" "$((N * E))" "$BYTES")
    awk -v e=$E -v d=$D -v s=$S -v cs=$CS 'BEGIN { printf "%-10d %12d %12.3f %14.0f %14.3f %8.2f\n", e, d, s, d / s, cs, s / cs }' \
        | tee -a $OUT/webhooks.txt
done
"${PSQL[@]}" -d "$DB" -c "UPDATE subbilling.webhook_endpoints SET active = false, disabled_at = now() WHERE active" >/dev/null
"${PSQL[@]}" -d postgres -c "ALTER SYSTEM RESET subbilling.webhook_concurrency" \
    -c "ALTER SYSTEM RESET subbilling.webhook_poll_interval" -c "SELECT pg_reload_conf()" >/dev/null
echo "ratio = worker time / curl multi time for the same number of POSTs (1 = the limit)" | tee -a $OUT/webhooks.txt
