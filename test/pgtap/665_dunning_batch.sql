-- The dunning batch: claims in batches (more = a full batch), isolates a
-- failing invoice (recorded in billing_errors, retried on a later date),
-- runs in the worker cycle; argument checks; labels and privileges.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(34);

-- ---------------------------------------------------------------- batches
SELECT count(pg_temp.account('b' || g)) AS n FROM generate_series(1, 3) g \gset
CREATE TEMP TABLE b AS
SELECT g, pg_temp.invoice('b' || g, '300.00 SEK', '2024-01-01') AS inv FROM generate_series(1, 3) g;
SELECT results_eq($$ SELECT * FROM run_dunning_batch(2, '2024-02-01') $$, $$ VALUES (2, 0, true) $$,
                  'a batch of 2: two notices, more to do');
SELECT results_eq($$ SELECT * FROM run_dunning_batch(2, '2024-02-01') $$, $$ VALUES (1, 0, false) $$,
                  'the next batch takes the third, and that was all');
SELECT results_eq($$ SELECT * FROM run_dunning_batch(2, '2024-02-01') $$, $$ VALUES (0, 0, false) $$,
                  'then nothing');
SELECT results_eq($$ SELECT * FROM run_dunning_batch(5, '2024-02-10') $$, $$ VALUES (3, 0, false) $$,
                  'three reminders in one batch');
SELECT is((SELECT count(*) FROM dunning_actions WHERE invoice_id IN (SELECT inv FROM b)), 6::bigint, 'six actions');

-- ---------------------------------------------------------------- a failing invoice
CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.invoice_id = (SELECT inv FROM b WHERE g = 2) THEN
        RAISE EXCEPTION 'refused for the test' USING ERRCODE = 'SBT42', DETAIL = 'A test trigger.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON dunning_actions FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
SELECT results_eq($$ SELECT * FROM run_dunning_batch(10, '2024-02-20') $$, $$ VALUES (2, 1, false) $$,
                  'the batch takes two second reminders and reports one error');
SELECT results_eq($$ SELECT account_id, subscription_id, invoice_id, as_of, sqlstate, message, detail, resolved_at
                       FROM billing_errors $$,
                  $$ SELECT pg_temp.acct('b2'), NULL::bigint, inv, '2024-02-20 00:00+00'::timestamptz, 'SBT42',
                            'refused for the test', 'A test trigger.', NULL::timestamptz FROM b WHERE g = 2 $$,
                  'billing_errors: account, invoice (no subscription: billing resolves those), dunning date, SQLSTATE, message, detail');
SELECT is((SELECT count(*) FROM dunning_actions WHERE invoice_id = (SELECT inv FROM b WHERE g = 2)), 2::bigint,
          'the failed step left nothing behind');
SELECT is((SELECT count(*) FROM invoices WHERE account_id = pg_temp.acct('b2')), 2::bigint,
          'not even its fee invoice');
SELECT is((SELECT count(*) FROM invoices WHERE account_id IN (pg_temp.acct('b1'), pg_temp.acct('b3'))), 6::bigint,
          'the others got their second fee invoice');
SELECT is(run_dunning('2024-02-20'), 0, 'not retried on the same date');
SELECT is((SELECT count(*) FROM billing_errors), 1::bigint, 'so no second error');
SELECT is((SELECT open_errors FROM worker_status), 1::bigint, 'worker_status counts it');
DROP TRIGGER refuse ON dunning_actions;
SELECT is(run_dunning('2024-02-21'), 1, 'the next day, once the cause is gone, the step is taken');
SELECT ok((SELECT resolved_at IS NOT NULL FROM billing_errors WHERE invoice_id = (SELECT inv FROM b WHERE g = 2)),
          'and its error is resolved');
SELECT results_eq($$ SELECT executed_on, fee::text, interest::text FROM dunning_actions
                      WHERE invoice_id = (SELECT inv FROM b WHERE g = 2) AND step_no = 2 $$,
                  $$ VALUES ('2024-02-21'::date, '60.00 SEK', '2.59 SEK') $$,
                  'with interest for the 21 days it is overdue by then (375.00 * 12 % * 21 / 365 = 2.59)');

-- an error while writing a fee invoice (numbering, booking ...) is isolated the same way
CREATE FUNCTION pg_temp.refuse_fee() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'fee' AND NEW.account_id = pg_temp.acct('b3') THEN
        RAISE EXCEPTION 'no fee lines today' USING ERRCODE = 'SBT43';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_fee BEFORE INSERT ON invoice_lines FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_fee();
SELECT pg_temp.account('b4') AS b4 \gset
INSERT INTO b SELECT 4, pg_temp.invoice('b4', '300.00 SEK', '2024-01-10');
SELECT results_eq($$ SELECT * FROM run_dunning_batch(10, '2024-03-01') $$, $$ VALUES (4, 0, false) $$,
                  '2024-03-01: four steps, no error (a stop needs no fee invoice)');
SELECT results_eq($$ SELECT a.external_id, d.step_no, d.action FROM dunning_actions d JOIN accounts a ON a.id = d.account_id
                      WHERE d.executed_on = '2024-03-01' ORDER BY 1, 2 $$,
                  $$ VALUES ('b1', 3, 'payment_stop'), ('b3', 3, 'payment_stop'), ('b4', 0, 'overdue'), ('b4', 1, 'reminder') $$,
                  'b1 and b3 are stopped; b4 (21 days overdue) gets its notice and first reminder; b2''s stop is due a day later, 10 days after its late second reminder');
SELECT pg_temp.done('b1'); SELECT pg_temp.done('b2');
SELECT results_eq($$ SELECT * FROM run_dunning_batch(10, '2024-03-16') $$, $$ VALUES (1, 1, false) $$,
                  '2024-03-16: b4''s reminder, but b3''s collection (interest on a fee line) fails');
SELECT results_eq($$ SELECT sqlstate, message FROM billing_errors WHERE invoice_id = (SELECT inv FROM b WHERE g = 3) $$,
                  $$ VALUES ('SBT43', 'no fee lines today') $$, 'recorded');
DROP TRIGGER refuse_fee ON invoice_lines;
SELECT pg_temp.done('b3'); SELECT pg_temp.done('b4');

-- ---------------------------------------------------------------- the worker cycle
SELECT pg_temp.account('b5') AS b5 \gset
INSERT INTO b SELECT 5, pg_temp.invoice('b5', '300.00 SEK', '2024-04-01');
SELECT results_eq($$ SELECT dunning_steps FROM run_worker_cycle('2024-05-11 12:00+00') $$, $$ VALUES (2) $$,
                  'run_worker_cycle runs dunning: b5''s notice and first reminder');
SELECT is((SELECT dunning_steps FROM worker_runs ORDER BY id DESC LIMIT 1), 2, 'worker_runs counts the dunning steps');

-- ---------------------------------------------------------------- arguments
SELECT throws_ok($$ SELECT * FROM run_dunning_batch(0, '2024-02-01') $$, '22023',
                 'batch_size must be a positive number of invoices', 'batch_size > 0');
SELECT throws_ok($$ SELECT * FROM run_dunning_batch(10, NULL) $$, '22023', 'as_of must be a finite date', 'as_of not NULL');
SELECT throws_ok($$ SELECT run_dunning('infinity') $$, '22023', 'as_of must be a finite date', 'as_of finite');

-- ---------------------------------------------------------------- labels and privileges
SELECT function_returns('subbilling', 'run_dunning', ARRAY['date'], 'integer', 'run_dunning(date) returns integer');
SELECT volatility_is('subbilling', 'run_dunning', ARRAY['date'], 'volatile', 'run_dunning is volatile');
SELECT is_definer('subbilling', 'run_dunning', ARRAY['date'], 'run_dunning is SECURITY DEFINER');
SELECT is_definer('subbilling', 'run_dunning_batch', ARRAY['integer', 'date'], 'run_dunning_batch is SECURITY DEFINER');
SELECT volatility_is('subbilling', 'late_payment_interest', ARRAY['text', 'price', 'date', 'date'], 'stable',
                     'late_payment_interest is stable');
SELECT ok(NOT has_function_privilege('public', 'subbilling.run_dunning(date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling.run_dunning_batch(integer, date)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'subbilling_internal.after_invoice_paid(bigint, bigint)', 'EXECUTE'),
          'PUBLIC may not run dunning nor lift stops');
SELECT ok(has_function_privilege('subbilling_operator', 'subbilling.run_dunning(date)', 'EXECUTE')
          AND has_function_privilege('subbilling_operator', 'subbilling.run_dunning_batch(integer, date)', 'EXECUTE')
          AND has_table_privilege('subbilling_operator', 'subbilling.dunning_steps', 'INSERT')
          AND has_table_privilege('subbilling_operator', 'subbilling.reference_rates', 'UPDATE')
          AND has_table_privilege('subbilling_operator', 'subbilling.dunning_actions', 'SELECT'),
          'operators run dunning, maintain steps and reference rates, read actions');
SELECT ok(NOT has_function_privilege('subbilling_operator', 'subbilling_internal.dunning_invoice(bigint, bigint, date)', 'EXECUTE')
          AND NOT has_table_privilege('subbilling_operator', 'subbilling.dunning_actions', 'INSERT'),
          'operators do not take single steps or write actions by hand');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('subbilling', 'subbilling_internal')
              AND (p.proname LIKE 'dunning%' OR p.proname IN ('run_dunning', 'late_payment_interest', 'price_in_currency',
                                                             'after_invoice_paid', 'country_settings_validate_dunning'))
              AND obj_description(p.oid, 'pg_proc') IS NULL), 0, 'every dunning function has a comment');

SELECT * FROM finish();
ROLLBACK;
