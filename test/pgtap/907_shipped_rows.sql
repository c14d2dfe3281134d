-- The tables that ship rows, as installed: each has its column origin, its trigger
-- <table>_shipped_row and its dump filter, and every row it ships is written with
-- origin 'shipped' (a shipped row left at the default 'user' would be dumped and
-- restored as an operator's row).
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(5);

SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname)
             FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
            WHERE c.relnamespace = 'subbilling'::regnamespace AND tg.tgname = c.relname || '_shipped_row'),
          ARRAY['country_settings', 'delivery_settings', 'dunning_policies', 'dunning_steps', 'entitlement_policy', 'ledger_accounts', 'ledger_mappings',
                'payment_settings', 'reference_rates', 'subscription_transitions', 'tax_categories', 'tax_rates',
                'vat_boxes'],
          'the tables that ship rows have their trigger _shipped_row');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname)
             FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
            WHERE c.relnamespace = 'subbilling'::regnamespace AND tg.tgname = c.relname || '_shipped_row'
              AND NOT EXISTS (SELECT FROM pg_extension x, unnest(x.extconfig, x.extcondition) u(oid, cond)
                               WHERE x.extname = 'subbilling' AND u.oid = c.oid AND u.cond = 'WHERE origin <> ''shipped''')),
          NULL, 'each of them is dumped with the filter WHERE origin <> ''shipped''');

-- every installed row is a shipped row, in every table that ships rows
CREATE TEMP TABLE t_origins (tbl text, origin text, n bigint) ON COMMIT DROP;
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT tg.tgrelid::regclass FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
              WHERE c.relnamespace = 'subbilling'::regnamespace AND tg.tgname = c.relname || '_shipped_row'
    LOOP
        EXECUTE format('INSERT INTO t_origins SELECT %L, origin, count(*) FROM %s GROUP BY origin', t::text, t);
    END LOOP;
END
$$;
SELECT is((SELECT array_agg(tbl || ': ' || origin ORDER BY tbl, origin) FROM t_origins WHERE origin <> 'shipped'),
          NULL, 'every row installed in a table that ships rows has origin shipped');
SELECT is((SELECT count(DISTINCT tbl) FROM t_origins WHERE origin = 'shipped' AND n > 0), 13::bigint,
          'each of the 13 tables ships rows');

-- the per-country rules of dunning ship with the country's row, as shipped
SELECT results_eq($$SELECT country, reminder_fees::text, reminder_fee_max_count, reminder_fee_min_days,
                           late_interest_margin, origin
                      FROM country_settings ORDER BY country$$,
                  $$VALUES ('DK', '{"100.00 DKK"}', 3, NULL::integer, NULL::numeric, 'shipped'),
                           ('FI', '{"5.00 EUR"}', NULL, NULL, NULL, 'shipped'),
                           ('IS', NULL, NULL, NULL, NULL, 'shipped'),
                           ('NO', '{"35.00 NOK"}', 2, 14, 8, 'shipped'),
                           ('SE', '{"60.00 SEK"}', NULL, NULL, 8, 'shipped')$$,
                  'the shipped countries carry their reminder fees and interest margins, origin shipped');

SELECT * FROM finish();
ROLLBACK;
