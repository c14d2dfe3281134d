-- Dunning and payments: a paid invoice gets no step and no fee; a partial
-- payment lowers the amount that interest runs on; a fully credited
-- invoice is not dunned; payment stops of two invoices hold one
-- subscription until both are paid; a stop neither suspends nor lifts a
-- subscription dunning did not suspend.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(37);

-- ---------------------------------------------------------------- paid, partly paid, credited
SELECT pg_temp.account('p1') AS p1 \gset
SELECT pg_temp.account('p2') AS p2 \gset
SELECT pg_temp.account('p3') AS p3 \gset
SELECT pg_temp.account('p4') AS p4 \gset
CREATE TEMP TABLE p AS
SELECT pg_temp.invoice('p1', '300.00 SEK', '2025-01-01') AS p1, pg_temp.invoice('p2', '300.00 SEK', '2025-01-01') AS p2,
       pg_temp.invoice('p3', '800.00 SEK', '2025-01-01') AS p3, pg_temp.invoice('p4', '300.00 SEK', '2025-01-01') AS p4;
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT p1 FROM p), '2025-01-20') $$, 'p1 pays in time');
SELECT lives_ok($$ SELECT credit_invoice((SELECT p4 FROM p), NULL, 'goodwill') $$,
                'p4 is credited in full');
SELECT is((SELECT status FROM invoices WHERE id = (SELECT p4 FROM p)), 'paid', 'the credit note settles p4');

SELECT is(run_dunning('2025-02-01'), 2, '2025-02-01: overdue notices for p2 and p3 only');
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT p2 FROM p), '2025-02-05') $$, 'p2 pays after the notice');
SELECT lives_ok($$ SELECT pg_temp.pay((SELECT p3 FROM p), '400.00 SEK', '2025-02-05') $$, 'p3 pays 400.00 of 1000.00 SEK');
SELECT is(run_dunning('2025-02-10'), 1, '2025-02-10: one reminder (p3)');
SELECT is(run_dunning('2025-02-20'), 1, '2025-02-20: one reminder (p3)');
SELECT results_eq($$ SELECT * FROM pg_temp.steps((SELECT p3 FROM p)) $$,
    $$ VALUES (0, 'overdue',  '2025-02-01'::date, '1000.00 SEK', NULL::text, NULL::text, NULL::text),
              (1, 'reminder', '2025-02-10',       '600.00 SEK',  '60.00 SEK', NULL,      '60.00 SEK'),
              (2, 'reminder', '2025-02-20',       '600.00 SEK',  '60.00 SEK', '3.62 SEK', '63.62 SEK') $$,
    'p3: reminders on the 600.00 SEK left; interest 600.00 * (3.00 + 8) % * 20 / 365 = 3.6164 = 3.62 SEK');
SELECT is((SELECT count(*) FROM dunning_actions WHERE invoice_id IN (SELECT p1 FROM p UNION ALL SELECT p4 FROM p)), 0::bigint,
          'the invoice paid in time and the credited one get nothing');
SELECT results_eq($$ SELECT step_no FROM dunning_actions WHERE invoice_id = (SELECT p2 FROM p) $$, $$ VALUES (0) $$,
                  'the invoice paid after its notice gets nothing more');
SELECT is((SELECT count(*) FROM invoices WHERE account_id IN (pg_temp.acct('p1'), pg_temp.acct('p2'))), 2::bigint,
          'no fee invoice for a paid invoice');
SELECT is((SELECT count(*) FROM events WHERE account_id IN (pg_temp.acct('p1'), pg_temp.acct('p2'), pg_temp.acct('p4'))
                                       AND type LIKE 'dunning.%'), 0::bigint, 'and no dunning event');
-- p3 pays the rest before its payment stop: no stop, the fees stay due
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT p3 FROM p), '2025-02-25') $$, 'p3 pays the rest');
SELECT is(run_dunning('2025-03-02'), 0, '2025-03-02: no payment stop for the paid invoice');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('p3')), 'active', 'p3 stays active');
SELECT results_eq($$ SELECT status, count(*) FROM invoices WHERE account_id = pg_temp.acct('p3') AND id <> (SELECT p3 FROM p) GROUP BY status $$,
                  $$ VALUES ('open', 2::bigint) $$, 'its two fee invoices are still due (they were charged while it was unpaid)');
SELECT is(run_dunning('2025-06-30'), 0, 'fee invoices are not dunned themselves');
SELECT pg_temp.done('p1'); SELECT pg_temp.done('p2'); SELECT pg_temp.done('p3'); SELECT pg_temp.done('p4');

-- ---------------------------------------------------------------- two stops, one subscription
INSERT INTO dunning_policies (code, name) VALUES ('q_stop', 'Stop the next day');
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action)
SELECT id, 1, 1, 'payment_stop' FROM dunning_policies WHERE code = 'q_stop';
SELECT pg_temp.account('q1', 'SE', 'SEK', 'q_stop') AS q1 \gset
CREATE TEMP TABLE q AS SELECT pg_temp.invoice('q1', '300.00 SEK', '2025-07-01') AS a;
SELECT is(run_dunning('2025-08-01'), 2, '2025-08-01: invoice A overdue and stopped');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('q1')), 'suspended', 'suspended by A''s stop');
ALTER TABLE q ADD COLUMN b bigint;
UPDATE q SET b = pg_temp.invoice('q1', '300.00 SEK', '2025-08-01');
SELECT is(run_dunning('2025-09-01'), 2, '2025-09-01: invoice B overdue and stopped');
SELECT results_eq($$ SELECT subscription_id, (SELECT payload->>'note' FROM events WHERE id = event_id)
                       FROM dunning_actions WHERE invoice_id = (SELECT b FROM q) AND step_no = 1 $$,
                  $$ VALUES (pg_temp.sub('q1'), 'the subscription was already suspended by a payment stop') $$,
                  'B''s stop joins A''s');
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT a FROM q), '2025-09-02') $$, 'A is paid');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('q1')), 'suspended', 'still suspended: B''s stop holds it');
SELECT results_eq($$ SELECT payload->>'status', payload->'still_stopped_by' FROM events
                      WHERE type = 'dunning.payment_stop_lifted' AND invoice_id = (SELECT a FROM q) $$,
                  $$ SELECT 'suspended', jsonb_build_array(b) FROM q $$,
                  'A''s stop is lifted, naming B''s that still holds');
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT b FROM q), '2025-09-03') $$, 'B is paid');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('q1')), 'active', 'no stop left: active');
SELECT pg_temp.done('q1');

-- ---------------------------------------------------------------- stops dunning does not own
SELECT pg_temp.account('q2', 'SE', 'SEK', 'q_stop') AS q2 \gset
SELECT pg_temp.account('q3', 'SE', 'SEK', 'q_stop') AS q3 \gset
CREATE TEMP TABLE q23 AS
SELECT pg_temp.invoice('q2', '300.00 SEK', '2025-10-01') AS c, pg_temp.invoice('q3', '300.00 SEK', '2025-10-01', false) AS d;
SELECT set_subscription_status(pg_temp.sub('q2'), 'suspended', 'by hand') AS q2_status \gset
SELECT is(run_dunning('2025-11-01'), 4, '2025-11-01: two notices and two stops');
SELECT results_eq($$ SELECT d.invoice_id = (SELECT c FROM q23), d.subscription_id, e.payload->>'suspended', e.payload->>'note'
                       FROM dunning_actions d JOIN events e ON e.account_id = d.account_id AND e.id = d.event_id
                      WHERE d.invoice_id IN (SELECT c FROM q23 UNION ALL SELECT d FROM q23) AND d.step_no = 1 ORDER BY d.invoice_id $$,
                  $$ VALUES (true, NULL::bigint, 'false', 'the subscription is already suspended, not by dunning: it is not lifted by dunning either'),
                            (false, NULL, 'false', 'the invoice has no subscription') $$,
                  'a stop on a subscription suspended by hand, and on an invoice without subscription: recorded, nothing held');
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT c FROM q23), '2025-11-02') $$, 'C is paid');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('q2')), 'suspended', 'the suspension by hand stays');
SELECT is((SELECT count(*) FROM events WHERE account_id = pg_temp.acct('q2') AND type = 'dunning.payment_stop_lifted'), 0::bigint,
          'no lift event');
SELECT pg_temp.done('q2'); SELECT pg_temp.done('q3');

-- ---------------------------------------------------------------- a payment on its way
-- Paid on 2025-12-09, registered only after the reminder of 2025-12-11:
-- nothing was owed when the fee was charged, so the fee invoice is voided.
SELECT pg_temp.account('p5') AS p5 \gset
CREATE TEMP TABLE p5 AS SELECT pg_temp.invoice('p5', '300.00 SEK', '2025-11-01') AS inv;
SELECT is(run_dunning('2025-12-11'), 2, '2025-12-11: notice and reminder with fee');
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT inv FROM p5), '2025-12-09') $$, 'a payment received on 2025-12-09 is registered');
SELECT results_eq($$ SELECT status, voided_at IS NOT NULL FROM invoices WHERE id = pg_temp.fee_invoice((SELECT inv FROM p5), 1) $$,
                  $$ VALUES ('void', true) $$, 'the fee invoice of the later reminder is voided');
SELECT is((SELECT payload->>'reason' FROM events WHERE type = 'invoice.voided' AND invoice_id = pg_temp.fee_invoice((SELECT inv FROM p5), 1)),
          'dunning fee voided: invoice ' || (SELECT number FROM invoices WHERE id = (SELECT inv FROM p5)) || ' was paid on 2025-12-09, before the step',
          'event invoice.voided says why');
SELECT is(account_balance(pg_temp.acct('p5'))::text, '0.00 SEK', 'its booking is reversed: the account owes nothing');

SELECT * FROM finish();
ROLLBACK;
