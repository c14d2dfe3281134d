-- The reader role reads the KPI views and no other relation of the
-- extension (tables, views, materialized views, sequences, foreign tables:
-- every member of the extension and everything in its schemas, wherever
-- they are); the customer-data views are refused, the operator keeps them.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(28);

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
                'subbilling.kpi_mrr', 'subbilling.kpi_mrr_movements', 'subbilling.kpi_snapshot_status',
                'subbilling.revenue_recognition',
                'subbilling.upsell_candidates']::text[],
          'every relation the reader can read is a KPI view, and it reads all of them');
SELECT ok(NOT has_schema_privilege('subbilling_reader', 'subbilling_internal', 'USAGE'),
          'the reader has no way into the internal schema');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.' || v, 'SELECT'), 'the operator keeps ' || v)
  FROM unnest('{subscription_item_history,customer_ledger,open_items,account_balances}'::text[]) AS v;

-- Functions: the reader executes only what is on this list (docs/privileges.md
-- explains it): the pure functions of the types and of period, price and
-- reference arithmetic, the bank-file parsers (of the text passed in), the
-- worker's settings, and two SECURITY DEFINER functions that return no
-- customer data: vat_report (the VAT return's boxes, summed) and ledger_code
-- (the chart of accounts' mapping).  A function added to the schema and
-- executable by the reader fails here until it is reviewed and listed.
CREATE TEMP TABLE reader_allowed (proname name PRIMARY KEY);
INSERT INTO reader_allowed VALUES
    ('abs'), ('aging_buckets'), ('allocate'), ('amount'), ('avg'), ('bgmax_summary'), ('bgmax_warnings'),
    ('billing_period_cmp'), ('billing_period_eq'), ('billing_period_ge'), ('billing_period_gt'), ('billing_period_hash'), ('billing_period_hash_extended'),
    ('billing_period_in'), ('billing_period_le'), ('billing_period_lt'), ('billing_period_ne'), ('billing_period_out'), ('billing_period_recv'),
    ('billing_period_send'), ('billing_period_to_interval'), ('currency'), ('currency_exponent'), ('current_run_id'), ('fi_reference'),
    ('fik_reference'), ('int4_mul_price'), ('int8_mul_price'), ('is_automatic_method'), ('is_country_code'), ('kid_reference'),
    ('kid_valid'), ('ledger_code'), ('luhn_reference'), ('max'), ('min'), ('minor_units'),
    ('monthly'), ('net_of'), ('nets_ocr_summary'), ('nets_ocr_warnings'), ('numeric_mul_price'), ('ocr_reference'),
    ('ocr_valid'), ('package_price'), ('parse_autogiro'), ('parse_avtalegiro_agreements'), ('parse_bgmax'), ('parse_nets_ocr'),
    ('payment_reference'), ('period_index'), ('period_of'), ('period_start'), ('periods_per_year'), ('price'),
    ('price_accum'), ('price_accum_combine'), ('price_accum_deserialize'), ('price_accum_inv'), ('price_accum_serialize'), ('price_add'),
    ('price_avg_final'), ('price_cmp'), ('price_div_int4'), ('price_div_int8'), ('price_div_numeric'), ('price_div_price'),
    ('price_eq'), ('price_ge'), ('price_gt'), ('price_hash'), ('price_hash_extended'), ('price_in'),
    ('price_larger'), ('price_le'), ('price_lt'), ('price_minor'), ('price_mul_int4'), ('price_mul_int8'),
    ('price_mul_numeric'), ('price_ne'), ('price_out'), ('price_recv'), ('price_send'), ('price_smaller'),
    ('price_sub'), ('price_sum_final'), ('price_uminus'), ('prorate'), ('reference_of'), ('sum'),
    ('tax'), ('tax_rate_at'), ('tax_rate_missing'), ('tier'), ('tiered_price'), ('vat_number'),
    ('vat_number_valid'), ('vat_report'), ('webhook_signature'), ('worker_config');
SELECT is((SELECT array_agg(DISTINCT p.proname::text ORDER BY p.proname::text)
             FROM pg_proc p
            WHERE p.pronamespace = 'subbilling'::regnamespace
              AND has_function_privilege('subbilling_reader', p.oid, 'EXECUTE')
              AND p.proname NOT IN (SELECT proname FROM reader_allowed)),
          NULL, 'the reader executes no function of the schema that is not on the allow-list');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
             FROM pg_proc p
            WHERE p.pronamespace = 'subbilling'::regnamespace AND p.prosecdef
              AND has_function_privilege('subbilling_reader', p.oid, 'EXECUTE')),
          ARRAY['ledger_code(text,text,text)', 'vat_report(date,date)'],
          'of the SECURITY DEFINER functions (which read as the owner) it executes vat_report and ledger_code only');
SELECT ok(NOT has_function_privilege('subbilling_reader', f, 'EXECUTE'), 'the reader does not execute ' || f)
  FROM unnest(ARRAY['subbilling.subscription_status(bigint, date)', 'subbilling.subscription_history(bigint)',
                    'subbilling.subscription_items_on(bigint, date)', 'subbilling.account_balance(bigint)',
                    'subbilling.invoice_open_amount(bigint, bigint)', 'subbilling.customer_credit(bigint)',
                    'subbilling.eu_sales_list(date, date)', 'subbilling.sie_export(date, date, text)',
                    'subbilling.refresh_kpi_snapshots(boolean)']) AS f;
SELECT ok(has_function_privilege('subbilling_operator', f, 'EXECUTE'), 'the operator keeps ' || f)
  FROM unnest(ARRAY['subbilling.subscription_status(bigint, date)', 'subbilling.account_balance(bigint)',
                    'subbilling.eu_sales_list(date, date)', 'subbilling.vat_report(date, date)']) AS f;

SET LOCAL ROLE subbilling_reader;
SELECT throws_ok(format('SELECT count(*) FROM subbilling.%I', v), '42501', NULL, 'as the reader: ' || v || ' is refused')
  FROM unnest('{subscription_item_history,customer_ledger,open_items,account_balances}'::text[]) AS v;
SELECT lives_ok('SELECT count(*) FROM subbilling.kpi_mrr', 'as the reader: kpi_mrr reads');
SELECT throws_ok('SELECT subbilling.account_balance(1)', '42501', NULL, 'as the reader: account_balance is refused');
-- (without a seller set up it stops at that, past the privilege check)
SELECT throws_ok($$SELECT count(*) FROM subbilling.vat_report('2024-01-01', '2024-01-31')$$, '55000', NULL,
                 'as the reader: vat_report runs');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
