-- The default policy on a Swedish invoice, day by day: overdue notice,
-- reminder +10 with the 60 SEK fee, reminder +20 with fee and interest,
-- payment stop +30 (subscription suspended), collection +45 with interest;
-- every step once; paying the invoice and all its fee invoices lifts the stop.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(44);

SELECT pg_temp.account('s1') AS s1_id \gset
CREATE TEMP TABLE s1 AS SELECT pg_temp.invoice('s1', '300.00 SEK', '2024-01-01') AS inv;
CREATE FUNCTION pg_temp.inv() RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT inv FROM s1);
SELECT results_eq($$ SELECT total::text, due_date, status FROM invoices WHERE id = pg_temp.inv() $$,
                  $$ VALUES ('375.00 SEK', '2024-01-31'::date, 'open') $$, 'invoice of 375.00 SEK due 2024-01-31');
SELECT is((SELECT dunning_policy_id FROM accounts WHERE id = pg_temp.acct('s1')), NULL, 'the account names no policy');

-- due today is not overdue
SELECT is(run_dunning('2024-01-31'), 0, '2024-01-31: due today, nothing to do');

-- day 1: overdue notice
SELECT is(run_dunning('2024-02-01'), 1, '2024-02-01: one step (the overdue notice)');
SELECT results_eq($$ SELECT * FROM pg_temp.steps(pg_temp.inv()) $$,
                  $$ VALUES (0, 'overdue', '2024-02-01'::date, '375.00 SEK', NULL::text, NULL::text, NULL::text) $$,
                  'step 0: overdue, 375.00 SEK open');
SELECT results_eq($$ SELECT type, payload->>'days_overdue', payload->>'open_amount', payload->>'due_date'
                       FROM events WHERE invoice_id = pg_temp.inv() AND type = 'invoice.overdue' $$,
                  $$ VALUES ('invoice.overdue', '1', '375.00 SEK', '2024-01-31') $$, 'event invoice.overdue');
SELECT is(run_dunning('2024-02-05'), 0, 'the notice is given once');
SELECT is(run_dunning('2024-02-09'), 0, '2024-02-09: the first reminder is not due yet');

-- day 10: first reminder with the Swedish standard fee
CREATE TEMP TABLE ev10 AS SELECT pg_temp.last_event() AS id;
SELECT is(run_dunning('2024-02-10'), 1, '2024-02-10: one step (first reminder)');
SELECT results_eq($$ SELECT * FROM pg_temp.steps(pg_temp.inv()) WHERE step_no = 1 $$,
                  $$ VALUES (1, 'reminder', '2024-02-10'::date, '375.00 SEK', '60.00 SEK', NULL::text, '60.00 SEK') $$,
                  'step 1: reminder with a 60.00 SEK fee');
SELECT results_eq(
    $$ SELECT kind, status, net::text, tax::text, total::text, issue_date, due_date, subscription_id, reason
         FROM invoices WHERE id = pg_temp.fee_invoice(pg_temp.inv(), 1) $$,
    $$ SELECT 'invoice', 'open', '60.00 SEK', '0.00 SEK', '60.00 SEK', '2024-02-10'::date, '2024-02-20'::date,
              pg_temp.sub('s1'), 'First reminder for invoice ' || (SELECT number FROM invoices WHERE id = pg_temp.inv()) $$,
    'the fee invoice: 60.00 SEK without VAT, issued on the dunning date, due 10 days later, naming the invoice');
SELECT results_eq($$ SELECT kind, description, quantity, unit_price::text, net::text, tax_rate, tax::text
                       FROM invoice_lines WHERE invoice_id = pg_temp.fee_invoice(pg_temp.inv(), 1) $$,
                  $$ SELECT 'fee', 'First reminder fee, invoice ' || (SELECT number FROM invoices WHERE id = pg_temp.inv()),
                            1::numeric, '60.00 SEK', '60.00 SEK', 0::numeric, '0.00 SEK' $$,
                  'one fee line, VAT rate 0');
SELECT ok((SELECT number IS NOT NULL AND reference = ocr_reference(id::text) FROM invoices WHERE id = pg_temp.fee_invoice(pg_temp.inv(), 1)),
          'the fee invoice is numbered and has its own OCR reference');
SELECT is((SELECT invoice_open_amount(account_id, id)::text FROM invoices WHERE id = pg_temp.fee_invoice(pg_temp.inv(), 1)),
          '60.00 SEK', 'the fee invoice is booked: 60.00 SEK receivable');
SELECT results_eq($$ SELECT type, invoice_id FROM pg_temp.events_since('s1', (SELECT id FROM ev10)) $$,
                  $$ VALUES ('invoice.finalized', pg_temp.fee_invoice(pg_temp.inv(), 1)),
                            ('dunning.reminder', pg_temp.inv()) $$,
                  'events: the fee invoice is finalised, then dunning.reminder on the invoice');
SELECT results_eq($$ SELECT payload->>'step_no', payload->>'fee', payload->>'fee_invoice_id', payload->>'fee_invoice_due_date',
                            payload->>'policy', payload->>'days_overdue'
                       FROM events WHERE invoice_id = pg_temp.inv() AND type = 'dunning.reminder' $$,
                  $$ VALUES ('1', '60.00 SEK', pg_temp.fee_invoice(pg_temp.inv(), 1)::text, '2024-02-20', 'default', '10') $$,
                  'dunning.reminder names step, fee, fee invoice, its due date and the policy');
SELECT is(run_dunning('2024-02-10'), 0, 'running again the same day takes nothing');
SELECT is(run_dunning('2024-02-19'), 0, 'nor before the next step is due');
SELECT is((SELECT count(*) FROM invoices WHERE account_id = pg_temp.acct('s1')), 2::bigint, 'still one fee invoice');

-- day 20: second reminder with fee and 20 days of interest at 4.00 + 8 %
SELECT is(run_dunning('2024-02-20'), 1, '2024-02-20: second reminder');
SELECT results_eq($$ SELECT * FROM pg_temp.steps(pg_temp.inv()) WHERE step_no = 2 $$,
                  $$ VALUES (2, 'reminder', '2024-02-20'::date, '375.00 SEK', '60.00 SEK', '2.47 SEK', '62.47 SEK') $$,
                  'step 2: fee 60.00 SEK and interest 375.00 * 12 % * 20 / 365 = 2.47 SEK on one fee invoice');
SELECT results_eq($$ SELECT interest_period, interest_rate_days FROM dunning_actions WHERE invoice_id = pg_temp.inv() AND step_no = 2 $$,
                  $$ VALUES ('[2024-02-01,2024-02-21)'::daterange, 240.00) $$, 'interest for 2024-02-01 to 2024-02-20');
SELECT results_eq($$ SELECT description, period, net::text, tax_rate FROM invoice_lines
                      WHERE invoice_id = pg_temp.fee_invoice(pg_temp.inv(), 2) ORDER BY id $$,
                  $$ SELECT 'Second reminder fee, invoice ' || n, NULL::daterange, '60.00 SEK', 0::numeric FROM (SELECT number n FROM invoices WHERE id = pg_temp.inv()) x
                     UNION ALL
                     SELECT 'Late-payment interest on 375.00 SEK, invoice ' || n || ', 2024-02-01 – 2024-02-20 (20 days at 12% a year)',
                            '[2024-02-01,2024-02-21)'::daterange, '2.47 SEK', 0::numeric FROM (SELECT number n FROM invoices WHERE id = pg_temp.inv()) x $$,
                  'the fee line and the interest line with its period and rate');
SELECT results_eq($$ SELECT l.ledger_code, sum(l.amount)::text FROM journal_lines l
                       JOIN journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
                      WHERE e.invoice_id = pg_temp.fee_invoice(pg_temp.inv(), 2) GROUP BY l.ledger_code ORDER BY l.ledger_code $$,
                  $$ VALUES ('1510', '62.47 SEK'), ('3930', '-60.00 SEK'), ('8313', '-2.47 SEK') $$,
                  'booked: receivables 62.47, reminder fees (3930) 60.00, interest income (8313) 2.47');

-- day 30: payment stop
CREATE TEMP TABLE ev30 AS SELECT pg_temp.last_event() AS id;
SELECT is(run_dunning('2024-03-01'), 1, '2024-03-01: payment stop');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('s1')), 'suspended', 'the subscription is suspended');
SELECT results_eq($$ SELECT * FROM pg_temp.steps(pg_temp.inv()) WHERE step_no = 3 $$,
                  $$ VALUES (3, 'payment_stop', '2024-03-01'::date, '375.00 SEK', NULL::text, NULL::text, NULL::text) $$,
                  'step 3: payment stop, no fee');
SELECT is((SELECT subscription_id FROM dunning_actions WHERE invoice_id = pg_temp.inv() AND step_no = 3), pg_temp.sub('s1'),
          'the stop holds the subscription');
SELECT results_eq($$ SELECT type, invoice_id FROM pg_temp.events_since('s1', (SELECT id FROM ev30)) $$,
                  $$ VALUES ('subscription.suspended', NULL::bigint), ('dunning.payment_stop', pg_temp.inv()) $$,
                  'events subscription.suspended and dunning.payment_stop');

-- day 45: collection with 25 more days of interest
SELECT is(run_dunning('2024-03-15'), 0, '2024-03-15: nothing');
SELECT is(run_dunning('2024-03-16'), 1, '2024-03-16: collection');
SELECT results_eq($$ SELECT * FROM pg_temp.steps(pg_temp.inv()) WHERE step_no = 4 $$,
                  $$ VALUES (4, 'collection', '2024-03-16'::date, '375.00 SEK', NULL::text, '3.08 SEK', '3.08 SEK') $$,
                  'step 4: interest since the last charge, 2024-02-21 to 2024-03-16: 375.00 * 12 % * 25 / 365 = 3.08 SEK');
SELECT results_eq(
    $$ SELECT payload->>'open_amount', payload->'customer'->>'external_id', payload->>'interest',
              jsonb_array_length(payload->'open_fee_invoices'), payload->>'reference'
         FROM events WHERE invoice_id = pg_temp.inv() AND type = 'dunning.collection' $$,
    $$ SELECT '375.00 SEK', 's1', '3.08 SEK', 2, reference FROM invoices WHERE id = pg_temp.inv() $$,
    'dunning.collection hands over the claim: open amount, customer, reference, the open fee invoices');
SELECT is(run_dunning('2024-12-31'), 0, 'the policy has no more steps');
SELECT is((SELECT count(*) FROM dunning_actions WHERE invoice_id = pg_temp.inv()), 5::bigint, 'five actions, each once');

-- paying: the invoice alone does not lift the stop, its fees too do
SELECT lives_ok($$ SELECT pg_temp.pay_all(pg_temp.inv(), '2024-03-20') $$, 'the invoice is paid');
SELECT is((SELECT status FROM invoices WHERE id = pg_temp.inv()), 'paid', 'status paid');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('s1')), 'suspended', 'still suspended: the fees are open');
SELECT lives_ok($$ SELECT pg_temp.pay_all(pg_temp.fee_invoice(pg_temp.inv(), 1), '2024-03-21');
                   SELECT pg_temp.pay_all(pg_temp.fee_invoice(pg_temp.inv(), 2), '2024-03-21') $$,
                'two of the three fee invoices are paid');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('s1')), 'suspended', 'still suspended: one fee invoice is open');
CREATE TEMP TABLE evl AS SELECT pg_temp.last_event() AS id;
SELECT lives_ok($$ SELECT pg_temp.pay_all(pg_temp.fee_invoice(pg_temp.inv(), 4), '2024-03-22') $$, 'the last fee invoice is paid');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('s1')), 'active', 'the payment stop is lifted: active again');
SELECT results_eq($$ SELECT type FROM pg_temp.events_since('s1', (SELECT id FROM evl)) WHERE type LIKE 'dunning.%' OR type LIKE 'subscription.%' $$,
                  $$ VALUES ('subscription.reactivated'), ('dunning.payment_stop_lifted') $$,
                  'events subscription.reactivated and dunning.payment_stop_lifted');
SELECT ok((SELECT lifted_at IS NOT NULL FROM dunning_actions WHERE invoice_id = pg_temp.inv() AND step_no = 3),
          'the stop is marked lifted');

SELECT * FROM finish();
ROLLBACK;
