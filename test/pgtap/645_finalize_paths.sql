-- The engine's finalize paths book through book_invoices themselves:
-- run_billing, finalize_invoice, credit_invoice and void_invoice.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(16);

-- ------------------------------------------------------------ run_billing
SELECT FROM pg_temp.account('eng');
INSERT INTO payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct('eng'), 'card', true);
SELECT FROM subscribe(pg_temp.acct('eng'), 'pl_saas', 2, '2024-01-01');
SELECT is(run_billing('2024-01-01 12:00+00'), 1, 'run_billing makes an invoice');
CREATE TEMP TABLE e1 AS SELECT id FROM invoices WHERE account_id = pg_temp.acct('eng');
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM e1)) $$,
    $$ VALUES ('invoice', '1510', '125.00 SEK', (SELECT id FROM e1)), ('invoice', '3001', '-100.00 SEK', NULL),
              ('invoice', '2611', '-25.00 SEK', NULL) $$,
    'and books it in the same batch');
SELECT results_eq($$ SELECT amount::text, status FROM payment_requests WHERE invoice_id = (SELECT id FROM e1) $$,
    $$ VALUES ('125.00 SEK', 'requested') $$, 'with a payment request for the card');
SELECT is((SELECT array_agg(type ORDER BY id) FROM events WHERE invoice_id = (SELECT id FROM e1)),
          ARRAY['invoice.created', 'invoice.finalized', 'payment.requested'], 'events: created, finalized, payment requested');
-- an overpayment pays the next period's invoice at once
SELECT FROM register_payment('150.00 SEK', pg_temp.ref((SELECT id FROM e1)), '2024-01-05', 'card');
SELECT is(run_billing('2024-02-01 12:00+00'), 1, 'the next period');
CREATE TEMP TABLE e2 AS SELECT id FROM invoices WHERE account_id = pg_temp.acct('eng') AND id <> (SELECT id FROM e1);
SELECT is(pg_temp.open((SELECT id FROM e2)), '100.00 SEK', 'uses the 25.00 credit at once');
SELECT is((SELECT amount::text FROM payment_requests WHERE invoice_id = (SELECT id FROM e2)), '100.00 SEK',
          'and requests the rest from the card');

-- ------------------------------------------------------------ finalize_invoice
SELECT FROM pg_temp.account('dr');
INSERT INTO invoices (account_id, currency, net, tax, total, issue_date)
VALUES (pg_temp.acct('dr'), 'SEK', '0 SEK', '0 SEK', '0 SEK', '2024-03-01');
CREATE TEMP TABLE d AS SELECT max(id) AS id FROM invoices WHERE account_id = pg_temp.acct('dr');
INSERT INTO invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
VALUES (pg_temp.acct('dr'), (SELECT id FROM d), 'setup', 'Installation', '1000.00 SEK', 25, '250.00 SEK'),
       (pg_temp.acct('dr'), (SELECT id FROM d), 'recurring', 'Magazine', '100.00 SEK', 6, '6.00 SEK');
SELECT FROM finalize_invoice((SELECT id FROM d));
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM d)) $$,
    $$ VALUES ('invoice', '1510', '1356.00 SEK', (SELECT id FROM d)), ('invoice', '3001', '-1000.00 SEK', NULL),
              ('invoice', '3003', '-100.00 SEK', NULL), ('invoice', '2611', '-250.00 SEK', NULL),
              ('invoice', '2631', '-6.00 SEK', NULL) $$,
    'finalize_invoice books the draft it issues (revenue and VAT per rate)');

-- ------------------------------------------------------------ credit_invoice
CREATE TEMP TABLE c AS SELECT credit_invoice((SELECT id FROM d), '106.00 SEK', 'magazine not delivered') AS id;
SELECT is((SELECT count(*) FROM journal_entries WHERE invoice_id = (SELECT id FROM c)), 2::bigint,
          'credit_invoice books the credit note and applies it');
SELECT is(pg_temp.open((SELECT id FROM d)), '1250.00 SEK', 'the invoice''s open amount drops by the credit');
CREATE TEMP TABLE c2 AS SELECT credit_invoice((SELECT id FROM d)) AS id;
SELECT is(pg_temp.status((SELECT id FROM d)), 'paid', 'credited in full: settled (paid)');
SELECT is(pg_temp.balance('dr'), '0.00 SEK', 'balance 0');

-- ------------------------------------------------------------ void_invoice
SELECT FROM pg_temp.account('vo');
CREATE TEMP TABLE v AS SELECT pg_temp.invoice(pg_temp.acct('vo'), '{100.00 SEK}', '{p_saas}') AS id;
SELECT FROM register_payment('25.00 SEK', pg_temp.ref((SELECT id FROM v)), '2024-01-10', 'swish');
SELECT FROM void_invoice((SELECT id FROM v));
SELECT is((SELECT count(*) FROM journal_entries WHERE invoice_id = (SELECT id FROM v) AND kind = 'void'), 1::bigint,
          'void_invoice reverses the booking');
SELECT results_eq($$ VALUES (pg_temp.open((SELECT id FROM v)), pg_temp.credit('vo'), pg_temp.balance('vo')) $$,
    $$ VALUES ('0.00 SEK', '25.00 SEK', '-25.00 SEK') $$, 'what was paid is customer credit');
CREATE TEMP TABLE vc AS SELECT pg_temp.invoice(pg_temp.acct('vo'), '{-10.00 SEK}', '{p_saas}') AS id;
SELECT throws_ok($$ SELECT void_invoice((SELECT id FROM vc)) $$, '55000', NULL, 'a credit note is not voided');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every entry balances');

SELECT * FROM finish();
ROLLBACK;
