-- Collection and write-off: the write-off books the invoice's open amount
-- and that of its open fee invoices from receivables (1510) to bad debts
-- (6351), marks them uncollectible, and raises dunning.write_off.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(17);

INSERT INTO dunning_policies (code, name) VALUES ('w_full', 'With write-off');
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, charge_interest)
SELECT id, v.step_no, v.days, v.action, v.fee_kind, v.interest
  FROM dunning_policies,
       (VALUES (1, 10, 'reminder', 'country', false), (2, 20, 'collection', 'none', true),
               (3, 60, 'write_off', 'none', false)) v(step_no, days, action, fee_kind, interest)
 WHERE code = 'w_full';
SELECT pg_temp.account('w1', 'SE', 'SEK', 'w_full') AS w1 \gset
CREATE TEMP TABLE w AS SELECT pg_temp.invoice('w1', '300.00 SEK', '2024-01-01') AS inv;
CREATE FUNCTION pg_temp.inv() RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT inv FROM w);

SELECT is(run_dunning('2024-02-10'), 2, '2024-02-10: notice and reminder');
SELECT is(run_dunning('2024-02-20'), 1, '2024-02-20: collection');
SELECT lives_ok($$ SELECT pg_temp.pay(pg_temp.fee_invoice(pg_temp.inv(), 1), '20.00 SEK', '2024-03-01') $$,
                '20.00 SEK of the 60.00 SEK reminder fee is paid');
SELECT is(run_dunning('2024-03-30'), 0, 'the write-off is due on day 60');
CREATE TEMP TABLE ev AS SELECT pg_temp.last_event() AS id;
SELECT is(run_dunning('2024-03-31'), 1, '2024-03-31: write-off');
SELECT results_eq($$ SELECT step_no, action, executed_on, open_amount::text, written_off::text, fee, interest
                       FROM dunning_actions WHERE invoice_id = pg_temp.inv() AND step_no = 3 $$,
                  $$ VALUES (3, 'write_off', '2024-03-31'::date, '375.00 SEK', '417.47 SEK', NULL::price, NULL::price) $$,
                  'written off: 375.00 + the 40.00 left of the fee + the 2.47 interest = 417.47 SEK');
SELECT results_eq($$ SELECT id = pg_temp.inv(), status FROM invoices WHERE account_id = pg_temp.acct('w1') ORDER BY id $$,
                  $$ VALUES (true, 'uncollectible'), (false, 'uncollectible'), (false, 'uncollectible') $$,
                  'the invoice and both fee invoices are uncollectible');
SELECT results_eq($$ SELECT invoice_open_amount(account_id, id)::text FROM invoices WHERE account_id = pg_temp.acct('w1') ORDER BY id $$,
                  $$ VALUES ('0.00 SEK'), ('0.00 SEK'), ('0.00 SEK') $$, 'nothing is receivable any more');
SELECT results_eq($$ SELECT e.invoice_id = pg_temp.inv(), e.booked_on, l.ledger_code, l.amount::text
                       FROM journal_entries e JOIN journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
                      WHERE e.account_id = pg_temp.acct('w1') AND e.kind = 'write_off'
                      ORDER BY e.id, l.ledger_code $$,
                  $$ VALUES (true,  '2024-03-31'::date, '1510', '-375.00 SEK'), (true,  '2024-03-31', '6351', '375.00 SEK'),
                            (false, '2024-03-31', '1510', '-40.00 SEK'),  (false, '2024-03-31', '6351', '40.00 SEK'),
                            (false, '2024-03-31', '1510', '-2.47 SEK'),   (false, '2024-03-31', '6351', '2.47 SEK') $$,
                  'booked per document: debit bad debts 6351, credit receivables 1510');
SELECT is(account_balance(pg_temp.acct('w1'))::text, '0.00 SEK', 'the account owes nothing in the ledger');
SELECT results_eq($$ SELECT type, invoice_id FROM pg_temp.events_since('w1', (SELECT id FROM ev)) $$,
                  $$ VALUES ('dunning.write_off', pg_temp.inv()) $$, 'event dunning.write_off');
SELECT results_eq($$ SELECT payload->>'written_off', payload->'fee_invoices_written_off'
                       FROM events WHERE type = 'dunning.write_off' AND invoice_id = pg_temp.inv() $$,
                  $$ VALUES ('417.47 SEK', jsonb_build_array(pg_temp.fee_invoice(pg_temp.inv(), 1), pg_temp.fee_invoice(pg_temp.inv(), 2))) $$,
                  'the event names the amount and the fee invoices written off');
SELECT is(run_dunning('2024-12-31'), 0, 'nothing more: the invoice is no longer open');
SELECT results_eq($$ SELECT count(*), count(DISTINCT step_no) FROM dunning_actions WHERE invoice_id = pg_temp.inv() $$,
                  $$ VALUES (4::bigint, 4::bigint) $$, 'four steps, each once');

-- the collection step handed over what was open at that time
SELECT results_eq($$ SELECT payload->>'open_amount', payload->>'interest', payload->'open_fee_invoices'->0->>'total',
                            payload->'customer'->>'name'
                       FROM events WHERE type = 'dunning.collection' AND invoice_id = pg_temp.inv() $$,
                  $$ VALUES ('375.00 SEK', '2.47 SEK', '60.00 SEK', 'Customer w1') $$,
                  'dunning.collection: open amount, interest, the open fee invoice, the customer');

-- actions are history
SELECT throws_ok($$ UPDATE dunning_actions SET fee = NULL WHERE invoice_id = pg_temp.inv() AND step_no = 1 $$,
                 '55000', 'dunning actions are history and cannot be altered', 'an action cannot be altered');
SELECT throws_ok($$ DELETE FROM dunning_actions WHERE invoice_id = pg_temp.inv() $$,
                 '55000', 'dunning actions are history and cannot be deleted', 'nor deleted');

SELECT * FROM finish();
ROLLBACK;
