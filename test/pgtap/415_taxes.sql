-- Taxes: VAT numbers, the treatment and rate of each line (domestic, reverse
-- charge, OSS, outside the scope, exempt) at its tax point, VAT once per
-- invoice and rate, corrections at the original line's rate, foreign
-- currencies, the VAT return and the EU sales list.  Amounts by hand in the
-- comments.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SET LOCAL subbilling.notify = off;

SELECT plan(41);

CREATE FUNCTION pg_temp.acct(ext text) RETURNS bigint
    LANGUAGE sql STABLE RETURN (SELECT id FROM subbilling.accounts WHERE external_id = ext);
CREATE FUNCTION pg_temp.inv(ext text, issued date) RETURNS bigint
    LANGUAGE sql STABLE RETURN (SELECT max(id) FROM subbilling.invoices
                                 WHERE account_id = pg_temp.acct(ext) AND issue_date = issued);

-- ---------------------------------------------------------------- VAT numbers
SELECT is(vat_number('556677-8899', 'SE'), 'SE556677889901', 'SE: organisation number without prefix -> canonical with 01');
SELECT is(vat_number('no 988 077 917'), 'NO988077917MVA', 'NO: spaces and lower case -> canonical with MVA');
SELECT is(vat_number('DE 136 695 976'), 'DE136695976', 'DE: canonical');
SELECT throws_ok($$ SELECT vat_number('SE556677889801') $$, '22023', 'invalid VAT number "SE556677889801"', 'SE: bad Luhn digit refused');
SELECT throws_ok($$ SELECT vat_number('NO988077918MVA') $$, '22023', NULL, 'NO: bad mod 11 digit refused');
SELECT throws_ok($$ SELECT vat_number('DK13585629') $$, '22023', NULL, 'DK: bad mod 11 sum refused');
SELECT throws_ok($$ SELECT vat_number('FI01120388') $$, '22023', NULL, 'FI: bad mod 11 digit refused');
SELECT throws_ok($$ SELECT vat_number('DE136695977') $$, '22023', NULL, 'DE: bad MOD 11,10 digit refused');
SELECT throws_ok($$ SELECT vat_number('AT13585627') $$, '22023', NULL, 'AT: wrong format (no U) refused');
SELECT throws_ok($$ INSERT INTO accounts (external_id, name, country, currency, vat_number)
                    VALUES ('badvat', 'Bad', 'DE', 'EUR', '136695977') $$, '22023', 'invalid VAT number "136695977"',
                 'an account with a bad VAT number is refused');
SELECT is((SELECT count(*) FROM accounts WHERE external_id = 'badvat'), 0::bigint, '... and nothing is stored');

-- ---------------------------------------------------------------- no seller yet: product rate; a correction keeps the original line's rate
INSERT INTO products (code, name, tax_rate) VALUES ('t_legacy', 'Legacy service', 25);
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
VALUES ('t_legacy', (SELECT id FROM products WHERE code = 't_legacy'), 'Legacy', '1 month', 'per_unit', '100.00 SEK');
INSERT INTO accounts (external_id, name, country, currency) VALUES ('t_l', 'Legacy AB', 'SE', 'SEK');
SELECT subscribe(pg_temp.acct('t_l'), 't_legacy', 2, '2026-03-01');
SELECT run_billing('2026-03-01 12:00+00');
-- the product's rate changes; a backdated quantity change credits March
UPDATE products SET tax_rate = 12 WHERE code = 't_legacy';
SELECT change_quantity((SELECT max(id) FROM subscriptions WHERE account_id = pg_temp.acct('t_l')), 1, '2026-03-01');
SELECT run_billing('2026-03-02 12:00+00');
-- March: 2 x 100.00 at 25 % = 200.00 + 50.00; the credit of one: -100.00 at 25 % (not 12 %) = -25.00
SELECT results_eq($$ SELECT net::text, tax_rate, tax::text, tax_treatment FROM invoice_lines
                      WHERE account_id = pg_temp.acct('t_l') ORDER BY id $$,
    $$ VALUES ('200.00 SEK', 25::numeric, '50.00 SEK', 'domestic'), ('-100.00 SEK', 25, '-25.00 SEK', 'domestic') $$,
    'a credit of an invoiced period uses the rate of the original line, not the product''s current one');

-- ---------------------------------------------------------------- the seller
INSERT INTO seller_settings (country, currency, vat_number, oss_registered, legal_name, address, f_skatt)
VALUES ('SE', 'SEK', '5566778899', true, 'Säljaren AB', 'Storgatan 1, 111 22 Stockholm', true);
SELECT is((SELECT vat_number FROM seller_settings), 'SE556677889901', 'the seller''s VAT number is stored canonical');
INSERT INTO exchange_rates (currency, on_date, rate) VALUES ('EUR', '2026-03-01', 11.5), ('EUR', '2026-04-01', 11);

INSERT INTO products (code, name, tax_category) VALUES
    ('t_food', 'Food box', 'food'), ('t_saas', 'SaaS', 'digital_service'), ('t_cons', 'Consulting', 'standard');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price, kind) VALUES
    ('t_food', (SELECT id FROM products WHERE code = 't_food'), 'Food', '1 month', 'flat', '100.00 SEK', 'base'),
    ('t_saas_eur', (SELECT id FROM products WHERE code = 't_saas'), 'SaaS EUR', '1 month', 'flat', '100.00 EUR', 'base'),
    ('t_cons', (SELECT id FROM products WHERE code = 't_cons'), 'Consulting', '1 month', 'flat', '100.00 SEK', 'base'),
    ('t_r1', (SELECT id FROM products WHERE code = 't_cons'), 'R1', '1 month', 'flat', '0.35 SEK', 'base'),
    ('t_r2', (SELECT id FROM products WHERE code = 't_cons'), 'R2', '1 month', 'flat', '0.35 SEK', 'addon'),
    ('t_r3', (SELECT id FROM products WHERE code = 't_cons'), 'R3', '1 month', 'flat', '0.35 SEK', 'addon');

INSERT INTO accounts (external_id, name, country, currency, vat_number, tax_exempt) VALUES
    ('t_s', 'Svensson', 'SE', 'SEK', NULL, false),
    ('t_s2', 'Svensson mid-month', 'SE', 'SEK', NULL, false),
    ('t_r', 'Rounding', 'SE', 'SEK', NULL, false),
    ('t_d', 'Deutsche GmbH', 'DE', 'EUR', 'DE136695976', false),
    ('t_f', 'Virtanen', 'FI', 'EUR', NULL, false),
    ('t_n', 'Nordmann AS', 'NO', 'SEK', '988077917', false),
    ('t_x', 'Exempt foundation', 'SE', 'SEK', NULL, true);
SELECT is((SELECT vat_number || ' ' || is_business FROM accounts WHERE external_id = 't_n'), 'NO988077917MVA true',
          'a customer''s VAT number is stored canonical and makes it a business');

SELECT subscribe(pg_temp.acct('t_s'), 't_food', 1, '2026-03-01');
SELECT subscribe(pg_temp.acct('t_s2'), 't_food', 1, '2026-03-15');
SELECT subscribe(pg_temp.acct('t_r'), 't_r1', 1, '2026-03-01');
SELECT add_addon((SELECT max(id) FROM subscriptions WHERE account_id = pg_temp.acct('t_r')), 't_r2', 1, '2026-03-01');
SELECT add_addon((SELECT max(id) FROM subscriptions WHERE account_id = pg_temp.acct('t_r')), 't_r3', 1, '2026-03-01');
SELECT subscribe(pg_temp.acct('t_d'), 't_saas_eur', 1, '2026-03-01');
SELECT subscribe(pg_temp.acct('t_f'), 't_saas_eur', 1, '2026-03-01');
SELECT subscribe(pg_temp.acct('t_n'), 't_cons', 1, '2026-03-01');
SELECT subscribe(pg_temp.acct('t_x'), 't_cons', 1, '2026-03-01');
SELECT run_billing('2026-03-01 12:00+00');
SELECT run_billing('2026-03-15 12:00+00');
SELECT is((SELECT count(*) FROM billing_errors WHERE account_id IN (SELECT id FROM accounts WHERE external_id LIKE 't\_%')),
          0::bigint, 'March bills without errors');

-- food: 100.00 at 12 % before 2026-04-01 ...
SELECT results_eq($$ SELECT tax_rate, tax::text, tax_treatment FROM invoice_lines WHERE invoice_id = pg_temp.inv('t_s', '2026-03-01') $$,
    $$ VALUES (12::numeric, '12.00 SEK', 'domestic') $$, 'SE food in March 2026: 12 %, 12.00');
-- a period from 2026-03-15 to 2026-04-14 crosses the change: the rate at its start, 12 %
SELECT results_eq($$ SELECT tax_rate, tax::text FROM invoice_lines WHERE invoice_id = pg_temp.inv('t_s2', '2026-03-15') $$,
    $$ VALUES (12::numeric, '12.00 SEK') $$, 'a period crossing the rate change takes the rate at its start');
-- three lines of 0.35 at 25 %: per line 0.0875 -> 0.09 each (0.27); per rate 1.05 * 25 % = 0.2625 -> 0.26,
-- allocated 0.09 + 0.09 + 0.08 (remainders equal: the earlier lines get the extra öre)
SELECT is((SELECT tax::text FROM invoices WHERE id = pg_temp.inv('t_r', '2026-03-01')), '0.26 SEK',
          'VAT once per rate: 0.26, not 3 x 0.09');
SELECT results_eq($$ SELECT tax::text FROM invoice_lines WHERE invoice_id = pg_temp.inv('t_r', '2026-03-01') ORDER BY id $$,
    $$ VALUES ('0.09 SEK'), ('0.09 SEK'), ('0.08 SEK') $$, 'the lines carry 0.09 + 0.09 + 0.08 = 0.26');
-- German business: reverse charge, 0 %, the legal text; VAT in SEK 0.00 at 11.5
SELECT results_eq($$ SELECT l.tax_rate, l.tax::text, l.tax_treatment FROM invoice_lines l WHERE l.invoice_id = pg_temp.inv('t_d', '2026-03-01') $$,
    $$ VALUES (0::numeric, '0.00 EUR', 'reverse_charge') $$, 'DE business: reverse charge at 0 %');
SELECT ok((SELECT tax_notes[1] LIKE 'Omvänd betalningsskyldighet / Reverse charge%' FROM invoices WHERE id = pg_temp.inv('t_d', '2026-03-01')),
          'DE business: the invoice carries the reverse-charge text');
SELECT is((SELECT buyer_vat_number FROM invoices WHERE id = pg_temp.inv('t_d', '2026-03-01')), 'DE136695976',
          'DE business: the buyer''s VAT number is on the invoice');
-- Finnish consumer of a digital service: OSS, Finland's 25.5 %: 25.50 EUR, in SEK 25.50 x 11.5 = 293.25
SELECT results_eq($$ SELECT l.tax_rate, l.tax::text, l.tax_treatment FROM invoice_lines l WHERE l.invoice_id = pg_temp.inv('t_f', '2026-03-01') $$,
    $$ VALUES (25.5::numeric, '25.50 EUR', 'oss') $$, 'FI consumer: OSS at 25.5 %');
SELECT is((SELECT exchange_rate || ' ' || tax_seller_currency::text FROM invoices WHERE id = pg_temp.inv('t_f', '2026-03-01')),
          '11.5 293.25 SEK', 'a EUR invoice states its VAT in SEK at the issue date''s rate');
SELECT is((SELECT (-sum(l.amount))::text FROM journal_lines l JOIN journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
            WHERE e.invoice_id = pg_temp.inv('t_f', '2026-03-01') AND l.ledger_code = '2619'), '25.50 EUR',
          'FI consumer: the OSS VAT is booked on its own account');
-- Norwegian business: outside the scope, 0 %, its text
SELECT results_eq($$ SELECT l.tax_rate, l.tax::text, l.tax_treatment, i.tax_notes[1] LIKE 'Utanför EU%'
                      FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
                     WHERE l.invoice_id = pg_temp.inv('t_n', '2026-03-01') $$,
    $$ VALUES (0::numeric, '0.00 SEK', 'outside_scope', true) $$, 'NO business: outside the scope at 0 %, with its text');
-- tax-exempt account: exempt, 0 %, its text
SELECT results_eq($$ SELECT l.tax_rate, l.tax::text, l.tax_treatment, i.tax_notes
                      FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
                     WHERE l.invoice_id = pg_temp.inv('t_x', '2026-03-01') $$,
    $$ VALUES (0::numeric, '0.00 SEK', 'exempt', ARRAY['Undantagen från skatteplikt / Exempt from VAT']) $$,
    'tax-exempt account: exempt at 0 %, with its text');

-- ---------------------------------------------------------------- April: the food rate after 2026-04-01
SELECT run_billing('2026-04-01 12:00+00');
SELECT results_eq($$ SELECT tax_rate, tax::text FROM invoice_lines WHERE invoice_id = pg_temp.inv('t_s', '2026-04-01') $$,
    $$ VALUES (6::numeric, '6.00 SEK') $$, 'SE food in April 2026: 6 %, 6.00');
SELECT is((SELECT tax_seller_currency::text FROM invoices WHERE id = pg_temp.inv('t_f', '2026-04-01')), '280.50 SEK',
          'April''s EUR invoice: 25.50 x 11 = 280.50 SEK');
-- a backdated change credits March's food at March's 12 %, not April's 6 %
SELECT cancel((SELECT max(id) FROM subscriptions WHERE account_id = pg_temp.acct('t_s')), '2026-03-01', true);
SELECT run_billing('2026-04-02 12:00+00');
SELECT results_eq($$ SELECT net::text, tax_rate, tax::text FROM invoice_lines WHERE invoice_id = pg_temp.inv('t_s', '2026-04-02') ORDER BY key_start $$,
    $$ VALUES ('-100.00 SEK', 12::numeric, '-12.00 SEK'), ('-100.00 SEK', 6, '-6.00 SEK') $$,
    'credits of old periods: March at 12 %, April at 6 %');

-- ---------------------------------------------------------------- a missing rate is a billing error
SELECT run_billing('2026-05-01 12:00+00');
SELECT is((SELECT message FROM billing_errors WHERE account_id = pg_temp.acct('t_d') AND resolved_at IS NULL),
          'no exchange rate for EUR on 2026-05-01', 'a missing exchange rate is recorded as a billing error');
SELECT is(pg_temp.inv('t_d', '2026-05-01'), NULL, '... and no invoice is issued');
SELECT throws_ok($$ SELECT tax_rate_at('SE', 'standard', '2024-06-01') $$, '42704', 'no VAT rate for SE (category standard) on 2024-06-01',
                 'a date without a rate is a clear error');
SELECT throws_ok($$ INSERT INTO tax_rates (country, category, rate, valid) VALUES ('SE', 'food', 7, '[2026-03-01,2026-05-01)') $$,
                 '23P01', NULL, 'overlapping rates are refused');

-- ---------------------------------------------------------------- the VAT return of March 2026
-- 05: 200.00 - 100.00 (legacy) + 100.00 (t_s) + 100.00 (t_s2) + 1.05 (t_r)          = 301.05
-- 10: 50.00 - 25.00 (legacy) + 0.26 (t_r) = 25.26;  11: 12.00 + 12.00 = 24.00;  12: 0
-- 39: 100.00 EUR x 11.5 = 1150.00;  40: 100.00 (t_n);  42: 100.00 (t_x);  48: 0;  49: 25.26 + 24.00 = 49.26
-- (the OSS sale to Finland is in neither: it goes to the OSS return)
SELECT results_eq($$ SELECT box, amount::text FROM vat_report('2026-03-01', '2026-03-31')
                      WHERE box IN ('05', '10', '11', '12', '39', '40', '42', '48', '49') $$,
    $$ VALUES ('05', '301.05 SEK'), ('10', '25.26 SEK'), ('11', '24.00 SEK'), ('12', '0.00 SEK'), ('39', '1150.00 SEK'),
              ('40', '100.00 SEK'), ('42', '100.00 SEK'), ('48', '0.00 SEK'), ('49', '49.26 SEK') $$,
    'the VAT return of March 2026, box by box');
SELECT is((SELECT amount FROM vat_report('2026-03-01', '2026-03-31') WHERE box = '10'),
          (SELECT -sum(l.amount) FROM journal_lines l JOIN journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
            WHERE l.ledger_code = '2611' AND e.booked_on BETWEEN '2026-03-01' AND '2026-03-31'),
          'box 10 equals the journal''s 25 % VAT account');
SELECT results_eq($$ SELECT vat_number, amount::text FROM eu_sales_list('2026-03-01', '2026-03-31') $$,
    $$ VALUES ('DE136695976', '1150.00 SEK') $$, 'the EU sales list of March: the German customer, 1150.00');
SELECT throws_ok($$ SELECT * FROM vat_report('2026-03-31', '2026-03-01') $$, '22023', NULL, 'a reversed period is refused');

-- ---------------------------------------------------------------- privileges
SELECT ok(NOT has_function_privilege('public', 'subbilling.vat_report(date, date)', 'EXECUTE'), 'PUBLIC cannot run vat_report');
SELECT ok(has_function_privilege('subbilling_reader', 'subbilling.vat_report(date, date)', 'EXECUTE'), 'the reader can run vat_report');
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.tax_rates', 'INSERT'), 'the operator maintains tax_rates');

SELECT * FROM finish();
ROLLBACK;
