-- Dunning rules with exact dates and amounts: a late first run keeps the
-- spacing between steps; an account's own policy; fixed fees capped by the
-- country; no fee in a currency the cap does not cover; no rules outside
-- the Nordic countries; Norway's day-14 rule and at most two fees.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(32);

-- ---------------------------------------------------------------- catch-up keeps the spacing
-- Invoice due 2024-05-01; dunning first runs on 2024-06-15 (45 days late):
-- the notice and the first reminder then, each later step as far after
-- the previous one as the policy spaces them (10, 10, 15 days).
SELECT pg_temp.account('r1') AS r1 \gset
CREATE TEMP TABLE r1 AS SELECT pg_temp.invoice('r1', '300.00 SEK', '2024-04-01') AS inv;
SELECT is(run_dunning('2024-06-15'), 2, 'first run 45 days late: the notice and the first reminder only');
SELECT is(run_dunning('2024-06-24'), 0, 'the second reminder waits 10 days after the first');
SELECT is(run_dunning('2024-06-25'), 1, '2024-06-25: second reminder');
SELECT is(run_dunning('2024-07-04'), 0, 'the payment stop waits 10 more days');
SELECT is(run_dunning('2024-07-05'), 1, '2024-07-05: payment stop');
SELECT is(run_dunning('2024-07-20'), 1, '2024-07-20: collection, 15 days later');
SELECT results_eq($$ SELECT * FROM pg_temp.steps((SELECT inv FROM r1)) $$,
    $$ VALUES (0, 'overdue',      '2024-06-15'::date, '375.00 SEK', NULL::text,  NULL::text, NULL::text),
              (1, 'reminder',     '2024-06-15',       '375.00 SEK', '60.00 SEK', NULL,       '60.00 SEK'),
              (2, 'reminder',     '2024-06-25',       '375.00 SEK', '60.00 SEK', '6.78 SEK', '66.78 SEK'),
              (3, 'payment_stop', '2024-07-05',       '375.00 SEK', NULL,        NULL,       NULL),
              (4, 'collection',   '2024-07-20',       '375.00 SEK', NULL,        '3.08 SEK', '3.08 SEK') $$,
    'the steps and amounts: interest 375.00 * 12 % * 55 / 365 = 6.78, then * 25 / 365 = 3.08');
SELECT pg_temp.done('r1');

-- ---------------------------------------------------------------- own policy, fixed fees, caps
INSERT INTO dunning_policies (code, name, fee_terms_days) VALUES ('r_own', 'Own', 14);
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, fees, charge_interest, description)
SELECT id, 1, 5, 'reminder', 'fixed', '{"100.00 SEK","8.00 EUR"}'::price[], false, 'Reminder' FROM dunning_policies WHERE code = 'r_own'
UNION ALL
SELECT id, 2, 15, 'reminder', 'none', NULL, true, 'Interest notice' FROM dunning_policies WHERE code = 'r_own';
SELECT pg_temp.account('r2', 'SE', 'SEK', 'r_own') AS r2 \gset
SELECT pg_temp.account('r3', 'SE', 'EUR', 'r_own') AS r3 \gset
SELECT pg_temp.account('r4', 'DE', 'EUR', 'r_own') AS r4 \gset
CREATE TEMP TABLE r24 AS
SELECT pg_temp.invoice('r2', '300.00 SEK', '2024-08-01') AS r2, pg_temp.invoice('r3', '100.00 EUR', '2024-08-01') AS r3,
       pg_temp.invoice('r4', '100.00 EUR', '2024-08-01') AS r4;
SELECT is(run_dunning('2024-09-04'), 3, '2024-09-04: three overdue notices (due 2024-08-31)');
SELECT is(run_dunning('2024-09-05'), 3, '2024-09-05: three reminders of the own policy (+5), not the default''s');
SELECT results_eq($$ SELECT fee::text, fee_note, fee_invoice_id IS NOT NULL FROM dunning_actions WHERE invoice_id = (SELECT r2 FROM r24) AND step_no = 1 $$,
                  $$ VALUES ('60.00 SEK', 'capped at 60.00 SEK (country SE), the step asks 100.00 SEK', true) $$,
                  'SE in SEK: the 100.00 SEK fee is capped at 60.00 SEK');
SELECT results_eq($$ SELECT due_date - issue_date FROM invoices WHERE id = pg_temp.fee_invoice((SELECT r2 FROM r24), 1) $$,
                  $$ VALUES (14) $$, 'the own policy''s fee terms: 14 days');
SELECT results_eq($$ SELECT fee::text, fee_note, fee_invoice_id FROM dunning_actions WHERE invoice_id = (SELECT r3 FROM r24) AND step_no = 1 $$,
                  $$ VALUES (NULL::text, 'country SE caps reminder fees, but not in EUR', NULL::bigint) $$,
                  'SE in EUR: the cap has no EUR amount, so no fee and no fee invoice');
SELECT results_eq($$ SELECT payload->>'fee', payload->>'fee_note' FROM events WHERE invoice_id = (SELECT r3 FROM r24) AND type = 'dunning.reminder' $$,
                  $$ VALUES (NULL::text, 'country SE caps reminder fees, but not in EUR') $$,
                  'the reminder event says why there is no fee');
SELECT results_eq($$ SELECT fee::text, fee_note, (SELECT total::text FROM invoices WHERE id = fee_invoice_id)
                       FROM dunning_actions WHERE invoice_id = (SELECT r4 FROM r24) AND step_no = 1 $$,
                  $$ VALUES ('8.00 EUR', NULL::text, '8.00 EUR') $$, 'DE (no country rules): the step''s 8.00 EUR');
SELECT is(run_dunning('2024-09-15'), 3, '2024-09-15: the interest notices');
SELECT results_eq($$ SELECT d.invoice_id = (SELECT r2 FROM r24), d.interest::text, d.interest_rate_days, f.total::text
                       FROM dunning_actions d LEFT JOIN invoices f ON f.account_id = d.account_id AND f.id = d.fee_invoice_id
                      WHERE d.invoice_id IN (SELECT r2 FROM r24 UNION ALL SELECT r3 FROM r24) AND d.step_no = 2
                      ORDER BY d.invoice_id $$,
                  $$ VALUES (true, '1.85 SEK', 180.00, '1.85 SEK'), (false, '0.62 EUR', 180.00, '0.62 EUR') $$,
                  'SE: 15 days at 12 %: 375.00 SEK -> 1.85 SEK, 125.00 EUR -> 0.62 EUR (interest has no cap)');
SELECT results_eq($$ SELECT interest, fee_invoice_id FROM dunning_actions WHERE invoice_id = (SELECT r4 FROM r24) AND step_no = 2 $$,
                  $$ VALUES (NULL::price, NULL::bigint) $$, 'DE has no interest margin: no interest, no fee invoice');
SELECT is((SELECT count(*) FROM events WHERE invoice_id = (SELECT r4 FROM r24) AND type = 'dunning.reminder'), 2::bigint,
          'each step raises its event even without a fee');
SELECT pg_temp.done('r2'); SELECT pg_temp.done('r3'); SELECT pg_temp.done('r4');

-- ---------------------------------------------------------------- Norway
INSERT INTO dunning_policies (code, name) VALUES ('r_no3', 'Three fee reminders');
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind)
SELECT id, g, 14 * g, 'reminder', 'country' FROM dunning_policies, generate_series(1, 3) g WHERE code = 'r_no3';
SELECT pg_temp.account('r5', 'NO', 'NOK') AS r5 \gset
SELECT pg_temp.account('r6', 'NO', 'NOK', 'r_no3') AS r6 \gset
CREATE TEMP TABLE r56 AS
SELECT pg_temp.invoice('r5', '800.00 NOK', '2024-10-01') AS r5, pg_temp.invoice('r6', '800.00 NOK', '2024-10-01') AS r6;
SELECT results_eq($$ SELECT total::text, due_date FROM invoices WHERE id = (SELECT r5 FROM r56) $$,
                  $$ VALUES ('1000.00 NOK', '2024-10-31'::date) $$, 'NOK invoices of 1000.00 due 2024-10-31');
SELECT is(run_dunning('2024-11-01'), 2, '2024-11-01: two overdue notices');
SELECT is(run_dunning('2024-11-10'), 1, '2024-11-10: the default policy''s first reminder');
SELECT results_eq($$ SELECT fee, fee_note, fee_invoice_id FROM dunning_actions WHERE invoice_id = (SELECT r5 FROM r56) AND step_no = 1 $$,
                  $$ VALUES (NULL::price, 'country NO allows a reminder fee from day 14 after the due date, this is day 10', NULL::bigint) $$,
                  'Norway: no purregebyr on day 10');
SELECT is(run_dunning('2024-11-14'), 1, '2024-11-14: r6''s first reminder (day 14)');
SELECT is(run_dunning('2024-11-20'), 1, '2024-11-20: r5''s second reminder');
SELECT results_eq($$ SELECT * FROM pg_temp.steps((SELECT r5 FROM r56)) WHERE step_no = 2 $$,
                  $$ VALUES (2, 'reminder', '2024-11-20'::date, '1000.00 NOK', '35.00 NOK', '6.85 NOK', '41.85 NOK') $$,
                  'day 20: 35.00 NOK and interest 1000.00 * 12.5 % * 20 / 365 = 6.85 NOK');
SELECT is(run_dunning('2024-11-28'), 1, '2024-11-28: r6''s second reminder');
SELECT is(run_dunning('2024-12-12'), 2, '2024-12-12: r6''s third reminder and r5''s payment stop (due since 2024-11-30)');
SELECT results_eq($$ SELECT step_no, fee::text, fee_note FROM dunning_actions WHERE invoice_id = (SELECT r6 FROM r56) AND step_no > 0 ORDER BY step_no $$,
                  $$ VALUES (1, '35.00 NOK', NULL::text), (2, '35.00 NOK', NULL),
                            (3, NULL, 'country NO allows at most 2 reminder fees per invoice') $$,
                  'Norway: at most two purregebyr per claim');
SELECT is((SELECT count(*) FROM invoices WHERE account_id = pg_temp.acct('r6')), 3::bigint, 'r6: the invoice and two fee invoices');
SELECT pg_temp.done('r5'); SELECT pg_temp.done('r6');

-- ---------------------------------------------------------------- default policy changes apply
-- the default policy is whichever policy is marked default
UPDATE dunning_policies SET is_default = false WHERE code = 'default';
UPDATE dunning_policies SET is_default = true WHERE code = 'r_own';
SELECT pg_temp.account('r7') AS r7 \gset
CREATE TEMP TABLE r7 AS SELECT pg_temp.invoice('r7', '300.00 SEK', '2025-01-01') AS inv;
SELECT is(run_dunning('2025-02-05'), 2, 'an account without a policy follows the current default');
SELECT results_eq($$ SELECT action, policy_id FROM dunning_actions WHERE invoice_id = (SELECT inv FROM r7) ORDER BY step_no $$,
                  $$ VALUES ('overdue', NULL::bigint), ('reminder', (SELECT id FROM dunning_policies WHERE code = 'r_own')) $$,
                  'the action records the policy it followed');
SELECT is((SELECT count(*) FROM dunning_actions), 24::bigint, 'no other invoice got a step');

SELECT * FROM finish();
ROLLBACK;
