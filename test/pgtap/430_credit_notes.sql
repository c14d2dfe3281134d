-- Credit notes: the whole uncredited amount mirrors the lines, a part is
-- split exactly over the VAT rates; numbered, announced, never re-billed.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 400_fixture.psql

SELECT plan(26);

SELECT pg_temp.account('cn');
SELECT subscribe(pg_temp.acct('cn'), 'b_m300', 2, '2024-01-01');
SELECT add_addon(pg_temp.sub('cn'), 'b_book', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
CREATE TEMP TABLE inv AS SELECT * FROM invoices WHERE account_id = pg_temp.acct('cn');
SELECT is((SELECT total::text FROM inv), '803.00 SEK', 'the invoice: 600.00 at 25 % and 50.00 at 6 %, 803.00 in all');

-- a part: 100.00 split over the rates in proportion to their gross (750.00 : 53.00)
SELECT ok(credit_invoice((SELECT id FROM inv), '100.00 SEK', 'goodwill') > 0, 'a partial credit note');
CREATE TEMP TABLE cn1 AS SELECT * FROM invoices WHERE credits_invoice_id = (SELECT id FROM inv);
SELECT results_eq($$ SELECT kind, status, credits_invoice_id, net::text, tax::text, total::text, reason FROM cn1 $$,
    $$ SELECT 'credit_note', 'open', (SELECT id FROM inv), '-80.95 SEK', '-19.05 SEK', '-100.00 SEK', 'goodwill' $$,
    'partial credit note: kind, status, reference to the original, totals');
SELECT results_eq($$ SELECT kind, description, net::text, tax_rate, tax::text FROM invoice_lines
                      WHERE invoice_id = (SELECT id FROM cn1) ORDER BY id $$,
    $$ VALUES ('credit', 'goodwill (VAT 25%)', '-74.72 SEK', 25::numeric, '-18.68 SEK'),
              ('credit', 'goodwill (VAT 6%)', '-6.23 SEK', 6, '-0.37 SEK') $$,
    'partial credit note: 100.00 = 93.40 at 25 % (74.72 + 18.68) and 6.60 at 6 % (6.23 + 0.37), split exactly');
SELECT is((SELECT number FROM cn1), to_char(current_date, 'YYYY') || '-000001',
          'a credit note is numbered in the series of its issue date (today)');
SELECT is((SELECT issue_date FROM cn1), current_date, 'a credit note is issued today');

-- the rest: exactly what is left of each rate
SELECT ok(credit_invoice((SELECT id FROM inv)) > 0, 'credit the rest');
SELECT results_eq(
    $$ SELECT l.tax_rate, sum(l.net)::text, sum(l.tax)::text
         FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
        WHERE i.id = (SELECT id FROM inv) OR i.credits_invoice_id = (SELECT id FROM inv)
        GROUP BY l.tax_rate ORDER BY l.tax_rate $$,
    $$ VALUES (6::numeric, '0.00 SEK', '0.00 SEK'), (25, '0.00 SEK', '0.00 SEK') $$,
    'after crediting the rest, every rate''s net and VAT are exactly zero');
SELECT is((SELECT subbilling_internal.invoice_uncredited(i)::text FROM invoices i WHERE id = (SELECT id FROM inv)), '0.00 SEK',
          'nothing left to credit');
SELECT throws_ok($$ SELECT credit_invoice((SELECT id FROM inv)) $$, '55000', 'invoice 2024-000001 is fully credited',
                 'a fully credited invoice is not credited again');

-- a whole invoice at once mirrors its lines
SELECT pg_temp.account('cn2');
SELECT subscribe(pg_temp.acct('cn2'), 'b_m300', 1, '2024-01-01');
SELECT add_addon(pg_temp.sub('cn2'), 'b_book', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
CREATE TEMP TABLE inv2 AS SELECT * FROM invoices WHERE account_id = pg_temp.acct('cn2');
CREATE TEMP TABLE cn2 AS SELECT credit_invoice((SELECT id FROM inv2), reason => 'canceled order') AS id;
SELECT results_eq(
    $$ SELECT kind, description, period, quantity, unit_price, net, tax_rate, tax FROM invoice_lines
        WHERE invoice_id = (SELECT id FROM cn2) ORDER BY id $$,
    $$ SELECT 'credit', 'Credit: ' || description, period, quantity, -unit_price, -net, tax_rate, -tax FROM invoice_lines
        WHERE invoice_id = (SELECT id FROM inv2) ORDER BY id $$,
    'a whole credit note mirrors the invoice''s lines');
SELECT is((SELECT total FROM invoices WHERE id = (SELECT id FROM cn2)), -(SELECT total FROM inv2),
          'a whole credit note totals minus the invoice');
SELECT is((SELECT (payload->>'amount') || ' / ' || (payload->>'uncredited') FROM events
            WHERE type = 'invoice.credited' AND invoice_id = (SELECT id FROM inv2)),
          '428.00 SEK / 0.00 SEK', 'event invoice.credited with the amount and what is left');
SELECT is((SELECT count(*) FROM events WHERE invoice_id = (SELECT id FROM cn2) AND type IN ('invoice.created', 'invoice.finalized')),
          2::bigint, 'the credit note is announced like an invoice');
SELECT ok((SELECT ocr_valid(reference, true) FROM invoices WHERE id = (SELECT id FROM cn2)),
          'the credit note carries its own OCR reference');
SELECT is(run_billing('2024-01-02'), 0, 'credited charges are not billed again');
SELECT is((SELECT count(*) FROM preview_invoice(pg_temp.sub('cn2'), '2024-01-02')), 0::bigint,
          'and the preview agrees');

-- refusals
SELECT throws_ok($$ SELECT credit_invoice((SELECT id FROM cn2)) $$, '55000', NULL, 'a credit note is not credited');
SELECT throws_ok($$ SELECT credit_invoice(-5) $$, '42704', 'invoice -5 does not exist', 'unknown invoice');
SELECT pg_temp.account('cn3');
SELECT subscribe(pg_temp.acct('cn3'), 'b_m300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
CREATE TEMP TABLE inv3 AS SELECT * FROM invoices WHERE account_id = pg_temp.acct('cn3');
SELECT throws_ok($$ SELECT credit_invoice((SELECT id FROM inv3), '400.00 SEK') $$, '22023',
                 'credit amount 400.00 SEK is not between 0 and the uncredited 375.00 SEK', 'more than the invoice');
SELECT throws_ok($$ SELECT credit_invoice((SELECT id FROM inv3), '0.00 SEK') $$, '22023', NULL, 'nothing');
SELECT throws_ok($$ SELECT credit_invoice((SELECT id FROM inv3), '-5.00 SEK') $$, '22023', NULL, 'a negative amount');
SELECT throws_ok($$ SELECT credit_invoice((SELECT id FROM inv3), '5.00 EUR') $$, '22000',
                 'credit amount 5.00 EUR is not in the invoice''s currency SEK', 'another currency');
SELECT ok(credit_invoice((SELECT id FROM inv3), '75.00 SEK') > 0, 'a part of a single-rate invoice');
SELECT throws_ok($$ SELECT void_invoice((SELECT id FROM inv3)) $$, '55000', 'invoice 2024-000003 has credit notes',
                 'an invoice with credit notes is not voided');
SELECT is((SELECT count(*) FROM (SELECT series_id FROM invoices GROUP BY series_id
                                  HAVING max(number_seq) - min(number_seq) + 1 <> count(*)) g), 0::bigint,
          'invoices and credit notes share gapless series');

SELECT * FROM finish();
ROLLBACK;
