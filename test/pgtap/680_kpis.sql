-- KPI views over a fixture business whose every figure is worked by hand
-- below from the definitions (docs/kpis.md), not copied from output:
-- monthly, quarterly and yearly plans, per-seat quantities, a recurring
-- discount and a once-only one, a trial, a pause, an upgrade and a
-- downgrade, a cancel at period end, a churn and a reactivation, a payment
-- stop, and two currencies.  All in 2025; the views run to the current
-- month, the tests read January to May 2025.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';

SELECT plan(28);

INSERT INTO products (code, name) VALUES ('k_saas', 'KPI SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT x.code, (SELECT id FROM products WHERE code = 'k_saas'), x.code, x.bp::billing_period, x.model, x.price::price
  FROM (VALUES ('k_basic', '1 month', 'flat', '100.00 SEK'),     -- MRR 100.00
               ('k_pro', '1 month', 'flat', '300.00 SEK'),       -- MRR 300.00
               ('k_quarter', '3 months', 'flat', '270.00 SEK'),  -- MRR 270 / 3 = 90.00
               ('k_year', '1 year', 'flat', '1200.00 SEK'),      -- MRR 1200 / 12 = 100.00
               ('k_seat', '1 month', 'per_unit', '50.00 SEK'),   -- MRR 50.00 per seat
               ('k_eur', '1 month', 'flat', '20.00 EUR'))        -- MRR 20.00 EUR
       AS x(code, bp, model, price);
INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods) VALUES
    ('k_ten', '10 % for two months', 10, NULL, 'repeating', 2),
    ('k_once', '50 off once', NULL, '50.00 SEK', 'once', NULL);
INSERT INTO accounts (external_id, name, country, currency)
SELECT 'k_' || c, 'KPI customer ' || c, 'SE', CASE WHEN c = 'i' THEN 'EUR' ELSE 'SEK' END
  FROM unnest('{a,b,c,d,e,f,g,h,i,j}'::text[]) AS c;
CREATE FUNCTION pg_temp.acct(ext text) RETURNS bigint
    LANGUAGE sql STABLE RETURN (SELECT id FROM subbilling.accounts WHERE external_id = 'k_' || ext);

CREATE TEMP TABLE s (who text PRIMARY KEY, id bigint);
-- A: basic from Jan 1, upgraded to pro on Mar 1: 100, 100, 300, 300, 300 (expansion 200 in March)
INSERT INTO s SELECT 'a', subscribe(pg_temp.acct('a'), 'k_basic', 1, '2025-01-01');
SELECT FROM change_plan((SELECT id FROM s WHERE who = 'a'), 'k_pro', '2025-03-01');
-- B: 4 seats from Jan 1 (200), down to 2 seats on Apr 1 (100): contraction 100 in April
INSERT INTO s SELECT 'b', subscribe(pg_temp.acct('b'), 'k_seat', 4, '2025-01-01');
SELECT FROM change_quantity((SELECT id FROM s WHERE who = 'b'), 2, '2025-04-01');
-- C: quarterly from Jan 1 (90), canceled at the end of its period (Apr 1):
-- counts until its last service day, Mar 31; churn 90 in April
INSERT INTO s SELECT 'c', subscribe(pg_temp.acct('c'), 'k_quarter', 1, '2025-01-01');
SELECT FROM cancel((SELECT id FROM s WHERE who = 'c'), '2025-04-01');
-- D: basic with 10 % off for two periods: 90 in January and February, 100
-- from March (the discount's end is an expansion of 10)
INSERT INTO s SELECT 'd', subscribe(pg_temp.acct('d'), 'k_basic', 1, '2025-01-01', 'k_ten');
-- E: yearly from Jan 1: 100 every month
INSERT INTO s SELECT 'e', subscribe(pg_temp.acct('e'), 'k_year', 1, '2025-01-01');
-- F: pro with a 45-day trial from Jan 1 (trial ends Feb 15): 0 in January
-- (trials do not count), new 300 in February
INSERT INTO s SELECT 'f', subscribe(pg_temp.acct('f'), 'k_pro', 1, '2025-01-01', NULL, 45);
-- G: basic from Jan 1, paused Feb 10 to Mar 10: 100, 0 (paused on Feb 28:
-- churn 100), 100 in March (reactivation), 100 ...
INSERT INTO s SELECT 'g', subscribe(pg_temp.acct('g'), 'k_basic', 1, '2025-01-01');
SELECT FROM pause((SELECT id FROM s WHERE who = 'g'), '2025-02-10', '2025-03-10');
-- H: basic from Jan 1, canceled Feb 1 (churn 100 in February), subscribes
-- again on Apr 1 (reactivation 100 in April)
INSERT INTO s SELECT 'h', subscribe(pg_temp.acct('h'), 'k_basic', 1, '2025-01-01');
SELECT FROM cancel((SELECT id FROM s WHERE who = 'h'), '2025-02-01');
INSERT INTO s SELECT 'h2', subscribe(pg_temp.acct('h'), 'k_basic', 1, '2025-04-01');
-- I: EUR from Jan 1: 20.00 EUR every month, never mixed with SEK
INSERT INTO s SELECT 'i', subscribe(pg_temp.acct('i'), 'k_eur', 1, '2025-01-01');
-- J: basic with 50 off once: a one-off discount never lowers MRR: 100
INSERT INTO s SELECT 'j', subscribe(pg_temp.acct('j'), 'k_basic', 1, '2025-01-01', 'k_once');

-- SEK per month (A B C D E F G H J):
--   Jan 100 200 90  90 100   0 100 100 100 =  880, 8 customers (all new)
--   Feb 100 200 90  90 100 300   0   0 100 =  980: new 300 (F), churn 200 (G, H)
--   Mar 300 200 90 100 100 300 100   0 100 = 1290: expansion 200 (A) + 10 (D), reactivation 100 (G)
--   Apr 300 100  0 100 100 300 100 100 100 = 1200: contraction 100 (B), churn 90 (C), reactivation 100 (H)
--   May as April                           = 1200: no movement
SELECT results_eq(
    $$ SELECT month::text, mrr::text, arr::text, active_customers, active_subscriptions FROM kpi_mrr
        WHERE currency = 'SEK' AND month BETWEEN '2025-01-01' AND '2025-05-01' ORDER BY month $$,
    $$ VALUES ('2025-01-01', '880.00', '10560.00', 8::bigint, 8::bigint),
              ('2025-02-01', '980.00', '11760.00', 7, 7),
              ('2025-03-01', '1290.00', '15480.00', 8, 8),
              ('2025-04-01', '1200.00', '14400.00', 8, 8),
              ('2025-05-01', '1200.00', '14400.00', 8, 8) $$,
    'kpi_mrr: MRR, ARR, customers and subscriptions per month (SEK)');
SELECT results_eq(
    $$ SELECT month::text, mrr::text, active_customers FROM kpi_mrr
        WHERE currency = 'EUR' AND month BETWEEN '2025-01-01' AND '2025-03-01' ORDER BY month $$,
    $$ VALUES ('2025-01-01', '20.00', 1::bigint), ('2025-02-01', '20.00', 1), ('2025-03-01', '20.00', 1) $$,
    'kpi_mrr: EUR on its own rows, never converted');
SELECT is((SELECT min(month)::text FROM kpi_mrr WHERE currency = 'SEK'), '2025-01-01', 'history starts in the first month with MRR');
SELECT is((SELECT max(month) FROM kpi_mrr), date_trunc('month', current_date)::date, 'and runs to the current month');
SELECT results_eq(
    $$ SELECT month::text, start_mrr::text, new_mrr::text, expansion_mrr::text, reactivation_mrr::text,
              contraction_mrr::text, churned_mrr::text, end_mrr::text, new_customers, reactivated_customers, churned_customers
         FROM kpi_mrr_movements WHERE currency = 'SEK' AND month BETWEEN '2025-01-01' AND '2025-05-01' ORDER BY month $$,
    $$ VALUES ('2025-01-01', '0.00', '880.00', '0.00', '0.00', '0.00', '0.00', '880.00', 8::bigint, 0::bigint, 0::bigint),
              ('2025-02-01', '880.00', '300.00', '0.00', '0.00', '0.00', '200.00', '980.00', 1, 0, 2),
              ('2025-03-01', '980.00', '0.00', '210.00', '100.00', '0.00', '0.00', '1290.00', 0, 1, 0),
              ('2025-04-01', '1290.00', '0.00', '0.00', '100.00', '100.00', '90.00', '1200.00', 0, 1, 1),
              ('2025-05-01', '1200.00', '0.00', '0.00', '0.00', '0.00', '0.00', '1200.00', 0, 0, 0) $$,
    'kpi_mrr_movements: start + new + expansion + reactivation - contraction - churn = end (SEK)');
SELECT is((SELECT count(*) FROM kpi_mrr_movements
            WHERE start_mrr + new_mrr + expansion_mrr + reactivation_mrr - contraction_mrr - churned_mrr <> end_mrr),
          0::bigint, 'the identity holds in every month and currency');
SELECT is((SELECT count(*) FROM kpi_mrr_movements m JOIN kpi_mrr r USING (month, currency) WHERE m.end_mrr <> r.mrr),
          0::bigint, 'end MRR of the movements is kpi_mrr');

-- churn, as fractions: February 2 of 8 customers (0.25), revenue churn
-- 200 / 880, GRR (880 - 200) / 880, NRR the same (no expansion);
-- March: nothing lost, NRR (980 + 210) / 980; April: 1 of 8, (100 + 90) / 1290,
-- GRR (1290 - 190) / 1290 = NRR
SELECT results_eq(
    $$ SELECT month::text, customers_start, churned_customers, round(logo_churn, 6), round(revenue_churn, 6),
              round(gross_revenue_retention, 6), round(net_revenue_retention, 6)
         FROM kpi_churn WHERE currency = 'SEK' AND month BETWEEN '2025-01-01' AND '2025-04-01' ORDER BY month $$,
    $$ VALUES ('2025-01-01', 0::bigint, 0::bigint, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric),
              ('2025-02-01', 8, 2, 0.250000, round(200 / 880.0, 6), round(680 / 880.0, 6), round(680 / 880.0, 6)),
              ('2025-03-01', 7, 0, 0.000000, 0.000000, 1.000000, round(1190 / 980.0, 6)),
              ('2025-04-01', 8, 1, 0.125000, round(190 / 1290.0, 6), round(1100 / 1290.0, 6), round(1100 / 1290.0, 6)) $$,
    'kpi_churn: logo churn, revenue churn, GRR and NRR (new and reactivated count in neither)');
-- LTV in April: ARPA 1200 / 8 = 150.00, logo churn 0.125, LTV 150 / 0.125 = 1200.00;
-- March: no churn, LTV NULL; ARPA 1290 / 8 = 161.25
SELECT results_eq(
    $$ SELECT month::text, active_customers, arpa::text, ltv::text FROM kpi_ltv
        WHERE currency = 'SEK' AND month IN ('2025-03-01', '2025-04-01') ORDER BY month $$,
    $$ VALUES ('2025-03-01', 8::bigint, '161.25', NULL), ('2025-04-01', 8, '150.00', '1200.00') $$,
    'kpi_ltv: ARPA, and LTV = ARPA / logo churn');
-- growth in April: 0 new, 1 reactivated, 1 churned, net 0; net new MRR
-- 100 - 100 - 90 = -90; quick ratio 100 / 190; February 300 / 200 = 1.5
SELECT results_eq(
    $$ SELECT month::text, new_customers, reactivated_customers, churned_customers, net_new_customers,
              net_new_mrr::text, round(quick_ratio, 6)
         FROM kpi_growth WHERE currency = 'SEK' AND month IN ('2025-02-01', '2025-04-01') ORDER BY month $$,
    $$ VALUES ('2025-02-01', 1::bigint, 0::bigint, 2::bigint, -1::bigint, '100.00', 1.500000),
              ('2025-04-01', 0, 1, 1, 0, '-90.00', round(100 / 190.0, 6)) $$,
    'kpi_growth: customers, net new MRR and the quick ratio');

-- A backdated change shows in the month it belongs to: E moves from the
-- yearly plan (100) to pro (300) as from 2025-03-01, recorded today: March
-- gets 200 more expansion (410), and every month from March is 200 higher.
SELECT FROM change_plan((SELECT id FROM s WHERE who = 'e'), 'k_pro', '2025-03-01');
SELECT results_eq(
    $$ SELECT month::text, expansion_mrr::text, contraction_mrr::text, end_mrr::text FROM kpi_mrr_movements
        WHERE currency = 'SEK' AND month BETWEEN '2025-02-01' AND '2025-04-01' ORDER BY month $$,
    $$ VALUES ('2025-02-01', '0.00', '0.00', '980.00'), ('2025-03-01', '410.00', '0.00', '1490.00'),
              ('2025-04-01', '0.00', '100.00', '1400.00') $$,
    'a backdated change lands in the month it belongs to');

-- a subscription that is past due still counts; a payment stop does not
-- count while it holds: J is held by a stop from 2025-05-10 to 2025-06-15
SELECT is((SELECT mrr::text FROM kpi_mrr WHERE currency = 'SEK' AND month = '2025-05-01'), '1400.00', 'May before the stop');
CREATE TEMP TABLE jinv (id bigint);
WITH x AS (INSERT INTO invoices (account_id, subscription_id, currency, net, tax, total)
VALUES (pg_temp.acct('j'), (SELECT id FROM s WHERE who = 'j'), 'SEK', '0.00 SEK', '0.00 SEK', '0.00 SEK') RETURNING id)
INSERT INTO jinv SELECT id FROM x;
INSERT INTO events (account_id, type, payload) VALUES (pg_temp.acct('j'), 'dunning.reminder', '{}');
INSERT INTO dunning_actions (account_id, invoice_id, step_no, action, executed_on, open_amount, subscription_id, event_id, lifted_at)
VALUES (pg_temp.acct('j'), (SELECT id FROM jinv), 3, 'payment_stop', '2025-05-10', '100.00 SEK',
        (SELECT id FROM s WHERE who = 'j'), (SELECT max(id) FROM events), '2025-06-15 10:00+00');
SELECT results_eq(
    $$ SELECT month::text, mrr::text, churned_customers, reactivated_customers FROM kpi_mrr JOIN kpi_growth USING (month, currency)
        WHERE currency = 'SEK' AND month IN ('2025-05-01', '2025-06-01', '2025-07-01') ORDER BY month $$,
    $$ VALUES ('2025-05-01', '1300.00', 1::bigint, 0::bigint), ('2025-06-01', '1400.00', 0, 1), ('2025-07-01', '1400.00', 0, 0) $$,
    'a payment stop takes the subscription out of MRR until it is lifted');

-- current month: what holds today
SELECT is((SELECT mrr::text FROM kpi_mrr WHERE currency = 'SEK' AND month = date_trunc('month', current_date)),
          '1400.00', 'the current month is MRR as of today');

-- past_due still counts; suspended (payment stop) does not, today: J is
-- suspended without a dunning record, so only today's status knows it; the
-- months before keep their MRR
SELECT FROM set_subscription_status((SELECT id FROM s WHERE who = 'd'), 'past_due', 'test');
SELECT is((SELECT mrr::text FROM kpi_mrr WHERE currency = 'SEK' AND month = date_trunc('month', current_date)),
          '1400.00', 'a past_due subscription still counts');
SELECT FROM set_subscription_status((SELECT id FROM s WHERE who = 'j'), 'suspended', 'test');
SELECT results_eq(
    $$ SELECT mrr::text FROM kpi_mrr WHERE currency = 'SEK' AND month IN ('2025-07-01', date_trunc('month', current_date)) ORDER BY month $$,
    $$ VALUES ('1400.00'), ('1300.00') $$,
    'a suspended subscription does not count today, and the months before keep it');

-- ---------------------------------------------------------------- privileges
SELECT ok(has_table_privilege('subbilling_reader', 'subbilling.' || v, 'SELECT'), 'the reader reads ' || v)
  FROM unnest('{kpi_mrr,kpi_mrr_movements,kpi_churn,kpi_ltv,kpi_growth,ar_aging,revenue_recognition,upsell_candidates}'::text[]) AS v;
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
            WHERE c.relnamespace IN ('subbilling'::regnamespace, 'subbilling_internal'::regnamespace)
              AND c.relkind IN ('r', 'p') AND has_table_privilege('subbilling_reader', c.oid, 'SELECT')),
          NULL, 'the reader reads no table of the extension');
SET LOCAL ROLE subbilling_reader;
SELECT is((SELECT count(*) FROM kpi_mrr WHERE month >= '2025-01-01'), (SELECT count(*) FROM kpi_mrr_movements WHERE month >= '2025-01-01'),
          'as the reader: the views read');
SELECT throws_ok('SELECT count(*) FROM subbilling.subscriptions', '42501', NULL, 'as the reader: subscriptions are refused');
SELECT throws_ok('SELECT count(*) FROM subbilling.accounts', '42501', NULL, 'as the reader: accounts are refused');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
