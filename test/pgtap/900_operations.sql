-- Operations: what pg_dump is told to dump (every table and sequence, shipped
-- rows only when an operator changed them), the invoice counter created
-- without a trigger, ledger_code for operators and readers, event retention
-- after dunning, and a pinned search_path on every function with a text body.
-- test/dump_restore.sh runs the dump and the restore themselves.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(22);

CREATE ROLE subbilling_tap_ops_operator NOLOGIN IN ROLE subbilling_operator;
CREATE ROLE subbilling_tap_ops_reader NOLOGIN IN ROLE subbilling_reader;
CREATE FUNCTION pg_temp.as_role(r name, q text) RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE q INTO res;
    RESET ROLE;
    RETURN res;
EXCEPTION WHEN OTHERS THEN
    RESET ROLE;
    RAISE;
END
$$;

-- ---------------------------------------------------------------- pg_dump
CREATE TEMP VIEW members AS
SELECT c.oid, c.relname, c.relkind
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                  AND d.refclassid = 'pg_extension'::regclass
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'subbilling'
 WHERE c.relkind IN ('r', 'S');
SELECT is((SELECT array_agg(relname ORDER BY relname) FROM members m
            WHERE m.relkind = 'r' AND NOT m.oid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'subbilling')::oid[])),
          NULL, 'every table of the extension is marked for pg_dump');
SELECT is((SELECT array_agg(relname ORDER BY relname) FROM members m
            WHERE m.relkind = 'S' AND NOT m.oid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'subbilling')::oid[])),
          NULL, 'every sequence of the extension (identity sequences too) is marked for pg_dump');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname)
             FROM pg_extension x, unnest(x.extconfig, x.extcondition) u(oid, cond) JOIN pg_class c ON c.oid = u.oid
            WHERE x.extname = 'subbilling' AND u.cond <> ''),
          ARRAY['country_settings', 'delivery_settings', 'dunning_policies', 'dunning_steps', 'entitlement_policy',
                'kpi_aging', 'kpi_dirty_accounts', 'kpi_open_items', 'kpi_recognition_dirty', 'kpi_recognition_months', 'kpi_recognition_snapshot',
                'kpi_snapshot_customers', 'kpi_snapshot_months', 'kpi_snapshot_state', 'kpi_usage_items', 'kpi_usage_periods',
                'kpi_usage_queue',  -- never dumped
                'ledger_accounts', 'ledger_mappings',
                'outbox_slots', 'payment_settings', 'reference_rates', 'subscription_transitions',
                'tax_categories', 'tax_rates', 'vat_boxes'],
          'the tables that ship rows are dumped with a filter');
SELECT is((SELECT array_agg(DISTINCT u.cond ORDER BY u.cond) FROM pg_extension x, unnest(x.extconfig, x.extcondition) u(oid, cond)
            WHERE x.extname = 'subbilling' AND u.cond <> ''),
          ARRAY['WHERE false', 'WHERE origin <> ''shipped'''],
          'the filters: rows an operator added or changed (origin), none of the outbox slots');
SELECT is((SELECT count(*) FROM country_settings WHERE origin <> 'shipped')
        + (SELECT count(*) FROM ledger_accounts WHERE origin <> 'shipped')
        + (SELECT count(*) FROM payment_settings WHERE origin <> 'shipped')
        + (SELECT count(*) FROM dunning_steps WHERE origin <> 'shipped' AND policy_id = (SELECT id FROM dunning_policies WHERE code = 'default')),
          0::bigint, 'the installed rows are shipped');
UPDATE payment_settings SET retry_days = '{2}';
SELECT is((SELECT origin FROM payment_settings), 'edited', 'a changed shipped row becomes edited (dumped)');
UPDATE ledger_accounts SET name = name WHERE code = '1510';
SELECT is((SELECT origin FROM ledger_accounts WHERE code = '1510'), 'shipped', 'an update that changes nothing leaves it shipped');
INSERT INTO ledger_accounts (code, name, kind) VALUES ('3995', 'Operations test', 'revenue');
SELECT is((SELECT origin FROM ledger_accounts WHERE code = '3995'), 'user', 'an added row is the operator''s (dumped)');
-- a restore inserts an edited row over the shipped row of the same key
INSERT INTO country_settings (country, reference_kind, description, reminder_fees, origin)
VALUES ('NO', 'kid', 'restored', '{"40.00 NOK"}', 'edited');
SELECT results_eq($$SELECT description, reminder_fees::text, origin FROM country_settings WHERE country = 'NO'$$,
                  $$VALUES ('restored', '{"40.00 NOK"}', 'edited')$$,
                  'an edited row inserted at restore replaces the shipped row of its key');
SELECT throws_ok($$INSERT INTO country_settings (country, reference_kind) VALUES ('SE', 'ocr')$$, '23505', NULL,
                 'an operator''s duplicate of a shipped key is still refused');

-- ---------------------------------------------------------------- invoice counters
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'subbilling.invoice_series'::regclass AND NOT tgisinternal),
          0::bigint, 'no trigger on invoice_series makes rows at restore');
INSERT INTO invoice_series (code, prefix) VALUES ('2031', 'X-');
SELECT is((SELECT count(*) FROM invoice_counters WHERE series_id = (SELECT id FROM invoice_series WHERE code = '2031')),
          0::bigint, 'a series inserted by hand has no counter yet');
SELECT is((SELECT number FROM subbilling_internal.take_invoice_number('2031-02-01')), 'X-000001',
          'numbering creates the counter of a series on first use');
SELECT is((SELECT number FROM subbilling_internal.take_invoice_number('2031-03-01')), 'X-000002', 'and numbers on from it');

-- ---------------------------------------------------------------- ledger_code
SELECT is(pg_temp.as_role('subbilling_tap_ops_operator', $$SELECT subbilling.ledger_code('bank', 'SEK')$$), '1930',
          'an operator calls ledger_code');
SELECT is(pg_temp.as_role('subbilling_tap_ops_reader', $$SELECT subbilling.ledger_code('vat', 'SEK', '25')$$), '2611',
          'a reader calls ledger_code');

-- ---------------------------------------------------------------- event retention
SELECT pg_temp.account('ops1') AS ops1 \gset
CREATE TEMP TABLE ops_inv AS SELECT pg_temp.invoice('ops1', '300.00 SEK', '2024-01-01') AS inv;
SELECT is(run_dunning('2024-02-11') > 0, true, 'dunning ran on an invoice');
UPDATE events SET created_at = created_at - interval '200 days' WHERE account_id = :ops1;
SELECT is(pg_temp.as_role('subbilling_tap_ops_operator', $$SELECT subbilling.purge_events(now() - interval '90 days') > 0$$),
          'true', 'an operator purges the events older than 90 days, after dunning ran');
SELECT is((SELECT count(*) FROM events e WHERE e.account_id = :ops1
            AND NOT EXISTS (SELECT FROM dunning_actions d WHERE d.account_id = e.account_id AND d.event_id = e.id)),
          0::bigint, 'every old event without a dunning step is gone');
SELECT is((SELECT count(*) FROM events e JOIN dunning_actions d ON d.account_id = e.account_id AND d.event_id = e.id
            WHERE e.account_id = :ops1) > 0, true, 'the events of the dunning steps stay');
SELECT throws_ok($$SELECT purge_events(now() + interval '1 day')$$, '22023',
                 'the retention cutoff must be a time in the past', 'a cutoff in the future is refused');

-- ---------------------------------------------------------------- search_path
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
             FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'subbilling'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
              AND p.prosqlbody IS NULL
              AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')),
          NULL, 'every function of the schema with a body in text pins its search_path');

SELECT * FROM finish();
ROLLBACK;
