-- register_payment: partial, full and over payments, unmatched payments,
-- idempotency on external_id, refusals; match_payment.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(86);

-- the hook that dunning replaces: log its calls here
CREATE TEMP TABLE paid_log (account_id bigint, invoice_id bigint, status text);
CREATE OR REPLACE FUNCTION subbilling_internal.after_invoice_paid(account_id bigint, invoice_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO pg_temp.paid_log
    SELECT account_id, invoice_id, (SELECT i.status FROM subbilling.invoices i WHERE i.id = after_invoice_paid.invoice_id);
END
$$;

SELECT FROM pg_temp.account('pay');
CREATE TEMP TABLE inv AS SELECT pg_temp.invoice(pg_temp.acct('pay'), '{400.00 SEK}', '{p_saas}') AS id;
SELECT is((SELECT total::text FROM invoices WHERE id = (SELECT id FROM inv)), '500.00 SEK', 'an invoice of 500.00');

-- ------------------------------------------------------------ partial
CREATE TEMP TABLE p1 AS SELECT register_payment('200.00 SEK', pg_temp.ref((SELECT id FROM inv)), '2024-01-20', 'bankgiro', 'bg-1') AS id;
SELECT results_eq($$ SELECT account_id, invoice_id, amount::text, reference, received_on, method, external_id, matched_by
                       FROM payments WHERE id = (SELECT id FROM p1) $$,
    $$ VALUES (pg_temp.acct('pay'), (SELECT id FROM inv), '200.00 SEK', pg_temp.ref((SELECT id FROM inv)), '2024-01-20'::date,
               'bankgiro', 'bg-1', 'reference') $$,
    'a payment matched by the invoice''s reference');
SELECT results_eq($$ SELECT * FROM pg_temp.entries(NULL, (SELECT id FROM p1)) $$,
    $$ VALUES ('payment', '1930', '200.00 SEK', NULL::bigint), ('payment', '1510', '-200.00 SEK', (SELECT id FROM inv)) $$,
    'booked: debit bank, credit receivables of the invoice');
SELECT is((SELECT booked_on FROM journal_entries WHERE payment_id = (SELECT id FROM p1)), '2024-01-20'::date,
          'booked on the day it was received');
SELECT is(pg_temp.open((SELECT id FROM inv)), '300.00 SEK', 'a partial payment leaves the rest open');
SELECT is(pg_temp.status((SELECT id FROM inv)), 'open', 'the invoice stays open');
SELECT is((SELECT payload FROM events WHERE type = 'payment.received' AND payload->>'payment_id' = (SELECT id FROM p1)::text),
          jsonb_build_object('payment_id', (SELECT id FROM p1), 'invoice_id', (SELECT id FROM inv),
                             'number', (SELECT number FROM invoices WHERE id = (SELECT id FROM inv)),
                             'amount', '200.00 SEK', 'applied', '200.00 SEK', 'credited', '0.00 SEK',
                             'open_amount', '300.00 SEK', 'currency', 'SEK', 'method', 'bankgiro',
                             'reference', pg_temp.ref((SELECT id FROM inv)), 'received_on', '2024-01-20',
                             'external_id', 'bg-1', 'matched_by', 'reference', 'payment_request_id', NULL),
          'event payment.received with the amounts');
SELECT is((SELECT count(*) FROM paid_log), 0::bigint, 'the hook is not called for a partial payment');

-- ------------------------------------------------------------ idempotency
CREATE TEMP TABLE before AS SELECT pg_temp.snap() AS s;
SELECT is(register_payment('200.00 SEK', pg_temp.ref((SELECT id FROM inv)), '2024-01-20', 'bankgiro', 'bg-1'), (SELECT id FROM p1),
          'the same external_id again returns the same payment');
SELECT is(register_payment('200.00 SEK', ' ' || pg_temp.ref((SELECT id FROM inv)) || ' ', '2024-01-21', 'swish', ' bg-1 '), (SELECT id FROM p1),
          'also with white space, another date or method');
SELECT is(pg_temp.snap(), (SELECT s FROM before), 'and writes nothing');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('201.00 SEK', pg_temp.ref((SELECT id FROM inv)), '2024-01-20', 'bankgiro', 'bg-1') $$,
    '23505', 'payment "bg-1" was registered before with other details', 'the same external_id with another amount: 23505');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('200.00 SEK', '1234', '2024-01-20', 'bankgiro', 'bg-1') $$,
    '23505', 'payment "bg-1" was registered before with other details', 'the same external_id with another reference: 23505');

-- ------------------------------------------------------------ full
CREATE TEMP TABLE p2 AS SELECT register_payment('300.00 SEK', pg_temp.ref((SELECT id FROM inv)), '2024-01-25', 'bankgiro', 'bg-2') AS id;
SELECT is(pg_temp.open((SELECT id FROM inv)), '0.00 SEK', 'the rest paid: nothing open');
SELECT is(pg_temp.status((SELECT id FROM inv)), 'paid', 'the invoice is paid');
SELECT ok((SELECT paid_at IS NOT NULL FROM invoices WHERE id = (SELECT id FROM inv)), 'paid_at is set');
SELECT is((SELECT payload - 'paid_at' FROM events WHERE type = 'invoice.paid' AND invoice_id = (SELECT id FROM inv)),
          jsonb_build_object('invoice_id', (SELECT id FROM inv), 'number', (SELECT number FROM invoices WHERE id = (SELECT id FROM inv)),
                             'currency', 'SEK', 'total', '500.00 SEK', 'via', 'payment', 'payment_id', (SELECT id FROM p2)),
          'event invoice.paid names the payment');
SELECT is((SELECT array_agg(type ORDER BY id) FROM events WHERE invoice_id = (SELECT id FROM inv) AND id > (SELECT max(id) FROM events WHERE type = 'payment.received' AND payload->>'payment_id' = (SELECT id FROM p1)::text)),
          ARRAY['payment.received', 'invoice.paid'], 'payment.received, then invoice.paid');
SELECT results_eq($$ SELECT account_id, invoice_id, status FROM paid_log $$,
    $$ VALUES (pg_temp.acct('pay'), (SELECT id FROM inv), 'paid') $$,
    'subbilling_internal.after_invoice_paid(account_id, invoice_id) is called once, after the status is paid');
SELECT is(pg_temp.balance('pay'), '0.00 SEK', 'balance 0');

-- ------------------------------------------------------------ over
CREATE TEMP TABLE inv2 AS SELECT pg_temp.invoice(pg_temp.acct('pay'), '{100.00 SEK}', '{p_saas}', '2024-02-01') AS id;
CREATE TEMP TABLE p3 AS SELECT register_payment('200.00 SEK', pg_temp.ref((SELECT id FROM inv2)), '2024-02-10', 'bankgiro') AS id;
SELECT results_eq($$ SELECT * FROM pg_temp.entries(NULL, (SELECT id FROM p3)) $$,
    $$ VALUES ('payment', '1930', '200.00 SEK', NULL::bigint), ('payment', '1510', '-125.00 SEK', (SELECT id FROM inv2)),
              ('payment', '2420', '-75.00 SEK', NULL) $$,
    'an overpayment: the invoice''s open amount to receivables, the rest to customer credit');
SELECT is(pg_temp.status((SELECT id FROM inv2)), 'paid', 'the invoice is paid');
SELECT is(pg_temp.credit('pay'), '75.00 SEK', 'customer credit 75.00');
SELECT is(pg_temp.balance('pay'), '-75.00 SEK', 'balance -75.00');
SELECT is((SELECT payload->>'applied' || ' / ' || (payload->>'credited') FROM events
            WHERE type = 'payment.received' AND payload->>'payment_id' = (SELECT id FROM p3)::text),
          '125.00 SEK / 75.00 SEK', 'payment.received says what was applied and what became credit');
-- paying a paid invoice: all credit, the hook is not called again
CREATE TEMP TABLE p4 AS SELECT register_payment('10.00 SEK', pg_temp.ref((SELECT id FROM inv2)), '2024-02-11', 'bankgiro') AS id;
SELECT results_eq($$ SELECT * FROM pg_temp.entries(NULL, (SELECT id FROM p4)) $$,
    $$ VALUES ('payment', '1930', '10.00 SEK', NULL::bigint), ('payment', '2420', '-10.00 SEK', NULL) $$,
    'a payment on a paid invoice becomes customer credit');
SELECT is((SELECT count(*) FROM paid_log), 2::bigint, 'the hook ran once per invoice that became paid');
SELECT is(pg_temp.credit('pay'), '85.00 SEK', 'customer credit 85.00');

-- a payment on a void invoice: the customer is known, the money is credit
SELECT FROM pg_temp.account('pay_v');
CREATE TEMP TABLE vd AS SELECT pg_temp.invoice(pg_temp.acct('pay_v'), '{8.00 SEK}', '{p_saas}', '2024-02-20') AS id;
SELECT FROM void_invoice((SELECT id FROM vd));
SELECT FROM subbilling_internal.book_invoices(ARRAY[pg_temp.acct('pay_v')], ARRAY[(SELECT id FROM vd)]);
CREATE TEMP TABLE p5 AS SELECT register_payment('10.00 SEK', pg_temp.ref((SELECT id FROM vd)), '2024-02-21', 'bankgiro') AS id;
SELECT results_eq($$ SELECT * FROM pg_temp.entries(NULL, (SELECT id FROM p5)) $$,
    $$ VALUES ('payment', '1930', '10.00 SEK', NULL::bigint), ('payment', '2420', '-10.00 SEK', NULL) $$,
    'a payment on a void invoice becomes customer credit');
SELECT results_eq($$ VALUES (pg_temp.status((SELECT id FROM vd)), pg_temp.credit('pay_v'), pg_temp.balance('pay_v')) $$,
    $$ VALUES ('void', '10.00 SEK', '-10.00 SEK') $$, 'the invoice stays void; credit 10.00');

-- an uncollectible invoice paid in full is paid
CREATE TEMP TABLE inv3 AS SELECT pg_temp.invoice(pg_temp.acct('pay'), '{10.00 SEK}', '{p_saas}', '2024-03-01') AS id;
SELECT is(pg_temp.open((SELECT id FROM inv3)), '0.00 SEK', 'the next invoice was paid by the customer credit');
CREATE TEMP TABLE inv4 AS SELECT pg_temp.issue(pg_temp.acct('pay'), '{100.00 SEK}', '{p_saas}', '2024-04-01') AS id;
SELECT FROM subbilling_internal.book_invoices(ARRAY[pg_temp.acct('pay')], ARRAY[(SELECT id FROM inv4)]);
SELECT is(pg_temp.open((SELECT id FROM inv4)), '52.50 SEK', 'and 72.50 of the one after: 125.00 - 72.50');
UPDATE invoices SET status = 'uncollectible' WHERE id = (SELECT id FROM inv4);
SELECT FROM register_payment('52.50 SEK', pg_temp.ref((SELECT id FROM inv4)), '2024-06-01', 'bank_transfer');
SELECT is(pg_temp.status((SELECT id FROM inv4)), 'paid', 'an uncollectible invoice paid in full is paid');
SELECT is(pg_temp.balance('pay'), '0.00 SEK', 'balance 0');

-- ------------------------------------------------------------ unmatched
CREATE TEMP TABLE before2 AS SELECT pg_temp.snap() AS s, (SELECT count(*) FROM events) AS ev;
CREATE TEMP TABLE u1 AS SELECT register_payment('99.00 SEK', '4444444444', '2024-05-02', 'bgmax', 'bgmax:1:7') AS id;
SELECT results_eq($$ SELECT amount::text, reference, received_on, method, external_id, reason, status, account_id, invoice_id
                       FROM unmatched_payments WHERE id = (SELECT id FROM u1) $$,
    $$ VALUES ('99.00 SEK', '4444444444', '2024-05-02'::date, 'bgmax', 'bgmax:1:7', 'unknown reference', 'open', NULL::bigint, NULL::bigint) $$,
    'a reference that matches no invoice: queued in unmatched_payments');
SELECT is((SELECT count(*) FROM payments WHERE id = (SELECT id FROM u1)) + (SELECT count(*) FROM journal_entries WHERE payment_id = (SELECT id FROM u1)),
          0::bigint, 'no account payment, nothing booked');
SELECT is((SELECT count(*) FROM events), (SELECT ev FROM before2), 'no event row (the queue is its record; NOTIFY payment.unmatched)');
SELECT is(register_payment('99.00 SEK', '4444 4444 44', '2024-05-03', 'bgmax', 'bgmax:1:7'), (SELECT id FROM u1),
          'idempotent in the queue too');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('98.00 SEK', '4444444444', '2024-05-02', 'bgmax', 'bgmax:1:7') $$,
    '23505', 'payment "bgmax:1:7" was registered before with other details', 'a queued external_id with another amount: 23505');
CREATE TEMP TABLE un AS
SELECT register_payment('1.00 SEK', NULL, '2024-05-02', 'bank_transfer', 'n1') AS id, 1 AS ord
UNION ALL SELECT register_payment('1.00 SEK', '  ', '2024-05-02', 'bank_transfer', 'n2'), 2
UNION ALL SELECT register_payment('1.00 SEK', 'INV-2024-1', '2024-05-02', 'bank_transfer', 'n3'), 3;
SELECT results_eq($$ SELECT u.reason FROM un JOIN unmatched_payments u ON u.id = un.id ORDER BY un.ord $$,
    $$ VALUES ('no reference'), ('no reference'), ('invalid reference') $$,
    'no reference, a blank one, one that is no number: unmatched');
CREATE TEMP TABLE cn AS SELECT pg_temp.invoice(pg_temp.acct('pay'), '{-10.00 SEK}', '{p_saas}') AS id;
CREATE TEMP TABLE u_cn AS SELECT register_payment('5.00 SEK', pg_temp.ref((SELECT id FROM cn)), '2024-05-02', 'swish') AS id;
SELECT is((SELECT reason FROM unmatched_payments WHERE id = (SELECT id FROM u_cn)),
          'credit note reference', 'the reference of a credit note: unmatched');
-- two invoices with one reference (e.g. after an import): ambiguous
CREATE TEMP TABLE twin AS SELECT pg_temp.issue(pg_temp.acct('pay'), '{1.00 SEK}', '{p_saas}') AS id;
CREATE TEMP TABLE twin2 AS SELECT pg_temp.issue(pg_temp.acct('pay'), '{1.00 SEK}', '{p_saas}') AS id;
ALTER TABLE invoices DISABLE TRIGGER invoices_guard;
UPDATE invoices SET reference = pg_temp.ref((SELECT id FROM twin)) WHERE id = (SELECT id FROM twin2);
ALTER TABLE invoices ENABLE TRIGGER invoices_guard;
CREATE TEMP TABLE u_tw AS SELECT register_payment('1.25 SEK', pg_temp.ref((SELECT id FROM twin)), '2024-05-02', 'swish') AS id;
SELECT is((SELECT reason FROM unmatched_payments WHERE id = (SELECT id FROM u_tw)),
          'ambiguous reference', 'a reference of two invoices: unmatched');

-- ------------------------------------------------------------ match_payment
SELECT FROM pg_temp.account('mt');
CREATE TEMP TABLE m1 AS SELECT pg_temp.invoice(pg_temp.acct('mt'), '{79.20 SEK}', '{p_saas}') AS id;
SELECT is(match_payment((SELECT id FROM u1), (SELECT id FROM m1)), (SELECT id FROM u1),
          'match_payment books the queued payment under the same id');
SELECT results_eq($$ SELECT account_id, invoice_id, amount::text, reference, received_on, method, external_id, matched_by
                       FROM payments WHERE id = (SELECT id FROM u1) $$,
    $$ VALUES (pg_temp.acct('mt'), (SELECT id FROM m1), '99.00 SEK', '4444444444', '2024-05-02'::date, 'bgmax', 'bgmax:1:7', 'hand') $$,
    'the account''s payment keeps what the bank said');
SELECT results_eq($$ SELECT * FROM pg_temp.entries(NULL, (SELECT id FROM u1)) $$,
    $$ VALUES ('payment', '1930', '99.00 SEK', NULL::bigint), ('payment', '1510', '-99.00 SEK', (SELECT id FROM m1)) $$,
    'booked like a matched payment');
SELECT is(pg_temp.status((SELECT id FROM m1)), 'paid', 'the invoice is paid');
SELECT results_eq($$ SELECT status, account_id, invoice_id, resolved_at IS NOT NULL FROM unmatched_payments WHERE id = (SELECT id FROM u1) $$,
    $$ VALUES ('matched', pg_temp.acct('mt'), (SELECT id FROM m1), true) $$, 'the queue row is matched');
SELECT is(register_payment('99.00 SEK', '4444444444', '2024-05-02', 'bgmax', 'bgmax:1:7'), (SELECT id FROM u1),
          'the external_id still returns the same id');
SELECT * FROM pg_temp.refused($$ SELECT match_payment((SELECT id FROM u1), (SELECT id FROM m1)) $$,
    '55000', format('unmatched payment %s is matched, not open', (SELECT id FROM u1)), 'matched once only: 55000');
SELECT * FROM pg_temp.refused($$ SELECT match_payment(-1, (SELECT id FROM m1)) $$,
    '42704', 'unmatched payment -1 does not exist', 'unknown payment: 42704');
CREATE TEMP TABLE u2 AS SELECT register_payment('5.00 SEK', NULL, '2024-05-02', 'swish', 'sw-5') AS id;
SELECT * FROM pg_temp.refused($$ SELECT match_payment((SELECT id FROM u2), -1) $$,
    '42704', 'invoice -1 does not exist', 'unknown invoice: 42704');
SELECT * FROM pg_temp.refused($$ SELECT match_payment((SELECT id FROM u2), (SELECT id FROM cn)) $$,
    '55000', NULL, 'not onto a credit note: 55000');
SELECT FROM pg_temp.account('mt_eur', 'FI', 'EUR');
CREATE TEMP TABLE m2 AS SELECT pg_temp.invoice(pg_temp.acct('mt_eur'), '{10.00 EUR}', '{p_saas}') AS id;
SELECT * FROM pg_temp.refused($$ SELECT match_payment((SELECT id FROM u2), (SELECT id FROM m2)) $$,
    '22000', NULL, 'not onto an invoice in another currency: 22000');

-- ------------------------------------------------------------ refusals
SELECT * FROM pg_temp.refused($$ SELECT register_payment('0.00 SEK', pg_temp.ref((SELECT id FROM m2)), '2024-05-02', 'bankgiro') $$,
    '22023', 'payment amount 0.00 SEK is not positive', 'zero: 22023');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('-5.00 SEK', pg_temp.ref((SELECT id FROM m2)), '2024-05-02', 'bankgiro') $$,
    '22023', 'payment amount -5.00 SEK is not positive', 'negative: 22023');
CREATE TEMP TABLE eur1 AS SELECT register_payment('5.00 SEK', pg_temp.ref((SELECT id FROM m2)), '2024-05-02', 'bankgiro', 'eur-1') AS id;
SELECT is((SELECT reason FROM unmatched_payments WHERE id = (SELECT id FROM eur1)),
          'other currency', 'another currency than the invoice''s: queued as unmatched, reason other currency');
SELECT is((SELECT count(*) FROM payments WHERE external_id = 'eur-1'), 0::bigint, 'another currency: not booked');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('5.00 EUR', '1', '0001-01-01', 'bankgiro') $$,
    '22023', 'received_on 0001-01-01 is outside the accepted dates', 'a payment dated 0001-01-01: 22023');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('5.00 EUR', '1', '5000-01-01', 'bankgiro') $$,
    '22023', 'received_on 5000-01-01 is outside the accepted dates', 'a payment dated 5000-01-01: 22023');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('5.00 EUR', '1', '2024-05-02', 'bankgiro', repeat('x', 256)) $$,
    '22023', 'external_id of payment is longer than 255 characters', 'an external_id above 255 characters: 22023');
CREATE TEMP TABLE long1 AS SELECT register_payment('5.00 EUR', repeat('7', 9000), '2024-05-02', 'bankgiro', repeat('y', 255)) AS id;
SELECT is((SELECT length(reference) || ' ' || reason FROM unmatched_payments WHERE id = (SELECT id FROM long1)),
          '9000 invalid reference', 'a 9000-character reference and a 255-character external_id: the money is recorded, the reference whole');
SELECT * FROM pg_temp.refused($$ SELECT register_payment(NULL, '1', '2024-05-02', 'bankgiro') $$,
    '22004', 'a payment needs an amount, a date and a method', 'no amount: 22004');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('1.00 SEK', '1', NULL, 'bankgiro') $$,
    '22004', 'a payment needs an amount, a date and a method', 'no date: 22004');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('1.00 SEK', '1', '2024-05-02', NULL) $$,
    '22004', 'a payment needs an amount, a date and a method', 'no method: 22004');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('1.00 SEK', '1', 'infinity', 'bankgiro') $$,
    '22023', 'payment date infinity is not a finite date', 'an infinite date: 22023');
SELECT * FROM pg_temp.refused($$ SELECT register_payment('1.00 SEK', '1', '2024-05-02', 'bank giro!') $$,
    '22023', 'invalid payment method "bank giro!"', 'a malformed method: 22023');
CREATE TEMP TABLE lc AS SELECT register_payment('1.00 EUR', pg_temp.ref((SELECT id FROM m2)), '2024-05-02', ' BankGiro ') AS id;
SELECT is((SELECT method FROM payments WHERE id = (SELECT id FROM lc)), 'bankgiro', 'methods are stored in lower case');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every entry balances');

SELECT * FROM finish();
ROLLBACK;
