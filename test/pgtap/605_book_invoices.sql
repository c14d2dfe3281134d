-- book_invoices: invoices and credit notes booked once (receivables, revenue
-- per product / rate, VAT per rate), void invoices reversed, credit notes and
-- customer credit applied to open invoices, payment requests.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(58);

-- ------------------------------------------------------------ an invoice with three rates
SELECT FROM pg_temp.account('bk');
CREATE TEMP TABLE i1 AS SELECT pg_temp.issue(pg_temp.acct('bk'), '{100.00 SEK,200.00 SEK,50.00 SEK,30.00 SEK}',
                                             '{p_saas,p_food,p_book,p_saas}') AS id;
SELECT is((SELECT total::text FROM invoices WHERE id = (SELECT id FROM i1)), '439.50 SEK',
          'the invoice: 130.00 + 25 %, 200.00 + 12 %, 50.00 + 6 % = 162.50 + 224.00 + 53.00 = 439.50');
SELECT is(pg_temp.open((SELECT id FROM i1)), '0.00 SEK', 'before booking nothing is open in the ledger');
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('bk')], ARRAY[(SELECT id FROM i1)]), 1, 'book_invoices books one entry');
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM i1)) $$,
    $$ VALUES ('invoice', '1510', '439.50 SEK', (SELECT id FROM i1)),
              ('invoice', '3001', '-130.00 SEK', NULL), ('invoice', '3002', '-200.00 SEK', NULL),
              ('invoice', '3003', '-50.00 SEK', NULL),
              ('invoice', '2611', '-32.50 SEK', NULL), ('invoice', '2621', '-24.00 SEK', NULL),
              ('invoice', '2631', '-3.00 SEK', NULL) $$,
    'debit receivables the total; credit revenue per account and VAT per rate');
SELECT is((SELECT booked_on FROM journal_entries WHERE invoice_id = (SELECT id FROM i1)), '2024-01-01'::date,
          'booked on the issue date');
SELECT is(pg_temp.open((SELECT id FROM i1)), '439.50 SEK', 'open amount = total');
SELECT is(pg_temp.balance('bk'), '439.50 SEK', 'account balance = the open invoice');
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('bk'), pg_temp.acct('bk')], ARRAY[(SELECT id FROM i1), (SELECT id FROM i1)]), 0,
          'booking again books nothing');
SELECT is((SELECT count(*) FROM journal_entries WHERE invoice_id = (SELECT id FROM i1)), 1::bigint, 'one entry still');
SELECT is(subbilling_internal.book_invoices('{}', '{}'), 0, 'nothing to book');
SELECT throws_ok($$ SELECT subbilling_internal.book_invoices(ARRAY[1, 2], ARRAY[1]) $$, '22023', 'book_invoices needs one account id per invoice id',
                 'one account per invoice');

-- a product's own revenue account; tax-exempt customers; fees
INSERT INTO ledger_accounts (code, name, kind) VALUES ('3011', 'Försäljning böcker', 'revenue');
INSERT INTO ledger_mappings (purpose, detail, code) VALUES ('revenue', 'p_book', '3011');
SELECT FROM pg_temp.account('bk_exempt', tax_exempt => true);
CREATE TEMP TABLE i2 AS SELECT pg_temp.invoice(pg_temp.acct('bk_exempt'), '{100.00 SEK,50.00 SEK,60.00 SEK}',
                                               '{p_saas,p_book,NULL}') AS id;
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM i2)) $$,
    $$ VALUES ('invoice', '1510', '210.00 SEK', (SELECT id FROM i2)), ('invoice', '3004', '-100.00 SEK', NULL),
              ('invoice', '3011', '-50.00 SEK', NULL), ('invoice', '3930', '-60.00 SEK', NULL) $$,
    'tax-exempt: revenue at 0 % (3004), a product mapped to 3011, a fee line to 3930, no VAT lines');

-- an unmapped VAT rate is refused whole
UPDATE products SET tax_rate = 15 WHERE code = 'p_food';
SELECT FROM pg_temp.account('bk_15');
CREATE TEMP TABLE i3 AS SELECT pg_temp.issue(pg_temp.acct('bk_15'), '{100.00 SEK}', '{p_food}') AS id;
SELECT * FROM pg_temp.refused($$ SELECT subbilling_internal.book_invoices(ARRAY[pg_temp.acct('bk_15'), pg_temp.acct('bk')],
                                                      ARRAY[(SELECT id FROM i3), (SELECT id FROM i1)]) $$,
    '42704', 'no ledger account for purpose revenue_rate (currency SEK, detail 15)', 'an unmapped VAT rate: 42704');
INSERT INTO ledger_accounts (code, name, kind) VALUES ('3005', 'Försäljning 15 %', 'revenue'), ('2614', 'Utgående moms 15 %', 'liability');
INSERT INTO ledger_mappings (purpose, detail, code) VALUES ('revenue_rate', '15', '3005'), ('vat', '15', '2614');
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('bk_15')], ARRAY[(SELECT id FROM i3)]), 1, 'once mapped, it books');
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM i3)) $$,
    $$ VALUES ('invoice', '1510', '115.00 SEK', (SELECT id FROM i3)), ('invoice', '3005', '-100.00 SEK', NULL),
              ('invoice', '2614', '-15.00 SEK', NULL) $$, 'booked with the new accounts');
UPDATE products SET tax_rate = 12 WHERE code = 'p_food';

-- ------------------------------------------------------------ credit notes
-- a partial credit note on an open invoice lowers what is open
SELECT FROM pg_temp.account('cn');
CREATE TEMP TABLE c0 AS SELECT pg_temp.invoice(pg_temp.acct('cn'), '{400.00 SEK}', '{p_saas}') AS id;
CREATE TEMP TABLE c1 AS SELECT credit_invoice((SELECT id FROM c0), '100.00 SEK', 'goodwill') AS id;
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('cn')], ARRAY[(SELECT id FROM c1)]), 0,
          'the credit note was booked when credit_invoice issued it') WHERE EXISTS (SELECT 1 FROM journal_entries WHERE invoice_id = (SELECT id FROM c1))
UNION ALL
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('cn')], ARRAY[(SELECT id FROM c1)]), 1,
          'book_invoices books the credit note') WHERE NOT EXISTS (SELECT 1 FROM journal_entries WHERE invoice_id = (SELECT id FROM c1));
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM c1)) $$,
    $$ VALUES ('credit_note', '1510', '-100.00 SEK', (SELECT id FROM c1)), ('credit_note', '3001', '80.00 SEK', NULL),
              ('credit_note', '2611', '20.00 SEK', NULL),
              ('allocation', '1510', '100.00 SEK', (SELECT id FROM c1)), ('allocation', '1510', '-100.00 SEK', (SELECT id FROM c0)) $$,
    'a credit note: credit receivables, debit revenue and VAT; then applied to the invoice it credits');
SELECT is(pg_temp.open((SELECT id FROM c1)), '0.00 SEK', 'the credit note itself is settled');
SELECT is(pg_temp.open((SELECT id FROM c0)), '400.00 SEK', 'the invoice has 500.00 - 100.00 open');
SELECT is(pg_temp.status((SELECT id FROM c0)), 'open', 'and stays open');
SELECT is(pg_temp.credit('cn'), '0.00 SEK', 'no customer credit');
-- the rest: the invoice is settled by the credit note and counts as paid
CREATE TEMP TABLE c2 AS SELECT credit_invoice((SELECT id FROM c0)) AS id;
SELECT FROM subbilling_internal.book_invoices(ARRAY[pg_temp.acct('cn')], ARRAY[(SELECT id FROM c2)]);
SELECT is(pg_temp.open((SELECT id FROM c0)), '0.00 SEK', 'credited in full: nothing open');
SELECT is(pg_temp.status((SELECT id FROM c0)), 'paid', 'an invoice settled by credit notes is paid');
SELECT is((SELECT payload->>'via' FROM events WHERE type = 'invoice.paid' AND invoice_id = (SELECT id FROM c0)), 'credit',
          'invoice.paid (via credit)');
SELECT is(pg_temp.balance('cn'), '0.00 SEK', 'balance 0');

-- a credit note on a paid invoice becomes customer credit, which the next invoice uses
SELECT FROM pg_temp.account('cc');
CREATE TEMP TABLE d0 AS SELECT pg_temp.invoice(pg_temp.acct('cc'), '{80.00 SEK}', '{p_saas}') AS id;
SELECT FROM register_payment('100.00 SEK', pg_temp.ref((SELECT id FROM d0)), '2024-01-10', 'bankgiro');
CREATE TEMP TABLE d1 AS SELECT credit_invoice((SELECT id FROM d0), '40.00 SEK') AS id;
SELECT FROM subbilling_internal.book_invoices(ARRAY[pg_temp.acct('cc')], ARRAY[(SELECT id FROM d1)]);
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM d1)) $$,
    $$ VALUES ('credit_note', '1510', '-40.00 SEK', (SELECT id FROM d1)), ('credit_note', '3001', '32.00 SEK', NULL),
              ('credit_note', '2611', '8.00 SEK', NULL),
              ('allocation', '1510', '40.00 SEK', (SELECT id FROM d1)), ('allocation', '2420', '-40.00 SEK', NULL) $$,
    'a credit note on a paid invoice goes to customer credit (2420)');
SELECT is(pg_temp.credit('cc'), '40.00 SEK', 'customer credit 40.00');
SELECT is(pg_temp.balance('cc'), '-40.00 SEK', 'balance -40.00: the customer is in credit');
CREATE TEMP TABLE d2 AS SELECT pg_temp.invoice(pg_temp.acct('cc'), '{20.00 SEK}', '{p_saas}', '2024-02-01') AS id;
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM d2)) $$,
    $$ VALUES ('invoice', '1510', '25.00 SEK', (SELECT id FROM d2)), ('invoice', '3001', '-20.00 SEK', NULL),
              ('invoice', '2611', '-5.00 SEK', NULL),
              ('credit_applied', '2420', '25.00 SEK', NULL), ('credit_applied', '1510', '-25.00 SEK', (SELECT id FROM d2)) $$,
    'the next invoice uses the credit at once');
SELECT is(pg_temp.status((SELECT id FROM d2)), 'paid', 'and is paid by it');
SELECT is(pg_temp.credit('cc'), '15.00 SEK', 'credit left 15.00');
SELECT is((SELECT payload->>'amount' || ' / ' || (payload->>'credit_left') FROM events WHERE type = 'credit.applied' AND invoice_id = (SELECT id FROM d2)),
          '25.00 SEK / 15.00 SEK', 'event credit.applied with the amount and the credit left');
CREATE TEMP TABLE d3 AS SELECT pg_temp.invoice(pg_temp.acct('cc'), '{40.00 SEK}', '{p_saas}', '2024-03-01') AS id;
SELECT is(pg_temp.open((SELECT id FROM d3)), '35.00 SEK', 'the invoice after uses what is left: 50.00 - 15.00');
SELECT is(pg_temp.status((SELECT id FROM d3)), 'open', 'and stays open');
SELECT is(pg_temp.credit('cc'), '0.00 SEK', 'no credit left');

-- an engine credit note (no invoice to credit) goes to credit, oldest due invoice first
SELECT FROM pg_temp.account('old');
CREATE TEMP TABLE o1 AS SELECT pg_temp.invoice(pg_temp.acct('old'), '{100.00 SEK}', '{p_saas}', '2024-01-01', 30) AS id;
CREATE TEMP TABLE o2 AS SELECT pg_temp.invoice(pg_temp.acct('old'), '{100.00 SEK}', '{p_saas}', '2024-01-02', 10) AS id;
CREATE TEMP TABLE o3 AS SELECT pg_temp.invoice(pg_temp.acct('old'), '{-160.00 SEK}', '{p_saas}', '2024-01-05', 0) AS id;
SELECT is((SELECT kind || ' ' || total::text FROM invoices WHERE id = (SELECT id FROM o3)), 'credit_note -200.00 SEK',
          'a negative engine document is a credit note of its own');
SELECT results_eq($$ VALUES (pg_temp.open((SELECT id FROM o2))), (pg_temp.open((SELECT id FROM o1))), (pg_temp.credit('old')) $$,
    $$ VALUES ('0.00 SEK'), ('50.00 SEK'), ('0.00 SEK') $$,
    'its credit pays the invoice due first (due 01-12) in full, then 75.00 of the next (due 01-31)');
SELECT results_eq($$ SELECT pg_temp.status(id) FROM (VALUES ((SELECT id FROM o1)), ((SELECT id FROM o2))) v(id) $$,
    $$ VALUES ('open'), ('paid') $$, 'the one covered is paid');

-- ------------------------------------------------------------ zero total and void
SELECT FROM pg_temp.account('zv');
CREATE TEMP TABLE z1 AS SELECT pg_temp.invoice(pg_temp.acct('zv'), '{100.00 SEK,-100.00 SEK}', '{p_saas,p_saas}') AS id;
SELECT is((SELECT count(*) FROM journal_entries WHERE invoice_id = (SELECT id FROM z1)), 0::bigint, 'a zero invoice books nothing');
SELECT is(pg_temp.status((SELECT id FROM z1)), 'paid', 'and is paid at once');

CREATE TEMP TABLE v1 AS SELECT pg_temp.invoice(pg_temp.acct('zv'), '{200.00 SEK}', '{p_saas}') AS id;
SELECT FROM register_payment('50.00 SEK', pg_temp.ref((SELECT id FROM v1)), '2024-01-10', 'swish');
SELECT FROM void_invoice((SELECT id FROM v1), 'wrong customer');
SELECT FROM subbilling_internal.book_invoices(ARRAY[pg_temp.acct('zv')], ARRAY[(SELECT id FROM v1)]);
SELECT results_eq($$ SELECT * FROM pg_temp.entries((SELECT id FROM v1)) $$,
    $$ VALUES ('invoice', '1510', '250.00 SEK', (SELECT id FROM v1)), ('invoice', '3001', '-200.00 SEK', NULL),
              ('invoice', '2611', '-50.00 SEK', NULL),
              ('payment', '1930', '50.00 SEK', NULL), ('payment', '1510', '-50.00 SEK', (SELECT id FROM v1)),
              ('void', '1510', '-200.00 SEK', (SELECT id FROM v1)), ('void', '3001', '200.00 SEK', NULL),
              ('void', '2611', '50.00 SEK', NULL), ('void', '2420', '-50.00 SEK', NULL) $$,
    'a void invoice is reversed; what was paid on it becomes customer credit');
SELECT is(pg_temp.open((SELECT id FROM v1)), '0.00 SEK', 'nothing open on the void invoice');
SELECT is(pg_temp.credit('zv'), '50.00 SEK', 'the 50.00 paid is customer credit');
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('zv')], ARRAY[(SELECT id FROM v1)]), 0, 'a void invoice is reversed once');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every entry balances');

-- a booked credit note is not voided
CREATE TEMP TABLE v2 AS SELECT pg_temp.invoice(pg_temp.acct('zv'), '{-10.00 SEK}', '{p_saas}') AS id;
SELECT throws_ok($$ SELECT void_invoice((SELECT id FROM v2)), subbilling_internal.book_invoices(ARRAY[pg_temp.acct('zv')], ARRAY[(SELECT id FROM v2)]) $$,
    '55000', format('credit note %s cannot be voided', (SELECT number FROM invoices WHERE id = (SELECT id FROM v2))),
    'voiding a booked credit note is refused');

-- ------------------------------------------------------------ payment requests
SELECT FROM pg_temp.account('card');
INSERT INTO payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct('card'), 'card', true);
SELECT FROM pg_temp.account('giro');
INSERT INTO payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct('giro'), 'invoice', true);
INSERT INTO payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct('giro'), 'autogiro', false);
CREATE TEMP TABLE r1 AS SELECT pg_temp.issue(pg_temp.acct('card'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
CREATE TEMP TABLE r2 AS SELECT pg_temp.issue(pg_temp.acct('giro'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('card'), pg_temp.acct('giro')], ARRAY[(SELECT id FROM r1), (SELECT id FROM r2)]), 2,
          'two invoices booked in one call');
SELECT results_eq($$ SELECT invoice_id, amount::text, status, attempt, requested_on, payment_method_id FROM payment_requests
                      WHERE account_id IN (pg_temp.acct('card'), pg_temp.acct('giro')) $$,
    $$ VALUES ((SELECT id FROM r1), '125.00 SEK', 'requested', 1, '2024-04-01'::date,
               (SELECT id FROM payment_methods WHERE account_id = pg_temp.acct('card'))) $$,
    'a payment request for the account whose default method is automatic (card), none for invoice');
SELECT is((SELECT payload - 'payment_request_id' - 'payment_method_id' FROM events WHERE type = 'payment.requested' AND invoice_id = (SELECT id FROM r1)),
          jsonb_build_object('invoice_id', (SELECT id FROM r1), 'number', (SELECT number FROM invoices WHERE id = (SELECT id FROM r1)),
                             'reference', pg_temp.ref((SELECT id FROM r1)), 'due_date', '2024-05-01', 'currency', 'SEK',
                             'amount', '125.00 SEK', 'amount_minor', 12500, 'method', 'card', 'attempt', 1,
                             'requested_on', '2024-04-01'),
          'event payment.requested with amount, reference and method');
SELECT is(subbilling_internal.book_invoices(ARRAY[pg_temp.acct('card')], ARRAY[(SELECT id FROM r1)]), 0, 'booking again');
SELECT is((SELECT count(*) FROM payment_requests WHERE account_id = pg_temp.acct('card')), 1::bigint, 'requests once');
-- credit first: the request asks for what is left
SELECT FROM pg_temp.account('card2');
INSERT INTO payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct('card2'), 'autogiro', true);
SELECT FROM subbilling_internal.book_entry(pg_temp.acct('card2'), 'adjustment', '2024-04-02', '{1930,2420}', '{30.00 SEK,-30.00 SEK}');
CREATE TEMP TABLE r3 AS SELECT pg_temp.invoice(pg_temp.acct('card2'), '{100.00 SEK}', '{p_saas}', '2024-05-01') AS id;
SELECT is((SELECT amount::text FROM payment_requests WHERE invoice_id = (SELECT id FROM r3)), '95.00 SEK',
          'the request is for the open amount after customer credit (125.00 - 30.00)');
-- covered by credit: no request, and older open invoices are paid too
SELECT FROM subbilling_internal.book_entry(pg_temp.acct('card2'), 'adjustment', '2024-05-02', '{1930,2420}', '{500.00 SEK,-500.00 SEK}');
CREATE TEMP TABLE r4 AS SELECT pg_temp.invoice(pg_temp.acct('card2'), '{100.00 SEK}', '{p_saas}', '2024-06-01') AS id;
SELECT is((SELECT count(*) FROM payment_requests WHERE invoice_id = (SELECT id FROM r4)), 0::bigint,
          'no request for an invoice that credit paid');
SELECT results_eq($$ SELECT pg_temp.status(id) FROM (VALUES ((SELECT id FROM r3)), ((SELECT id FROM r4))) v(id) $$,
    $$ VALUES ('paid'), ('paid') $$, 'the credit also paid the older open invoice');
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM payment_requests WHERE account_id = pg_temp.acct('card2')),
          'canceled', 'and its request is canceled');
SELECT is(pg_temp.credit('card2'), '280.00 SEK', 'credit left: 530.00 - 125.00 - 125.00');

SELECT is(pg_temp.unbalanced(), 0::bigint, 'every entry balances');

SELECT * FROM finish();
ROLLBACK;
