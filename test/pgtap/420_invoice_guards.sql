-- Issued invoices are never deleted or altered; drafts are; totals equal
-- the sums of the lines; the status only moves forward.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 400_fixture.psql

SELECT plan(32);

-- everything invoicing wrote, as one digest
CREATE FUNCTION pg_temp.snap() RETURNS text LANGUAGE sql VOLATILE
RETURN (SELECT md5(string_agg(r, E'\n' ORDER BY r)) FROM (
            SELECT 'i' || x::text AS r FROM subbilling.invoices x
  UNION ALL SELECT 'l' || x::text FROM subbilling.invoice_lines x
  UNION ALL SELECT 's' || x::text FROM subbilling.invoice_series x) q);
CREATE FUNCTION pg_temp.refused(stmt text, state text, msg text, descr text) RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    before text := pg_temp.snap();
BEGIN
    RETURN NEXT throws_ok(stmt, state, msg, descr);
    RETURN NEXT is(pg_temp.snap(), before, descr || ': nothing changed');
END
$$;

SELECT pg_temp.account('g');
SELECT subscribe(pg_temp.acct('g'), 'b_m300', 1, '2024-01-01');
SELECT run_billing('2024-01-01');
CREATE TEMP TABLE inv AS SELECT * FROM invoices WHERE account_id = pg_temp.acct('g');
SELECT is((SELECT number FROM inv), '2024-000001', 'the invoice is issued as 2024-000001');

SELECT * FROM pg_temp.refused($$ UPDATE invoices SET net = '1.00 SEK', tax = '0.25 SEK', total = '1.25 SEK' WHERE id = (SELECT id FROM inv) $$,
    '55000', 'invoice 2024-000001 is issued and cannot be altered', 'an issued invoice''s amounts cannot change');
SELECT * FROM pg_temp.refused($$ UPDATE invoices SET number = '2024-000099' WHERE id = (SELECT id FROM inv) $$,
    '55000', 'invoice 2024-000001 is issued and cannot be altered', 'an issued invoice''s number cannot change');
SELECT * FROM pg_temp.refused($$ UPDATE invoices SET due_date = due_date + 10 WHERE id = (SELECT id FROM inv) $$,
    '55000', 'invoice 2024-000001 is issued and cannot be altered', 'an issued invoice''s due date cannot change');
SELECT * FROM pg_temp.refused($$ DELETE FROM invoices WHERE id = (SELECT id FROM inv) $$,
    '55000', 'invoice 2024-000001 is issued and cannot be deleted', 'an issued invoice cannot be deleted');
SELECT * FROM pg_temp.refused($$ UPDATE invoice_lines SET description = 'changed' WHERE invoice_id = (SELECT id FROM inv) $$,
    '55000', 'the lines of invoice 2024-000001 are issued and cannot be altered', 'the lines of an issued invoice cannot change');
SELECT * FROM pg_temp.refused($$ DELETE FROM invoice_lines WHERE invoice_id = (SELECT id FROM inv) $$,
    '55000', 'the lines of invoice 2024-000001 are issued and cannot be deleted', 'the lines of an issued invoice cannot be deleted');
SELECT * FROM pg_temp.refused(
    $$ INSERT INTO invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
       SELECT account_id, id, 'fee', 'sneaked in', '10.00 SEK', 25, '2.50 SEK' FROM inv $$,
    '23000', 'the totals of invoice 2024-000001 are not the sum of its lines', 'a line added to an issued invoice breaks its totals and is refused');
SELECT * FROM pg_temp.refused($$ UPDATE invoices SET status = 'draft', number = NULL, number_seq = NULL WHERE id = (SELECT id FROM inv) $$,
    '55000', NULL, 'an issued invoice does not go back to draft');

-- the status moves forward
SELECT lives_ok($$ UPDATE invoices SET status = 'paid', paid_at = '2024-01-20' WHERE id = (SELECT id FROM inv) $$,
    'open -> paid');
SELECT * FROM pg_temp.refused($$ UPDATE invoices SET status = 'open', paid_at = NULL WHERE id = (SELECT id FROM inv) $$,
    '55000', 'invoice 2024-000001 cannot go from paid to open', 'paid -> open is refused');
SELECT * FROM pg_temp.refused($$ UPDATE invoices SET status = 'void', paid_at = NULL, voided_at = now() WHERE id = (SELECT id FROM inv) $$,
    '55000', 'invoice 2024-000001 cannot go from paid to void', 'paid -> void is refused');

-- a draft can be edited, deleted and finalised
INSERT INTO invoices (account_id, subscription_id, currency, net, tax, total)
VALUES (pg_temp.acct('g'), pg_temp.sub('g'), 'SEK', '0.00 SEK', '0.00 SEK', '0.00 SEK');
CREATE TEMP TABLE draft AS SELECT * FROM invoices WHERE status = 'draft';
INSERT INTO invoice_lines (account_id, invoice_id, subscription_id, kind, description, quantity, unit_price, net, tax_rate, tax)
SELECT account_id, id, subscription_id, 'fee', 'Installation', 2, '40.00 SEK'::price, '80.00 SEK'::price, 25, '20.00 SEK'::price FROM draft
UNION ALL
SELECT account_id, id, subscription_id, 'fee', 'Cables', 1, '10.00 SEK', '10.00 SEK', 25, '2.50 SEK' FROM draft;
SELECT lives_ok($$ UPDATE invoice_lines SET description = 'Cables, 5 m' WHERE invoice_id = (SELECT id FROM draft) AND description = 'Cables' $$,
    'a draft''s lines can be edited');
SELECT lives_ok($$ DELETE FROM invoice_lines WHERE invoice_id = (SELECT id FROM draft) AND description = 'Cables, 5 m' $$,
    'a draft''s lines can be deleted');
SELECT is(finalize_invoice((SELECT id FROM draft)), (SELECT id FROM draft), 'finalize_invoice numbers a draft');
SELECT results_eq($$ SELECT status, number, net::text, tax::text, total::text, due_date - issue_date FROM invoices WHERE id = (SELECT id FROM draft) $$,
    $$ VALUES ('open', to_char(current_date, 'YYYY') || '-000001', '80.00 SEK', '20.00 SEK', '100.00 SEK', 30) $$,
    'finalised: totals from the lines, the next number of this year''s series, due after the payment terms');
SELECT ok((SELECT reference = ocr_reference(id::text) FROM invoices WHERE id = (SELECT id FROM draft)),
          'finalised: an OCR reference for the Swedish account');
SELECT is((SELECT payload->>'number' FROM events WHERE invoice_id = (SELECT id FROM draft) AND type = 'invoice.finalized'),
          to_char(current_date, 'YYYY') || '-000001', 'finalised: event invoice.finalized');
SELECT throws_ok($$ SELECT finalize_invoice((SELECT id FROM draft)) $$, '55000', NULL, 'finalize_invoice: only drafts');
SELECT throws_ok($$ SELECT finalize_invoice(-1) $$, '42704', 'invoice -1 does not exist', 'finalize_invoice: unknown invoice');

INSERT INTO invoices (account_id, subscription_id, currency, net, tax, total)
VALUES (pg_temp.acct('g'), pg_temp.sub('g'), 'SEK', '0.00 SEK', '0.00 SEK', '0.00 SEK');
SELECT lives_ok($$ DELETE FROM invoices WHERE status = 'draft' $$, 'a draft can be deleted');
SELECT throws_ok($$ INSERT INTO invoices (account_id, currency, status, net, tax, total)
                    VALUES (pg_temp.acct('g'), 'SEK', 'open', '0.00 SEK', '0.00 SEK', '0.00 SEK') $$,
    '23514', NULL, 'an issued invoice without number, dates and reference is refused');

SELECT * FROM finish();
ROLLBACK;
