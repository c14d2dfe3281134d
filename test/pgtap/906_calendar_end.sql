-- The end of the calendar: every public function taking a date or a time
-- either works with extreme but accepted inputs or refuses with a documented
-- SQLSTATE.  Dunning and the interest formula took any finite date and failed
-- with 22008 past the timestamp range (294276): they take the dates billing
-- accepts (22023).  The period functions' 22008 near 5874897-12-31 and the
-- 22008 of a timestamp range too long to prorate are documented
-- (docs/billing_period.md, docs/proration.md).  Accepted extremes work: a
-- subscription starting 10 years from today on a 1000-year plan, a trial of
-- 3650 days from there, billing on the last accepted day.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SELECT plan(19);

-- ---------------------------------------------------------------- dunning and interest
SELECT throws_ok($$SELECT run_dunning('294277-01-01')$$, '22023', 'as_of 294277-01-01 is outside the accepted dates',
                 'run_dunning past the timestamp range: 22023, not 22008');
SELECT throws_ok($$SELECT run_dunning('5874897-12-31')$$, '22023', 'as_of 5874897-12-31 is outside the accepted dates',
                 'run_dunning on the last date: 22023');
SELECT throws_ok($$SELECT run_dunning('9999-12-31')$$, '22023', 'as_of 9999-12-31 is outside the accepted dates',
                 'run_dunning dated 9999 is refused like billing');
SELECT throws_ok($$SELECT run_dunning('1999-12-31')$$, '22023', 'as_of 1999-12-31 is outside the accepted dates',
                 'run_dunning before 2000');
SELECT throws_ok($$SELECT * FROM run_dunning_batch(10, '5874897-12-31')$$, '22023',
                 'as_of 5874897-12-31 is outside the accepted dates', 'run_dunning_batch on the last date: 22023');
SELECT lives_ok($$SELECT run_dunning((current_date + interval '10 years')::date)$$, 'run_dunning on the last accepted day');
SELECT throws_ok($$SELECT * FROM late_payment_interest('SE', '100.00 SEK', '2025-01-01', '5874897-12-31')$$, '22023',
                 'to_date 5874897-12-31 is outside the accepted dates', 'late_payment_interest to the last date: 22023, not 22008');
SELECT throws_ok($$SELECT * FROM late_payment_interest('SE', '100.00 SEK', '1999-12-31', '2025-01-01')$$, '22023',
                 'from_date 1999-12-31 is outside the accepted dates', 'late_payment_interest from before 2000');

-- ---------------------------------------------------------------- documented 22008 of the calendar functions
SELECT throws_ok($$SELECT period_start('5874897-12-01', 'monthly', 1)$$, '22008', 'date out of range',
                 'period_start past the last date: 22008 (documented)');
SELECT throws_ok($$SELECT period_of('2025-01-31', '1 month', '5874897-12-31')$$, '22008', 'date out of range',
                 'period_of whose end is past the last date: 22008 (documented)');
SELECT is(period_index('4713-01-01 BC', '1 day', '5874897-12-31'), 2147483455, 'period_index across the whole calendar fits');
SELECT throws_ok($$SELECT prorate('10.00 SEK', tstzrange('4713-01-01 BC', '294276-12-31'), tstzrange('2025-01-01', '2025-02-01'))$$,
                 '22008', NULL, 'a timestamp range too long to prorate: 22008 (documented)');
SELECT is(prorate('10.00 SEK', daterange('4713-01-01 BC', '5874897-12-31'), daterange('2025-01-01', '2025-02-01')), '0.00 SEK',
          'a date range over the whole calendar prorates');

-- ---------------------------------------------------------------- accepted extremes bill
INSERT INTO products (code, name, tax_rate) VALUES ('ce', 'Calendar end', 25);
INSERT INTO plans (code, product_id, name, billing_period, price, trial_days)
SELECT v.code, p.id, v.code, v.bp::billing_period, '10.00 SEK', v.trial
  FROM products p, (VALUES ('ce_millennium', '1000 years', 0), ('ce_days', '365000 days', 0), ('ce_trial', '1 month', 3650)) v(code, bp, trial)
 WHERE p.code = 'ce';
INSERT INTO accounts (external_id, name, country, currency, time_zone)
VALUES ('ce_kiritimati', 'Line Islands', 'SE', 'SEK', 'Pacific/Kiritimati'), ('ce_pago', 'Pago Pago', 'SE', 'SEK', 'Pacific/Pago_Pago');
SELECT lives_ok($$SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'ce_kiritimati'), 'ce_millennium', 1,
                                   (current_date + interval '10 years')::date),
                         subscribe((SELECT id FROM accounts WHERE external_id = 'ce_pago'), 'ce_days', 1,
                                   (current_date + interval '10 years')::date),
                         subscribe((SELECT id FROM accounts WHERE external_id = 'ce_pago'), 'ce_trial', 1,
                                   (current_date + interval '10 years')::date)$$,
                'subscriptions starting on the last accepted day: 1000 years, 365000 days, a 3650-day trial');
SELECT is((SELECT count(*) FROM preview_invoice((SELECT max(id) FROM subscriptions WHERE account_id = (SELECT id FROM accounts WHERE external_id = 'ce_kiritimati')),
                                                (current_date + interval '10 years')::date)), 1::bigint,
          'preview on the last accepted day: one period of 1000 years');
-- 23:00 UTC: the last accepted day in Pago Pago (UTC-11), the day after in Kiritimati (UTC+14)
SELECT is(run_billing((current_date + interval '10 years 23 hours')::timestamptz), 2,
          'billing late on the last accepted day, in zones 11 hours behind and 14 ahead: the two paid periods');
SELECT results_eq($$SELECT upper(l.period) - lower(l.period) FROM invoice_lines l JOIN subscriptions s ON s.id = l.subscription_id
                     JOIN plans p ON p.id = (SELECT i.plan_id FROM subscription_items i WHERE i.subscription_id = s.id LIMIT 1)
                    WHERE p.code = 'ce_days'$$,
                  $$VALUES (365000)$$, 'the 365000-day period ends in year 3036+1000');
SELECT throws_ok($$SELECT run_billing('294276-12-31 23:59:59+00')$$, '22023', 'as_of 294276-12-31 is outside the accepted dates',
                 'billing at the last timestamp: 22023');
SELECT throws_ok($$SELECT record_usage((SELECT max(id) FROM subscriptions), 'ce_trial', 1, '294276-12-31 23:59:59+00', 'k')$$, '22023',
                 'at 294276-12-31 is outside the accepted dates', 'usage at the last timestamp, in a zone 14 hours ahead: 22023');

SELECT * FROM finish();
ROLLBACK;
