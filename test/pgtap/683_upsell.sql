-- upsell_candidates: usage above the included units in at least 2 of the
-- last 3 complete billing periods, and the cheapest plan covering the
-- average; figures worked by hand.  Months relative to today.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';

SELECT plan(6);

INSERT INTO products (code, name) VALUES ('u_api', 'API'), ('u_other', 'Other');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, included_units, active)
SELECT x.code, (SELECT id FROM products WHERE code = x.prod), x.code, '1 month', 'flat', x.price::price, x.inc, x.active
  FROM (VALUES ('u_s', 'u_api', '100.00 SEK', 1000, true), ('u_m', 'u_api', '250.00 SEK', 5000, true),
               ('u_m_old', 'u_api', '200.00 SEK', 5000, false),      -- inactive: never suggested
               ('u_m_eur', 'u_api', '25.00 EUR', 5000, true),        -- other currency: never suggested
               ('u_x', 'u_other', '150.00 SEK', 9000, true),         -- other product: never suggested
               ('u_l', 'u_api', '600.00 SEK', 20000, true))
       AS x(code, prod, price, inc, active);
INSERT INTO accounts (external_id, name, country, currency)
SELECT 'u_' || c, 'Upsell ' || c, 'SE', 'SEK' FROM unnest('{a,b,c,d}'::text[]) AS c;
CREATE TEMP TABLE us (who text, id bigint);
-- all four on u_s (1000 included) since four months before this month's first day
INSERT INTO us SELECT c, subscribe((SELECT id FROM accounts WHERE external_id = 'u_' || c), 'u_s', 1,
                                   (date_trunc('month', current_date) - interval '4 months')::date)
  FROM unnest('{a,b,c,d}'::text[]) AS c;
-- usage on the 2nd of each of the last three complete months (k = 1, 2, 3 months back)
CREATE FUNCTION pg_temp.use(who text, k integer, q numeric) RETURNS void LANGUAGE sql AS $$
    INSERT INTO subbilling.usage (account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, idempotency_key)
    SELECT i.account_id, i.subscription_id, i.id, i.plan_id, q, d, d::date, who || k || q
      FROM subbilling.subscription_items i
     CROSS JOIN LATERAL (SELECT (date_trunc('month', current_date) - k * interval '1 month' + interval '1 day') AS d) x
     WHERE i.subscription_id = (SELECT id FROM us WHERE us.who = use.who)
$$;
-- a: 1500, 900, 3000: over twice, average 1800: u_m (5000, 250.00) is the cheapest cover
SELECT pg_temp.use('a', 1, 1500), pg_temp.use('a', 2, 900), pg_temp.use('a', 3, 3000);
-- b: 1500, 900, 900: over once: no candidate
SELECT pg_temp.use('b', 1, 1500), pg_temp.use('b', 2, 900), pg_temp.use('b', 3, 900);
-- c: 30000 three times: over 3 times, average 30000: no plan covers it
SELECT pg_temp.use('c', 1, 30000), pg_temp.use('c', 2, 30000), pg_temp.use('c', 3, 30000);
-- d: 6000 and 7000 this month (not complete) and 1100, 1000 before: over once (1000 is not above 1000)
SELECT pg_temp.use('d', 0, 6000), pg_temp.use('d', 1, 1100), pg_temp.use('d', 2, 1000);

SELECT results_eq(
    $$ SELECT a.external_id, u.plan_code, u.included_units, u.periods_over, u.average_usage, u.suggested_plan_code,
              u.suggested_included_units, u.suggested_price::text
         FROM upsell_candidates u JOIN accounts a ON a.id = u.account_id ORDER BY a.external_id $$,
    $$ VALUES ('u_a', 'u_s', 1000::numeric, 2::bigint, 1800.00::numeric, 'u_m', 5000::numeric, '250.00'),
              ('u_c', 'u_s', 1000, 3, 30000.00, NULL, NULL, NULL) $$,
    'candidates: over in 2 or 3 of the last 3 complete periods; the cheapest active plan of the product and currency covering the average');
SELECT is((SELECT count(*) FROM upsell_candidates u JOIN accounts a ON a.id = u.account_id WHERE a.external_id = 'u_b'), 0::bigint,
          'over in 1 period of 3: not a candidate');
SELECT is((SELECT count(*) FROM upsell_candidates u JOIN accounts a ON a.id = u.account_id WHERE a.external_id = 'u_d'), 0::bigint,
          'the current, incomplete period does not count, and usage equal to the included units is not above it');
-- a moves to u_m: no longer over
SELECT FROM change_plan((SELECT id FROM us WHERE who = 'a'), 'u_m', (date_trunc('month', current_date) - interval '4 months')::date + 1);
SELECT is((SELECT count(*) FROM upsell_candidates u JOIN accounts a ON a.id = u.account_id WHERE a.external_id = 'u_a'), 0::bigint,
          'on a plan that includes the usage: not a candidate');
-- a canceled subscription is no candidate
SELECT FROM cancel((SELECT id FROM us WHERE who = 'c'), current_date);
SELECT is((SELECT count(*) FROM upsell_candidates), 0::bigint, 'a canceled subscription is not a candidate');
SELECT (SELECT id FROM us WHERE who = 'a') AS a_id \gset
SET LOCAL ROLE subbilling_reader;
SELECT lives_ok('SELECT * FROM subbilling.upsell_candidates', 'the reader reads upsell_candidates');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
