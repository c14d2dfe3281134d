-- The accepted dates (2000-01-01 to 10 years after today, one check, 22023)
-- in billing, payments and the lifecycle: a start in year 1, a billing run
-- dated 9999 and a payment dated 0001-01-01 are refused and write nothing.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(23);
\ir 300_fixture.psql

SELECT isnt(subscribe(pg_temp.acct('t_se'), 't_basic', 1, pg_temp.d(-5)), NULL, 'a subscription to work on');

SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se2'), 't_basic', 1, '0001-01-01')$$, '22023',
                       'start_date 0001-01-01 is outside the accepted dates', 'subscribe: a start in year 1');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se2'), 't_basic', 1, '1999-12-31')$$, '22023',
                       'start_date 1999-12-31 is outside the accepted dates', 'subscribe: the day before 2000-01-01');
SELECT pg_temp.refused($$SELECT subscribe(pg_temp.acct('t_se2'), 't_basic', 1, (current_date + interval '10 years 1 day')::date)$$, '22023',
                       format('start_date %s is outside the accepted dates', (current_date + interval '10 years 1 day')::date),
                       'subscribe: more than 10 years ahead');
SELECT pg_temp.refused($$SELECT change_plan(pg_temp.sub('t_se'), 't_pro', '9999-12-31')$$, '22023',
                       'effective 9999-12-31 is outside the accepted dates', 'change_plan: 9999-12-31');
SELECT pg_temp.refused($$SELECT change_quantity(pg_temp.sub('t_se'), 2, '9999-12-31')$$, '22023',
                       'effective 9999-12-31 is outside the accepted dates', 'change_quantity: 9999-12-31');
SELECT pg_temp.refused($$SELECT pause(pg_temp.sub('t_se'), '0001-01-01', NULL)$$, '22023',
                       'from_date 0001-01-01 is outside the accepted dates', 'pause: year 1');
SELECT pg_temp.refused($$SELECT cancel(pg_temp.sub('t_se'), '9999-12-31')$$, '22023',
                       'effective 9999-12-31 is outside the accepted dates', 'cancel: 9999-12-31');
SELECT pg_temp.refused($$SELECT add_addon(pg_temp.sub('t_se'), 't_support', 1, '0001-01-01')$$, '22023',
                       'effective 0001-01-01 is outside the accepted dates', 'add_addon: year 1');

-- billing and payments
SELECT throws_ok($$SELECT run_billing('9999-12-31')$$, '22023', 'as_of 9999-12-31 is outside the accepted dates',
                 'run_billing dated 9999: refused');
SELECT is((SELECT count(*) FROM invoices), 0::bigint, 'no invoice written');
SELECT throws_ok($$SELECT run_billing('0001-01-01 12:00+00')$$, '22023', 'as_of 0001-01-01 is outside the accepted dates',
                 'run_billing dated year 1: refused');
SELECT ok(run_billing() >= 0, 'run_billing today: fine');
SELECT throws_ok($$SELECT run_payment_retries('9999-12-31')$$, '22023', NULL, 'run_payment_retries dated 9999: refused');
SELECT throws_ok($$SELECT payment_failed(1, 'x', '0001-01-01')$$, '22023', 'failed_on 0001-01-01 is outside the accepted dates',
                 'payment_failed dated year 1: refused');

SELECT * FROM finish();
ROLLBACK;
