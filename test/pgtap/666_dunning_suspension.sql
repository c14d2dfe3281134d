-- A payment stop holds the subscription's recurring charges: no recurring
-- period is billed while it is suspended, the suspended days of a period
-- already invoiced are credited, and billing resumes, prorated, from the
-- day the payment that lifted the stop was received.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(17);

INSERT INTO dunning_policies (code, name) VALUES ('s_stop', 'Payment stop ten days after due');
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action)
SELECT id, 1, 10, 'payment_stop' FROM dunning_policies WHERE code = 's_stop';
SELECT pg_temp.account('s1', 'SE', 'SEK', 's_stop') AS s1 \gset
-- 300.00 SEK a month in advance, anchored on the 1st; 25 % VAT; 30 days to pay
SELECT subscribe(:s1, 'd_SEK', 1, '2025-01-01') AS sub \gset

SELECT is(run_billing('2025-01-01'), 1, 'January is invoiced on 2025-01-01 (due 2025-01-31)');
SELECT is(run_billing('2025-02-01'), 1, 'February is invoiced on 2025-02-01');
SELECT is(run_dunning('2025-02-10'), 2, '2025-02-10: January''s invoice overdue, and stopped (10 days after due)');
SELECT is((SELECT status FROM subscriptions WHERE id = :sub), 'suspended', 'the payment stop suspends the subscription');
SELECT results_eq($$ SELECT suspended_from, lifted_on FROM subscription_suspensions WHERE subscription_id = $$ || :sub,
                  $$ VALUES ('2025-02-10'::date, NULL::date) $$, 'suspended from the day of the stop, until further notice');

-- 2025-03-01, still suspended: March is not billed; February is credited
-- for its suspended days, 10 .. 28 February = 19 of 28 days:
--   kept 300.00 * 9 / 28 = 96.428... = 96.43, credited 300.00 - 96.43 = 203.57 (+ 25 % VAT 50.89 = 254.46)
SELECT is(run_billing('2025-03-01'), 1, '2025-03-01: one document (the credit for February), no March invoice');
SELECT results_eq($$ SELECT kind, total::text FROM invoices WHERE account_id = $$ || :s1 || $$ AND issue_date = '2025-03-01' $$,
                  $$ VALUES ('credit_note', '-254.46 SEK') $$,
                  'February''s 19 suspended days credited: -203.57 SEK net, -254.46 SEK with VAT');

-- January's invoice is paid on 2025-03-05: the stop is lifted from that day
SELECT lives_ok($$ SELECT pg_temp.pay_all((SELECT min(id) FROM invoices WHERE account_id = $$ || :s1 || $$), '2025-03-05') $$,
                'January paid on 2025-03-05');
SELECT is((SELECT status FROM subscriptions WHERE id = :sub), 'active', 'the stop is lifted: active');
SELECT results_eq($$ SELECT suspended_from, lifted_on FROM subscription_suspensions WHERE subscription_id = $$ || :sub,
                  $$ VALUES ('2025-02-10'::date, '2025-03-05'::date) $$, 'suspended from 10 February until 5 March');

-- March: suspended 1 .. 4 March, billed 5 .. 31 March = 27 of 31 days:
--   300.00 * 27 / 31 = 261.290... = 261.29 net, 65.32 VAT, 326.61 SEK
SELECT is(run_billing('2025-03-05'), 1, '2025-03-05: March is billed from the day of the lift');
SELECT is(run_billing('2025-04-01'), 1, '2025-04-01: April in full');
SELECT results_eq(
    $$ SELECT i.kind, i.issue_date, l.period, l.net::text, i.total::text
         FROM invoices i JOIN invoice_lines l ON l.account_id = i.account_id AND l.invoice_id = i.id
        WHERE i.account_id = $$ || :s1 || $$ ORDER BY i.id, l.id $$,
    $$ VALUES ('invoice',     '2025-01-01'::date, '[2025-01-01,2025-02-01)'::daterange, '300.00 SEK',  '375.00 SEK'),
              ('invoice',     '2025-02-01',       '[2025-02-01,2025-03-01)',            '300.00 SEK',  '375.00 SEK'),
              ('credit_note', '2025-03-01',       '[2025-02-01,2025-03-01)',            '-203.57 SEK', '-254.46 SEK'),
              ('invoice',     '2025-03-05',       '[2025-03-01,2025-04-01)',            '261.29 SEK',  '326.61 SEK'),
              ('invoice',     '2025-04-01',       '[2025-04-01,2025-05-01)',            '300.00 SEK',  '375.00 SEK') $$,
    'every document of the subscription: January and April in full, February up to the stop, March from the lift');
SELECT pg_temp.done('s1') AS done1 \gset

-- a payment dated ahead (received_on in the future) lifts the stop today, not later
SELECT pg_temp.account('s3', 'SE', 'SEK', 's_stop') AS s3 \gset
SELECT pg_temp.invoice('s3', '300.00 SEK', current_date - 60) AS inv3 \gset
SELECT run_dunning(current_date - 15) AS steps3 \gset
SELECT pg_temp.pay_all(:inv3, current_date + 5) AS pay3 \gset
SELECT results_eq($$ SELECT suspended_from, lifted_on FROM subscription_suspensions WHERE subscription_id = pg_temp.sub('s3') $$,
                  $$ VALUES (current_date - 15, current_date) $$, 'a payment dated 5 days ahead lifts the stop today');
SELECT pg_temp.done('s3') AS done3 \gset

-- a suspension set by hand holds the charges from today until it is lifted
SELECT pg_temp.account('s2', 'SE', 'SEK', 'd_quiet') AS s2 \gset
SELECT subscribe(:s2, 'd_SEK', 1, current_date - 40) AS sub2 \gset
SELECT set_subscription_status(:sub2, 'suspended', 'by hand') AS st2 \gset
SELECT results_eq($$ SELECT suspended_from, lifted_on FROM subscription_suspensions WHERE subscription_id = $$ || :sub2,
                  $$ VALUES (current_date, NULL::date) $$, 'set_subscription_status(suspended): held from today');
SELECT set_subscription_status(:sub2, 'active', 'by hand') AS st2 \gset
SELECT results_eq($$ SELECT suspended_from, lifted_on FROM subscription_suspensions WHERE subscription_id = $$ || :sub2,
                  $$ VALUES (current_date, current_date) $$, 'set_subscription_status(active) the same day: no day held');

-- the suspensions are for operators to read; BI readers see none of them
SELECT ok(has_table_privilege('subbilling_operator', 'subbilling.subscription_suspensions', 'SELECT')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.subscription_suspensions', 'INSERT')
          AND NOT has_table_privilege('subbilling_reader', 'subbilling.subscription_suspensions', 'SELECT'),
          'subscription_suspensions: SELECT for operators only');

SELECT * FROM finish();
ROLLBACK;
