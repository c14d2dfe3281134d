-- Dunning settings: tables, the shipped default policy and country rules,
-- step validation, the fee rules (cap, earliest day, number, currency) and
-- the late-payment interest formula with exact amounts.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(57);

-- ---------------------------------------------------------------- objects
SELECT has_table('subbilling', 'dunning_steps', 'table dunning_steps');
SELECT has_table('subbilling', 'dunning_actions', 'table dunning_actions');
SELECT has_table('subbilling', 'reference_rates', 'table reference_rates');
SELECT col_is_pk('subbilling', 'dunning_steps', ARRAY['policy_id', 'step_no'], 'dunning_steps keyed by (policy_id, step_no)');
SELECT col_is_pk('subbilling', 'dunning_actions', ARRAY['account_id', 'id'], 'dunning_actions keyed by (account_id, id): customer-owned');
SELECT col_is_unique('subbilling', 'dunning_actions', ARRAY['account_id', 'invoice_id', 'step_no'],
                     'each step runs once per invoice: UNIQUE (account_id, invoice_id, step_no)');
SELECT col_type_is('subbilling', 'dunning_steps', 'fees', 'price[]', 'step fees: one price per currency');
SELECT col_type_is('subbilling', 'country_settings', 'reminder_fee_caps', 'price[]', 'fee caps per currency');
SELECT col_type_is('subbilling', 'country_settings', 'late_interest_margin', 'numeric', 'interest margin in percentage points');
SELECT has_column('subbilling', 'billing_errors', 'invoice_id', 'billing_errors names the invoice of a dunning failure');
SELECT is((SELECT count(*) FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
            WHERE c.relname = 'dunning_actions' AND con.contype IN ('p', 'u', 'f')
              AND NOT (con.conkey[1] = (SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'account_id'))
              AND con.confrelid <> 'subbilling.dunning_policies'::regclass),
          0::bigint, 'every key of dunning_actions leads with account_id (except the reference to the global policy)');

-- ---------------------------------------------------------------- the default policy
SELECT results_eq($$ SELECT code, is_default, fee_terms_days FROM dunning_policies WHERE is_default $$,
                  $$ VALUES ('default', true, 10) $$, 'one shipped default policy, fee invoices due in 10 days');
SELECT results_eq(
    $$ SELECT s.step_no, s.days_after_due, s.action, s.fee_kind, s.charge_interest
         FROM dunning_steps s JOIN dunning_policies p ON p.id = s.policy_id WHERE p.code = 'default' ORDER BY s.step_no $$,
    $$ VALUES (1, 10, 'reminder', 'country', false), (2, 20, 'reminder', 'country', true),
              (3, 30, 'payment_stop', 'none', false), (4, 45, 'collection', 'none', true) $$,
    'default steps: reminder +10 with fee, reminder +20 with fee and interest, payment stop +30, collection +45 with interest');
SELECT throws_ok($$ INSERT INTO dunning_policies (code, name, is_default) VALUES ('second', 'Second', true) $$,
                 '23505', NULL, 'there is only one default policy');
INSERT INTO accounts (external_id, name, country, currency) VALUES ('s_none', 'No policy', 'SE', 'SEK');
INSERT INTO dunning_policies (code, name) VALUES ('s_own', 'Own');
INSERT INTO accounts (external_id, name, country, currency, dunning_policy_id)
VALUES ('s_own', 'Own policy', 'SE', 'SEK', (SELECT id FROM dunning_policies WHERE code = 's_own'));
SELECT is(subbilling_internal.dunning_policy_of((SELECT id FROM accounts WHERE external_id = 's_none')),
          (SELECT id FROM dunning_policies WHERE code = 'default'), 'an account without a policy gets the default');
SELECT is(subbilling_internal.dunning_policy_of((SELECT id FROM accounts WHERE external_id = 's_own')),
          (SELECT id FROM dunning_policies WHERE code = 's_own'), 'an account with a policy gets its own');

-- ---------------------------------------------------------------- country rules
SELECT results_eq(
    $$ SELECT country, reminder_fees::text, reminder_fee_caps::text, reminder_fee_max_count, reminder_fee_min_days,
              late_interest_margin
         FROM country_settings WHERE country IN ('SE', 'NO', 'DK', 'FI') ORDER BY country $$,
    $$ VALUES ('DK', '{"100.00 DKK"}', '{"100.00 DKK"}', 3, NULL::integer, NULL::numeric),
              ('FI', '{"5.00 EUR"}', '{"5.00 EUR"}', NULL, NULL, NULL),
              ('NO', '{"35.00 NOK"}', '{"35.00 NOK"}', 2, 14, 8),
              ('SE', '{"60.00 SEK"}', '{"60.00 SEK"}', NULL, NULL, 8) $$,
    'shipped country rules: SE 60 SEK cap and reference rate + 8, NO 35 NOK from day 14 at most twice, DK, FI caps');
SELECT results_eq($$ SELECT rate FROM reference_rates WHERE country = 'SE' AND valid @> '2024-03-15'::date $$,
                  $$ VALUES (4.00) $$, 'the Swedish reference rate of 2024H1 is 4.00');
SELECT throws_ok($$ INSERT INTO reference_rates (country, valid, rate) VALUES ('SE', '[2024-06-01,2024-08-01)', 3) $$,
                 '23P01', NULL, 'reference rates of one country do not overlap');
SELECT throws_ok($$ INSERT INTO reference_rates (country, valid, rate) VALUES ('XX', '[2024-06-01,2024-08-01)', 3) $$,
                 '23514', NULL, 'reference rates need a country code');
SELECT throws_ok($$ UPDATE country_settings SET reminder_fee_caps = '{"60.00 SEK","70.00 SEK"}' WHERE country = 'SE' $$,
                 '23514', 'reminder_fee_caps of country SE must list positive amounts, one per currency',
                 'a cap list has one price per currency');
SELECT throws_ok($$ UPDATE country_settings SET reminder_fees = '{"0.00 SEK"}' WHERE country = 'SE' $$,
                 '23514', 'reminder_fees of country SE must list positive amounts, one per currency',
                 'fees are positive');
SELECT throws_ok($$ UPDATE country_settings SET late_interest_margin = -1 WHERE country = 'SE' $$,
                 '23514', NULL, 'the margin is not negative');

-- ---------------------------------------------------------------- step validation
INSERT INTO dunning_policies (code, name) VALUES ('s_test', 'Test');
CREATE FUNCTION pg_temp.pol() RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT id FROM dunning_policies WHERE code = 's_test');
SELECT lives_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, fees)
                   VALUES (pg_temp.pol(), 1, 5, 'reminder', 'fixed', '{"100.00 SEK","10.00 EUR"}') $$,
                'a step with fixed fees in two currencies');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, fees)
                    VALUES (pg_temp.pol(), 2, 5, 'reminder', 'fixed', '{"100.00 SEK","10.00 SEK"}') $$,
                 '23514', 'step 2 of dunning policy ' || pg_temp.pol() || ' has two fees in one currency', 'one fee per currency');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, fees)
                    VALUES (pg_temp.pol(), 2, 5, 'reminder', 'fixed', '{"-1.00 SEK"}') $$,
                 '23514', 'step 2 of dunning policy ' || pg_temp.pol() || ' has a fee that is not positive', 'fees are positive');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind)
                    VALUES (pg_temp.pol(), 2, 5, 'reminder', 'fixed') $$,
                 '23514', NULL, 'fee_kind fixed needs fees');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action)
                    VALUES (pg_temp.pol(), 2, 5, 'dance') $$,
                 '23514', NULL, 'unknown action');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action)
                    VALUES (pg_temp.pol(), 2, -1, 'reminder') $$,
                 '23514', NULL, 'days_after_due is not negative');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind)
                    VALUES (pg_temp.pol(), 2, 90, 'write_off', 'country') $$,
                 '23514', NULL, 'a write-off carries no fee');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, charge_interest)
                    VALUES (pg_temp.pol(), 2, 90, 'write_off', true) $$,
                 '23514', NULL, 'a write-off charges no interest');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action) VALUES (pg_temp.pol(), 0, 5, 'reminder') $$,
                 '23514', NULL, 'step numbers start at 1 (0 is the overdue notice)');
SELECT throws_ok($$ INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action) VALUES (pg_temp.pol(), 1, 9, 'reminder') $$,
                 '23505', NULL, 'step numbers are unique per policy');
-- out of date order: checked at commit (here: when the constraint is made immediate)
SAVEPOINT order_check;
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action) VALUES (pg_temp.pol(), 2, 3, 'reminder');
SELECT throws_ok($$ SET CONSTRAINTS subbilling.dunning_steps_check_order IMMEDIATE $$,
                 '23514', 'the steps of dunning policy ' || pg_temp.pol() || ' are not in date order',
                 'a later step is not due before an earlier one (checked at commit)');
ROLLBACK TO SAVEPOINT order_check;
SAVEPOINT order_ok;
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action) VALUES (pg_temp.pol(), 2, 3, 'reminder');
UPDATE dunning_steps SET days_after_due = 2 WHERE policy_id = pg_temp.pol() AND step_no = 1;
SELECT lives_ok($$ SET CONSTRAINTS subbilling.dunning_steps_check_order IMMEDIATE $$,
                'steps can be reordered within a transaction');
ROLLBACK TO SAVEPOINT order_ok;

-- ---------------------------------------------------------------- fees
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('country', NULL, 'SE', 'SEK', 10, 0) $$,
                  $$ VALUES ('60.00 SEK', NULL::text) $$, 'SE standard fee: 60.00 SEK');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('fixed', '{"100.00 SEK"}', 'SE', 'SEK', 10, 0) $$,
                  $$ VALUES ('60.00 SEK', 'capped at 60.00 SEK (country SE), the step asks 100.00 SEK') $$,
                  'a fixed fee above the Swedish cap is capped at 60.00 SEK');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('fixed', '{"45.50 SEK"}', 'SE', 'SEK', 10, 5) $$,
                  $$ VALUES ('45.50 SEK', NULL::text) $$, 'a fee under the cap is charged as it is, whatever came before');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('fixed', '{"100.00 SEK","10.00 EUR"}', 'SE', 'EUR', 10, 0) $$,
                  $$ VALUES (NULL::text, 'country SE caps reminder fees, but not in EUR') $$,
                  'a Swedish cap has no EUR amount: no fee in EUR rather than an uncapped one');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('fixed', '{"100.00 SEK","10.00 EUR"}', 'DE', 'EUR', 10, 0) $$,
                  $$ VALUES ('10.00 EUR', NULL::text) $$, 'a country without rules: the step''s fee');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('fixed', '{"100.00 SEK"}', 'DE', 'EUR', 10, 0) $$,
                  $$ VALUES (NULL::text, 'the step has no fee in EUR') $$, 'no fee in the invoice''s currency');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('country', NULL, 'DE', 'EUR', 10, 0) $$,
                  $$ VALUES (NULL::text, 'country DE has no standard reminder fee in EUR') $$, 'no standard fee in that country');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('country', NULL, 'NO', 'NOK', 13, 0) $$,
                  $$ VALUES (NULL::text, 'country NO allows a reminder fee from day 14 after the due date, this is day 13') $$,
                  'Norway: no purregebyr before day 14');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('country', NULL, 'NO', 'NOK', 14, 1) $$,
                  $$ VALUES ('35.00 NOK', NULL::text) $$, 'Norway: 35.00 NOK on day 14, second fee');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('country', NULL, 'NO', 'NOK', 30, 2) $$,
                  $$ VALUES (NULL::text, 'country NO allows at most 2 reminder fees per invoice') $$,
                  'Norway: not a third fee');
SELECT results_eq($$ SELECT fee::text, note FROM subbilling_internal.dunning_fee('none', NULL, 'SE', 'SEK', 10, 0) $$,
                  $$ VALUES (NULL::text, NULL::text) $$, 'fee_kind none: no fee, nothing to explain');

-- ---------------------------------------------------------------- interest
-- 375.00 SEK for the 20 days after 2024-01-31 at 4.00 + 8 = 12 %: 375 * 240 / 36500 = 2.4657 -> 2.47
SELECT results_eq($$ SELECT interest::text, days, rate_days FROM late_payment_interest('SE', '375.00 SEK', '2024-01-31', '2024-02-20') $$,
                  $$ VALUES ('2.47 SEK', 20, 240.00) $$, 'SE: 375.00 SEK, 20 days at 12 %: 2.47 SEK');
-- over a change of the reference rate: 10 days at 12 % (Dec 22-31) and 10 at 3.00 + 8 = 11 % (Jan 1-10):
-- 1000 * (120 + 110) / 36500 = 6.3014 -> 6.30
SELECT results_eq($$ SELECT interest::text, days, rate_days FROM late_payment_interest('SE', '1000.00 SEK', '2024-12-21', '2025-01-10') $$,
                  $$ VALUES ('6.30 SEK', 20, 230.00) $$, 'SE: over New Year 2025 the rate goes from 12 % to 11 %: 6.30 SEK');
SELECT is((SELECT rates FROM late_payment_interest('SE', '1000.00 SEK', '2024-12-21', '2025-01-10')),
          '[{"to": "2024-12-31", "days": 10, "from": "2024-12-22", "rate": 12.00, "reference_rate": 4.00},
            {"to": "2025-01-10", "days": 10, "from": "2025-01-01", "rate": 11.00, "reference_rate": 3.00}]'::jsonb,
          'the rates used, per span');
-- NO: 12.5 % over 30 days on 1000.00 NOK: 1000 * 375 / 36500 = 10.2739 -> 10.27
SELECT results_eq($$ SELECT interest::text FROM late_payment_interest('NO', '1000.00 NOK', '2024-03-01', '2024-03-31') $$,
                  $$ VALUES ('10.27 NOK') $$, 'NO: 1000.00 NOK, 30 days at 12.5 %: 10.27 NOK');
-- one rounding, half away from zero: 383.25 SEK for one day at 2.00 + 8 = 10 % is 0.105 SEK -> 0.11
SELECT results_eq($$ SELECT interest::text FROM late_payment_interest('SE', '383.25 SEK', '2025-07-01', '2025-07-02') $$,
                  $$ VALUES ('0.11 SEK') $$, 'exactly half a minor unit rounds away from zero: 0.105 -> 0.11 SEK');
SELECT results_eq($$ SELECT interest::text FROM late_payment_interest('SE', '0.01 SEK', '2024-03-01', '2024-03-02') $$,
                  $$ VALUES ('0.00 SEK') $$, 'a tiny amount earns no interest');
SELECT results_eq($$ SELECT interest::text FROM late_payment_interest('SE', '100 JPY', '2024-01-31', '2024-02-20') $$,
                  $$ VALUES ('1 JPY') $$, 'in the invoice''s currency and its minor unit: 100 JPY -> 0.66 -> 1 JPY');
SELECT results_eq($$ SELECT interest::text, days FROM late_payment_interest('SE', '375.00 SEK', '2024-02-20', '2024-02-20') $$,
                  $$ VALUES ('0.00 SEK', 0) $$, 'no days, no interest');
SELECT throws_ok($$ SELECT * FROM late_payment_interest('SE', '375.00 SEK', '2022-12-20', '2023-01-10') $$,
                 '55000', 'no reference rate for country SE on 2022-12-21', 'a day without a reference rate is an error');
SELECT throws_ok($$ SELECT * FROM late_payment_interest('DK', '375.00 DKK', '2024-01-31', '2024-02-20') $$,
                 '55000', 'country DK has no late-payment interest margin', 'a country without a margin charges no interest');
SELECT throws_ok($$ SELECT * FROM late_payment_interest('SE', '375.00 SEK', '2024-02-20', '2024-02-19') $$,
                 '22023', 'late_payment_interest needs an amount and finite dates with from_date <= to_date',
                 'the span runs forward');

SELECT * FROM finish();
ROLLBACK;
