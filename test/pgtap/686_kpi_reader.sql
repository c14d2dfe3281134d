-- The reader role reads the KPI views and no other relation of the
-- extension (tables, views, materialized views, sequences, foreign tables:
-- every member of the extension and everything in its schemas, wherever
-- they are); the customer-data views are refused, the operator keeps them.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(11);

SELECT is((SELECT array_agg(n.nspname || '.' || c.relname ORDER BY n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE (n.nspname IN ('subbilling', 'subbilling_internal')
                   OR EXISTS (SELECT FROM pg_depend d
                               WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                                 AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'subbilling')))
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND (has_table_privilege('subbilling_reader', c.oid, 'SELECT')
                   OR has_any_column_privilege('subbilling_reader', c.oid, 'SELECT'))),
          ARRAY['subbilling.ar_aging', 'subbilling.kpi_churn', 'subbilling.kpi_growth', 'subbilling.kpi_ltv',
                'subbilling.kpi_mrr', 'subbilling.kpi_mrr_movements', 'subbilling.revenue_recognition',
                'subbilling.upsell_candidates']::text[],
          'every relation the reader can read is a KPI view, and it reads all of them');
SELECT ok(NOT has_schema_privilege('subbilling_reader', 'subbilling_internal', 'USAGE'),
          'the reader has no way into the internal schema');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.' || v, 'SELECT'), 'the operator keeps ' || v)
  FROM unnest('{subscription_item_history,customer_ledger,open_items,account_balances}'::text[]) AS v;

SET LOCAL ROLE subbilling_reader;
SELECT throws_ok(format('SELECT count(*) FROM subbilling.%I', v), '42501', NULL, 'as the reader: ' || v || ' is refused')
  FROM unnest('{subscription_item_history,customer_ledger,open_items,account_balances}'::text[]) AS v;
SELECT lives_ok('SELECT count(*) FROM subbilling.kpi_mrr', 'as the reader: kpi_mrr reads');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
