-- KPI views benchmark data (bench/kpis.sh): :n subscriptions with 24 months of history.
-- Not a test.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = subbilling, public;

-- ---------------------------------------------------------------- data
-- Loaded with triggers and foreign keys off (session_replication_role = replica): the rows
-- are what the lifecycle functions and billing would have written, made in bulk.
INSERT INTO products (code, name) VALUES ('bk', 'Bench');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, included_units)
SELECT x.code, (SELECT id FROM products WHERE code = 'bk'), x.code, x.bp::billing_period, x.model, x.price::price, x.inc
  FROM (VALUES ('bk_m', '1 month', 'flat', '99.00 SEK', 1000), ('bk_m2', '1 month', 'flat', '249.00 SEK', 5000),
               ('bk_q', '3 months', 'flat', '279.00 SEK', 0), ('bk_y', '1 year', 'flat', '990.00 SEK', 0),
               ('bk_seat', '1 month', 'per_unit', '49.00 SEK', 0), ('bk_e', '1 month', 'flat', '9.90 EUR', 0),
               ('bk_eseat', '1 month', 'per_unit', '4.90 EUR', 0)) AS x(code, bp, model, price, inc);
INSERT INTO campaigns (code, name, percent_off, duration, duration_periods)
VALUES ('bk_forever', 'forever 10 %', 10, 'forever', NULL), ('bk_rep', 'three months 25 %', 25, 'repeating', 3);

SET session_replication_role = replica;
CREATE TEMP TABLE g AS
SELECT n, CASE WHEN n % 5 = 0 THEN 'EUR' ELSE 'SEK' END AS cur,
       (date_trunc('month', current_date) - interval '24 months')::date + (hashint4(n) & 1023) % 28 AS start,
       abs(hashint4(n * 7)) % 100 AS r1, abs(hashint4(n * 13)) % 100 AS r2
  FROM generate_series(1, :n) AS n;
INSERT INTO accounts (id, external_id, name, country, currency)
SELECT n, 'b' || n, 'Bench ' || n, 'SE', cur FROM g;
INSERT INTO subscriptions (account_id, id, status, currency, start_date, billing_anchor, cancel_at, canceled_at)
SELECT n, n, CASE WHEN r1 < 10 THEN 'canceled' ELSE 'active' END, cur, start, start,
       CASE WHEN r1 < 10 THEN start + 60 + r2 * 6 END, CASE WHEN r1 < 10 THEN now() END
  FROM g;
-- items: the first plan, and for 40 % a change (plan or quantity) at a random day; canceled
-- subscriptions end at cancel_at
INSERT INTO subscription_items (account_id, id, subscription_id, plan_id, kind, quantity, validity, reason)
SELECT n, 2 * n, n, p1.id, 'base', 1 + r2 % 4,
       daterange(start, CASE WHEN r1 BETWEEN 10 AND 49 THEN start + 30 + r2 * 6
                             WHEN r1 < 10 THEN start + 60 + r2 * 6 END), 'subscribe'
  FROM g JOIN plans p1 ON p1.code = CASE WHEN cur = 'EUR' THEN (ARRAY['bk_e', 'bk_eseat'])[1 + r2 % 2]
                                         ELSE (ARRAY['bk_m', 'bk_m2', 'bk_q', 'bk_y', 'bk_seat'])[1 + r2 % 5] END;
INSERT INTO subscription_items (account_id, id, subscription_id, plan_id, kind, quantity, validity, reason, replaces_id)
SELECT n, 2 * n + 1, n, p1.id, 'base', 1 + r1 % 5, daterange(start + 30 + r2 * 6, NULL), 'change_plan', 2 * n
  FROM g JOIN plans p1 ON p1.code = CASE WHEN cur = 'EUR' THEN (ARRAY['bk_e', 'bk_eseat'])[1 + r1 % 2]
                                         ELSE (ARRAY['bk_m', 'bk_m2', 'bk_q', 'bk_y', 'bk_seat'])[1 + r1 % 5] END
 WHERE r1 BETWEEN 10 AND 49;
INSERT INTO subscription_pauses (account_id, subscription_id, during)
SELECT n, n, daterange(start + 100 + r2, start + 130 + r2) FROM g WHERE r2 < 5;
INSERT INTO subscription_discounts (account_id, subscription_id, campaign_id, percent_off, periods, starts_on)
SELECT n, n, c.id, c.percent_off, c.duration_periods, start FROM g
  JOIN campaigns c ON c.code = CASE WHEN r2 % 2 = 0 THEN 'bk_forever' ELSE 'bk_rep' END
 WHERE r2 BETWEEN 50 AND 59 AND cur = 'SEK';
-- invoices: one a month per subscription while it runs, one line each over the month
INSERT INTO invoice_series (code, prefix) SELECT 'BK', 'BK-' WHERE NOT EXISTS (SELECT FROM invoice_series WHERE code = 'BK');
INSERT INTO invoices (account_id, id, subscription_id, currency, status, series_id, number_seq, number, net, tax, total,
                      issue_date, due_date, reference, finalized_at, paid_at)
SELECT g.n, g.n * 32 + k, g.n, g.cur, CASE WHEN k < 22 THEN 'paid' ELSE 'open' END,
       (SELECT id FROM invoice_series WHERE code = 'BK'), g.n * 32 + k, 'BK-' || (g.n * 32 + k),
       price(99, g.cur), price(24.75, g.cur), price(123.75, g.cur),
       (g.start + k * interval '1 month')::date, (g.start + k * interval '1 month')::date + 30, 'R' || (g.n * 32 + k), now(),
       CASE WHEN k < 22 THEN now() END
  FROM g CROSS JOIN generate_series(0, 23) AS k
 WHERE (g.start + k * interval '1 month')::date <= current_date
   AND (g.r1 >= 10 OR (g.start + k * interval '1 month')::date < g.start + 60 + g.r2 * 6);
INSERT INTO invoice_lines (account_id, invoice_id, subscription_id, kind, description, period, quantity, net, tax_rate, tax)
SELECT i.account_id, i.id, i.subscription_id, 'recurring', 'Bench', daterange(i.issue_date, (i.issue_date + interval '1 month')::date),
       1, i.net, 25, i.tax
  FROM invoices i WHERE i.account_id <= :n;
-- the open ones on the receivables ledger
INSERT INTO journal_entries (account_id, id, kind, booked_on, invoice_id)
SELECT i.account_id, i.id, 'invoice', i.issue_date, i.id FROM invoices i WHERE i.status = 'open';
INSERT INTO journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
SELECT i.account_id, i.id, x.code, x.amount, x.sub, x.inv
  FROM invoices i
 CROSS JOIN LATERAL (VALUES ('1510', i.total, 'receivables', i.id), ('3001', -i.net, NULL, NULL), ('2611', -i.tax, NULL, NULL))
       AS x(code, amount, sub, inv)
 WHERE i.status = 'open';
-- usage for the upsell view: 10 % of the monthly SEK subscriptions, 3 records a month
INSERT INTO usage (account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, idempotency_key)
SELECT g.n, g.n, 2 * g.n, i.plan_id, 300 + (g.r1 * 37 + m * 11) % 900, d, d::date, 'u' || m || '-' || j
  FROM g JOIN subscription_items i ON i.account_id = g.n AND i.id = 2 * g.n
 CROSS JOIN generate_series(1, 6) AS m CROSS JOIN generate_series(1, 3) AS j
 CROSS JOIN LATERAL (SELECT (date_trunc('month', current_date) - m * interval '1 month' + j * interval '5 days') AS d) dd
 WHERE g.r2 BETWEEN 60 AND 69 AND g.cur = 'SEK';
SET session_replication_role = origin;
SELECT setval(pg_get_serial_sequence('subbilling.accounts', 'id'), :n + 1);
VACUUM ANALYZE;

SELECT (SELECT count(*) FROM subscriptions) AS subscriptions, (SELECT count(*) FROM subscription_items) AS items,
       (SELECT count(*) FROM invoices) AS invoices, (SELECT count(*) FROM invoice_lines) AS lines,
       (SELECT count(*) FROM journal_lines) AS journal_lines, (SELECT count(*) FROM usage) AS usage;

