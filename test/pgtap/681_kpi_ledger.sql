-- revenue_recognition and ar_aging: figures worked by hand.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(9);

-- ------------------------------------------------------------ revenue recognition
-- A yearly plan of 1200.00 SEK from 2025-01-15, billed in advance on that
-- day: one line over [2025-01-15, 2026-01-15), 365 days.  Each month gets
-- 1200 * days / 365 rounded half away from zero:
--   Jan 17 d  55.890 -> 55.89     Feb 28 d  92.054 -> 92.05
--   31-day months (Mar May Jul Aug Oct Dec) 101.917 -> 101.92 (x 6 = 611.52)
--   30-day months (Apr Jun Sep Nov)          98.630 ->  98.63 (x 4 = 394.52)
-- and January 2026 (14 d) takes the remainder:
--   1200 - 55.89 - 92.05 - 611.52 - 394.52 = 46.02 (its exact share 46.027 would round to 46.03)
INSERT INTO products (code, name) VALUES ('r_saas', 'RR SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
VALUES ('r_year', (SELECT id FROM products WHERE code = 'r_saas'), 'Yearly', '1 year', 'flat', '1200.00 SEK');
SELECT FROM pg_temp.account('r_a');
SELECT FROM subscribe(pg_temp.acct('r_a'), 'r_year', 1, '2025-01-15');
SELECT FROM run_billing('2025-01-15');
SELECT results_eq(
    $$ SELECT month::text, opening_deferred::text, billed::text, recognised::text, closing_deferred::text
         FROM revenue_recognition WHERE currency = 'SEK' ORDER BY month LIMIT 4 $$,
    $$ VALUES ('2025-01-01', '0.00', '1200.00', '55.89', '1144.11'),
              ('2025-02-01', '1144.11', '0.00', '92.05', '1052.06'),
              ('2025-03-01', '1052.06', '0.00', '101.92', '950.14'),
              ('2025-04-01', '950.14', '0.00', '98.63', '851.51') $$,
    'day by day over the service period, rounded once per line and month');
SELECT results_eq(
    $$ SELECT month::text, recognised::text, closing_deferred::text FROM revenue_recognition
        WHERE currency = 'SEK' AND month IN ('2025-12-01', '2026-01-01') ORDER BY month $$,
    $$ VALUES ('2025-12-01', '101.92', '46.02'), ('2026-01-01', '46.02', '0.00') $$,
    'the last month takes the remainder: the months sum to the line');
SELECT is((SELECT count(*) FROM revenue_recognition WHERE opening_deferred + billed - recognised <> closing_deferred),
          0::bigint, 'opening + billed - recognised = closing deferred in every month');
-- the whole invoice credited today: the credit note's line carries the
-- credited period and -1200.00; its days all lie before its issue month,
-- so the whole reversal is recognised in the issue month
SELECT FROM credit_invoice((SELECT id FROM invoices WHERE account_id = pg_temp.acct('r_a')), NULL, 'test');
SELECT results_eq(
    $$ SELECT opening_deferred::text, billed::text, recognised::text, closing_deferred::text FROM revenue_recognition
        WHERE currency = 'SEK' AND month = date_trunc('month', current_date) $$,
    $$ VALUES ('0.00', '-1200.00', '-1200.00', '0.00') $$,
    'a credit note reverses what it credits');
SELECT is((SELECT sum(recognised)::text FROM revenue_recognition WHERE currency = 'SEK'), '0.00',
          'credited in full, nothing stays recognised');

-- ------------------------------------------------------------ ar_aging
-- Account ag: four invoices of 100.00 + 25 % VAT = 125.00, 30 days' terms,
-- issued 10, 45, 100 and 200 days ago: due in 20 days (current), 15 days
-- overdue (1-30), 70 (61-90) and 170 (over 90); 50.00 paid on the
-- 45-day one leaves 75.00 in 1-30.
SELECT FROM pg_temp.account('ag');
CREATE TEMP TABLE ag AS
SELECT d, pg_temp.invoice(pg_temp.acct('ag'), '{100.00 SEK}', '{p_saas}', current_date - d) AS id
  FROM unnest('{10,45,100,200}'::int[]) AS d;
SELECT FROM register_payment('50.00 SEK', pg_temp.ref((SELECT id FROM ag WHERE d = 45)), current_date, 'bankgiro');
SELECT results_eq(
    $$ SELECT currency, current::text, overdue_1_30::text, overdue_31_60::text, overdue_61_90::text,
              overdue_90_plus::text, total::text FROM ar_aging WHERE account_id = pg_temp.acct('ag') $$,
    $$ VALUES ('SEK', '125.00', '75.00', '0.00', '125.00', '125.00', '450.00') $$,
    'ar_aging: open amounts by days past due');
-- an account in EUR has its own row; paid invoices leave the view
SELECT FROM pg_temp.account('ag_eur', 'DE', 'EUR', true);
SELECT FROM pg_temp.invoice(pg_temp.acct('ag_eur'), '{40.00 EUR}', '{p_saas}', current_date - 35);
SELECT results_eq(
    $$ SELECT currency, overdue_1_30::text, total::text FROM ar_aging WHERE account_id = pg_temp.acct('ag_eur') $$,
    $$ VALUES ('EUR', '40.00', '40.00') $$,
    'ar_aging: per account and currency');
SELECT FROM register_payment('125.00 SEK', pg_temp.ref((SELECT id FROM ag WHERE d = 200)), current_date, 'bankgiro');
SELECT is((SELECT overdue_90_plus::text FROM ar_aging WHERE account_id = pg_temp.acct('ag')), '0.00', 'a paid invoice leaves');
SELECT pg_temp.acct('ag') AS ag_id \gset
SET LOCAL ROLE subbilling_reader;
SELECT is((SELECT total::text FROM ar_aging WHERE account_id = :ag_id), '325.00', 'the reader reads ar_aging');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
