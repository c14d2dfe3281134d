-- refund: out of the customer credit first, then back onto the payment's
-- invoice (reopening it); never more than refundable; unmatched payments
-- go back whole.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql

SELECT plan(47);

SELECT FROM pg_temp.account('rf');
CREATE TEMP TABLE inv AS SELECT pg_temp.invoice(pg_temp.acct('rf'), '{80.00 SEK}', '{p_saas}') AS id;
-- 100.00 invoice, paid 130.00: 30.00 credit
CREATE TEMP TABLE p AS SELECT register_payment('130.00 SEK', pg_temp.ref((SELECT id FROM inv)), '2024-01-10', 'swish', 'sw-1') AS id;
SELECT is(pg_temp.credit('rf'), '30.00 SEK', 'an overpayment of 30.00');

-- ------------------------------------------------------------ from credit
CREATE TEMP TABLE r1 AS SELECT refund((SELECT id FROM p), '20.00 SEK') AS id;
SELECT results_eq($$ SELECT payment_id, amount::text, from_credit::text, reopened::text, refunded_on FROM refunds WHERE id = (SELECT id FROM r1) $$,
    $$ VALUES ((SELECT id FROM p), '20.00 SEK', '20.00 SEK', '0.00 SEK', current_date) $$,
    'a refund within the credit comes out of the credit, dated today');
SELECT results_eq($$ SELECT e.kind, l.ledger_code, l.amount::text, l.invoice_id FROM journal_entries e
                       JOIN journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
                      WHERE e.kind = 'refund' AND e.payment_id = (SELECT id FROM p) ORDER BY l.id $$,
    $$ VALUES ('refund', '1930', '-20.00 SEK', NULL::bigint), ('refund', '2420', '20.00 SEK', NULL) $$,
    'booked: credit bank, debit customer credit');
SELECT is(pg_temp.credit('rf'), '10.00 SEK', 'credit left 10.00');
SELECT is(pg_temp.status((SELECT id FROM inv)), 'paid', 'the invoice stays paid');
SELECT is((SELECT payload - 'refund_id' - 'refunded_on' FROM events WHERE type = 'payment.refunded'),
          jsonb_build_object('payment_id', (SELECT id FROM p), 'invoice_id', (SELECT id FROM inv), 'currency', 'SEK',
                             'amount', '20.00 SEK', 'from_credit', '20.00 SEK', 'reopened', '0.00 SEK'),
          'event payment.refunded with the parts');

-- ------------------------------------------------------------ credit and invoice
CREATE TEMP TABLE r2 AS SELECT refund((SELECT id FROM p), '50.00 SEK') AS id;
SELECT results_eq($$ SELECT amount::text, from_credit::text, reopened::text FROM refunds WHERE id = (SELECT id FROM r2) $$,
    $$ VALUES ('50.00 SEK', '10.00 SEK', '40.00 SEK') $$, 'the credit first (10.00), the rest back on the invoice (40.00)');
SELECT results_eq($$ SELECT l.ledger_code, l.amount::text, l.invoice_id FROM journal_entries e
                       JOIN journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
                      WHERE e.kind = 'refund' AND e.payment_id = (SELECT id FROM p) AND e.id = (SELECT max(id) FROM journal_entries)
                      ORDER BY l.id $$,
    $$ VALUES ('1930', '-50.00 SEK', NULL::bigint), ('2420', '10.00 SEK', NULL), ('1510', '40.00 SEK', (SELECT id FROM inv)) $$,
    'booked: credit bank 50.00, debit credit 10.00 and receivables 40.00');
SELECT is(pg_temp.open((SELECT id FROM inv)), '40.00 SEK', 'the invoice has 40.00 open again');
SELECT is(pg_temp.status((SELECT id FROM inv)), 'open', 'and is reopened');
SELECT is((SELECT paid_at FROM invoices WHERE id = (SELECT id FROM inv)), NULL, 'paid_at is cleared');
SELECT is((SELECT payload->>'open_amount' FROM events WHERE type = 'invoice.reopened' AND invoice_id = (SELECT id FROM inv)), '40.00 SEK',
          'event invoice.reopened');
SELECT is(pg_temp.balance('rf'), '40.00 SEK', 'balance 40.00');

-- ------------------------------------------------------------ limits
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM p), '60.01 SEK') $$,
    '22023', 'refund 60.01 SEK is more than the refundable 60.00 SEK', 'more than the payment has left: 22023');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM p), '0.00 SEK') $$,
    '22023', 'refund amount 0.00 SEK is not positive', 'zero: 22023');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM p), '1.00 EUR') $$,
    '22000', format('refund 1.00 EUR is not in the currency of payment %s (130.00 SEK)', (SELECT id FROM p)), 'another currency: 22000');
SELECT * FROM pg_temp.refused($$ SELECT refund(-1, '1.00 SEK') $$,
    '42704', 'payment -1 does not exist', 'unknown payment: 42704');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM p), NULL) $$,
    '22004', 'a refund needs an amount', 'no amount: 22004');
CREATE TEMP TABLE r3 AS SELECT refund((SELECT id FROM p), '60.00 SEK') AS id;
SELECT is(pg_temp.open((SELECT id FROM inv)), '100.00 SEK', 'refunded whole: the invoice is open in full');
SELECT is(pg_temp.balance('rf'), '100.00 SEK', 'balance 100.00');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM p), '0.01 SEK') $$,
    '22023', 'refund 0.01 SEK is more than the refundable 0.00 SEK', 'nothing left to refund: 22023');

-- the credit that the payment made was used by another invoice: only what
-- went onto its own invoice can go back
SELECT FROM pg_temp.account('rf2');
CREATE TEMP TABLE a1 AS SELECT pg_temp.invoice(pg_temp.acct('rf2'), '{80.00 SEK}', '{p_saas}') AS id;
CREATE TEMP TABLE q AS SELECT register_payment('150.00 SEK', pg_temp.ref((SELECT id FROM a1)), '2024-01-10', 'swish') AS id;
CREATE TEMP TABLE a2 AS SELECT pg_temp.invoice(pg_temp.acct('rf2'), '{40.00 SEK}', '{p_saas}', '2024-02-01') AS id;
SELECT is(pg_temp.credit('rf2'), '0.00 SEK', 'the next invoice used the 50.00 credit');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM q), '150.00 SEK') $$,
    '22023', 'refund 150.00 SEK is more than the refundable 100.00 SEK', 'not what another invoice used: 22023');
SELECT FROM refund((SELECT id FROM q), '100.00 SEK');
SELECT is(pg_temp.open((SELECT id FROM a1)), '100.00 SEK', 'its own invoice reopened in full');
SELECT is(pg_temp.status((SELECT id FROM a2)), 'paid', 'the other stays paid');
SELECT * FROM pg_temp.refused($$ UPDATE invoices SET status = 'open', paid_at = NULL WHERE id = (SELECT id FROM a2) $$,
    '55000', format('invoice %s cannot go from paid to open', (SELECT number FROM invoices WHERE id = (SELECT id FROM a2))),
    'a paid invoice is not reopened by hand, also after a refund in the same transaction');

-- a credited invoice is not reopened beyond what is left of it
SELECT FROM pg_temp.account('rf3');
CREATE TEMP TABLE b1 AS SELECT pg_temp.invoice(pg_temp.acct('rf3'), '{80.00 SEK}', '{p_saas}') AS id;
CREATE TEMP TABLE q3 AS SELECT register_payment('100.00 SEK', pg_temp.ref((SELECT id FROM b1)), '2024-01-10', 'swish') AS id;
CREATE TEMP TABLE b2 AS SELECT credit_invoice((SELECT id FROM b1), '30.00 SEK') AS id;
SELECT FROM subbilling_internal.book_invoices(ARRAY[pg_temp.acct('rf3')], ARRAY[(SELECT id FROM b2)]);
CREATE TEMP TABLE b3 AS SELECT pg_temp.invoice(pg_temp.acct('rf3'), '{24.00 SEK}', '{p_saas}', '2024-02-01') AS id;
SELECT is(pg_temp.credit('rf3'), '0.00 SEK', 'the credit note''s 30.00 paid the next invoice');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM q3), '100.00 SEK') $$,
    '22023', 'refund 100.00 SEK is more than the refundable 70.00 SEK', 'only the uncredited 70.00 goes back on the invoice: 22023');
SELECT FROM refund((SELECT id FROM q3), '70.00 SEK');
SELECT is(pg_temp.open((SELECT id FROM b1)), '70.00 SEK', 'the invoice is owed what was not credited');

-- ------------------------------------------------------------ unmatched
CREATE TEMP TABLE u AS SELECT register_payment('12.00 SEK', '999', '2024-01-10', 'bankgiro', 'um-1') AS id;
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM u), '5.00 SEK') $$,
    '22023', 'an unmatched payment is refunded whole', 'an unmatched payment goes back whole: 22023');
SELECT is(refund((SELECT id FROM u), '12.00 SEK'), (SELECT id FROM u), 'refunding an unmatched payment returns its id');
SELECT results_eq($$ SELECT status, resolved_at IS NOT NULL FROM unmatched_payments WHERE id = (SELECT id FROM u) $$,
    $$ VALUES ('refunded', true) $$, 'the queue row is refunded');
SELECT * FROM pg_temp.refused($$ SELECT refund((SELECT id FROM u), '12.00 SEK') $$,
    '55000', format('unmatched payment %s is already refunded', (SELECT id FROM u)), 'refunded once: 55000');
SELECT * FROM pg_temp.refused($$ SELECT match_payment((SELECT id FROM u), (SELECT id FROM b1)) $$,
    '55000', NULL, 'a refunded payment is not matched');

SELECT is(pg_temp.unbalanced(), 0::bigint, 'every entry balances');

SELECT * FROM finish();
ROLLBACK;
