-- Property test of the VAT computation: 10,000 random invoices (fixed
-- seed) of customers in Sweden (consumers, exempt), Germany (businesses,
-- reverse charge), Finland (consumers, OSS) and Norway (outside the
-- scope), each with one to four lines of random prices in four tax
-- categories.  For every invoice and rate, the lines' VAT sums to the VAT of
-- the sum of its lines; for the month, every box of the VAT return equals
-- the journal's accounts and the invoices' VAT; the EU sales list equals
-- the reverse-charge sales.
BEGIN;
-- The rows of this test live in its own transaction.  Autovacuum, cleaning up after the
-- earlier (rolled back) test files, would analyse the tables as empty meanwhile and overwrite
-- their row counts in place, and every later plan would be made for empty tables (a run that
-- took minutes instead of seconds): keep it off them while the test runs.
LOCK TABLE subbilling.accounts, subbilling.subscriptions, subbilling.subscription_items, subbilling.invoices,
           subbilling.invoice_lines, subbilling.journal_entries, subbilling.journal_lines, subbilling.events,
           subbilling.payments, subbilling.payment_requests
    IN SHARE UPDATE EXCLUSIVE MODE;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SET LOCAL subbilling.notify = off;

SELECT plan(8);
SELECT setseed(0.4242);

INSERT INTO seller_settings (country, currency, vat_number, oss_registered, legal_name)
VALUES ('SE', 'SEK', 'SE556677889901', true, 'Säljaren AB');
INSERT INTO exchange_rates (currency, on_date, rate) VALUES ('EUR', '2026-03-01', 11.4321);

INSERT INTO products (code, name, tax_category)
SELECT 'pp_' || c, 'Property ' || c, c FROM unnest('{standard,food,books_news_digital,digital_service}'::text[]) c;
-- 40 plans: 10 per category, prices 0.01 to 99.99 in SEK and EUR; the first of each ten is a base plan
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, kind)
SELECT 'pp_' || cur || '_' || g, p.id, 'Plan ' || g, '1 month', 'flat',
       price_minor((1 + floor(random() * 9999))::bigint, cur), CASE WHEN g % 10 = 0 THEN 'base' ELSE 'addon' END
  FROM generate_series(0, 39) g
  JOIN products p ON p.code = 'pp_' || (ARRAY['standard', 'food', 'books_news_digital', 'digital_service'])[g / 10 + 1]
 CROSS JOIN unnest('{SEK,EUR}'::text[]) cur;

-- 10,000 customers: 40 % Swedish consumers, 10 % Swedish exempt, 20 % German businesses,
-- 20 % Finnish consumers, 10 % Norwegian businesses
INSERT INTO accounts (external_id, name, country, currency, vat_number, tax_exempt)
SELECT 'pp' || i, 'Customer ' || i, k.country, k.currency, k.vat, k.exempt
  FROM generate_series(1, 10000) i
 CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 < 4 THEN 'SE' WHEN i % 10 = 4 THEN 'SE' WHEN i % 10 < 7 THEN 'DE'
                                 WHEN i % 10 < 9 THEN 'FI' ELSE 'NO' END AS country,
                            CASE WHEN i % 10 BETWEEN 5 AND 8 THEN 'EUR' ELSE 'SEK' END AS currency,
                            CASE WHEN i % 10 IN (5, 6) THEN 'DE136695976' WHEN i % 10 = 9 THEN 'NO988077917MVA' END AS vat,
                            i % 10 = 4 AS exempt) k;

-- a subscription each, on a base plan of a random category, with 0 to 3 add-ons
CREATE TEMP TABLE pp_sub AS
SELECT a.id AS account_id,
       subscribe(a.id, 'pp_' || a.currency || '_' || (10 * floor(random() * 4))::int, 1, '2026-03-01') AS sid,
       a.currency
  FROM accounts a WHERE a.external_id LIKE 'pp%';
-- distinct add-ons: the k-th is number 1 + (r + 3k) mod 9 of a random category
SELECT count(add_addon(s.sid, 'pp_' || s.currency || '_' || (10 * floor(random() * 4) + 1 + (s.r + 3 * n) % 9)::int,
                       1 + floor(random() * 3)::int, '2026-03-01'))
  FROM (SELECT pp_sub.*, floor(random() * 9)::int AS r, floor(random() * 4)::int AS k FROM pp_sub) s
 CROSS JOIN LATERAL generate_series(1, s.k) n;

-- statistics of the rows just made (in this transaction autovacuum cannot see them), so
-- that billing plans for 10,000 subscriptions rather than for one
ANALYZE accounts, subscriptions, subscription_items, plans, products;
SELECT run_billing('2026-03-01 12:00+00');
CREATE TEMP TABLE pp_inv AS
SELECT i.* FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id LIKE 'pp%' AND i.issue_date = '2026-03-01';

SELECT is((SELECT count(*) FROM pp_inv), 10000::bigint, '10,000 invoices');
SELECT is((SELECT count(*) FROM billing_errors WHERE account_id IN (SELECT account_id FROM pp_inv)), 0::bigint, 'no billing errors');

-- per invoice, treatment and rate: the lines' VAT = VAT of the sum of the lines
SELECT is((SELECT count(*) FROM (
              SELECT l.invoice_id FROM invoice_lines l JOIN pp_inv i ON i.account_id = l.account_id AND i.id = l.invoice_id
               GROUP BY l.invoice_id, l.tax_treatment, l.tax_rate
              HAVING sum(l.tax) <> tax(sum(l.net), l.tax_rate)) q), 0::bigint,
          'for every invoice and rate, the lines'' VAT sums to the VAT of the rate''s net');
-- each line within one minor unit of its exact VAT
SELECT is((SELECT count(*) FROM invoice_lines l JOIN pp_inv i ON i.account_id = l.account_id AND i.id = l.invoice_id
            WHERE abs(minor_units(l.tax) - minor_units(l.net) * l.tax_rate / 100) >= 1), 0::bigint,
          'every line''s VAT is within one minor unit of its exact VAT');
SELECT cmp_ok((SELECT count(DISTINCT l.tax_treatment || l.tax_rate) FROM invoice_lines l JOIN pp_inv i ON i.account_id = l.account_id AND i.id = l.invoice_id),
              '>=', 7::bigint, 'the invoices cover domestic 25/12/6, exempt, reverse charge, OSS 25.5/13.5, outside the scope');

-- the month's VAT return: every box equals the journal's accounts, foreign-currency documents
-- converted at their invoice's rate (SEK = 1), and the invoices' VAT
SELECT results_eq($$ SELECT box, amount FROM vat_report('2026-03-01', '2026-03-31') WHERE box IN ('05', '10', '11', '12', '39', '40', '42') ORDER BY box $$,
    $$ SELECT b.box, coalesce((SELECT sum(-subbilling_internal.convert_price(l.amount, coalesce(i.exchange_rate, 1), 'SEK'))
                                 FROM journal_lines l
                                 JOIN journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
                                 JOIN invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
                                 JOIN vat_boxes v ON v.ledger_code = l.ledger_code
                                WHERE v.box = b.box AND e.booked_on BETWEEN '2026-03-01' AND '2026-03-31'), '0.00 SEK')
         FROM unnest('{05,10,11,12,39,40,42}'::text[]) b(box) ORDER BY b.box $$,
    'every box of the VAT return equals the journal''s accounts');
SELECT results_eq($$ SELECT box, amount FROM vat_report('2026-03-01', '2026-03-31') WHERE box IN ('10', '11', '12') ORDER BY box $$,
    $$ SELECT b.box, coalesce((SELECT sum(q.vat) FROM (
                                 SELECT subbilling_internal.convert_price(sum(l.tax), coalesce(i.exchange_rate, 1), 'SEK') AS vat
                                   FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
                                  WHERE l.tax_treatment = 'domestic' AND l.tax_rate = b.rate
                                    AND i.issue_date BETWEEN '2026-03-01' AND '2026-03-31' AND i.status <> 'draft'
                                  GROUP BY i.account_id, i.id, i.currency) q), '0.00 SEK')
         FROM (VALUES ('10', 25::numeric), ('11', 12), ('12', 6)) b(box, rate) ORDER BY b.box $$,
    'boxes 10, 11 and 12 equal the domestic VAT of the invoices at 25, 12 and 6 %');
SELECT is((SELECT sum(amount) FROM eu_sales_list('2026-03-01', '2026-03-31')),
          (SELECT amount FROM vat_report('2026-03-01', '2026-03-31') WHERE box = '39'),
          'the EU sales list sums to box 39');

SELECT * FROM finish();
ROLLBACK;
