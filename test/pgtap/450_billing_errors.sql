-- A subscription that makes billing fail is recorded in billing_errors and
-- skipped; the others of its batch are billed; it is retried the next day.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 400_fixture.psql

SELECT plan(14);

-- a plan whose charge overflows the price type (22003) for a large quantity
INSERT INTO plans (code, product_id, name, billing_period, price)
VALUES ('b_huge', (SELECT id FROM products WHERE code = 'b_saas'), 'Huge', '1 month', '90000000000000000.00 SEK');
SELECT pg_temp.account('ok1');
SELECT pg_temp.account('bad');
SELECT pg_temp.account('ok2');
SELECT subscribe(pg_temp.acct('ok1'), 'b_m300', 1, '2024-01-01');
SELECT subscribe(pg_temp.acct('bad'), 'b_huge', 1000, '2024-01-01');
SELECT subscribe(pg_temp.acct('ok2'), 'b_m600', 1, '2024-01-01');
SELECT throws_ok($$ SELECT * FROM preview_invoice(pg_temp.sub('bad'), '2024-01-01') $$, '22003', NULL,
                 'the bad subscription''s charge overflows');

SELECT results_eq($$ SELECT * FROM run_billing_batch(10, '2024-01-01 08:00+00') $$, $$ VALUES (2, 1, false) $$,
                  'the batch bills two and reports one error');
SELECT is((SELECT count(*) FROM invoices WHERE account_id IN (pg_temp.acct('ok1'), pg_temp.acct('ok2'))), 2::bigint,
          'the others are billed');
SELECT is((SELECT count(*) FROM invoices WHERE account_id = pg_temp.acct('bad')), 0::bigint,
          'the failing one is not');
SELECT results_eq(
    $$ SELECT account_id, subscription_id, as_of, sqlstate, resolved_at FROM billing_errors $$,
    $$ SELECT pg_temp.acct('bad'), pg_temp.sub('bad'), '2024-01-01 08:00+00'::timestamptz, '22003', NULL::timestamptz $$,
    'billing_errors: account, subscription, as_of and SQLSTATE');
SELECT ok((SELECT message FROM billing_errors) LIKE '%out of range%', 'billing_errors: the message');
SELECT is((SELECT next_bill_on FROM subscriptions WHERE id = pg_temp.sub('bad')), '2024-01-02'::date,
          'the failing subscription is retried the next day');
SELECT is(run_billing('2024-01-01 20:00+00'), 0, 'not again the same day');
SELECT is((SELECT count(*) FROM billing_errors), 1::bigint, 'so no second error that day');
SELECT is((SELECT open_errors FROM worker_status), 1::bigint, 'worker_status counts the open error');

-- an error raised while writing (a trigger that refuses one subscription's lines)
SELECT pg_temp.account('ok3');
SELECT pg_temp.account('trig');
SELECT subscribe(pg_temp.acct('ok3'), 'b_m300', 1, '2024-01-01');
SELECT subscribe(pg_temp.acct('trig'), 'b_m300', 1, '2024-01-01');
CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.subscription_id = pg_temp.sub('trig') THEN
        RAISE EXCEPTION 'refused for the test' USING ERRCODE = 'SBT42', DETAIL = 'A test trigger.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON invoice_lines FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
SELECT is(run_billing('2024-01-02'), 1, 'run_billing goes on past a failing subscription');
SELECT results_eq($$ SELECT sqlstate, message, detail FROM billing_errors WHERE subscription_id = pg_temp.sub('trig') $$,
                  $$ VALUES ('SBT42', 'refused for the test', 'A test trigger.') $$,
                  'billing_errors: SQLSTATE, message and detail of the failure');
DROP TRIGGER refuse ON invoice_lines;
SELECT is(run_billing('2024-01-03'), 1, 'once the cause is gone, it is billed the next day');
SELECT is((SELECT count(*) FROM (SELECT series_id FROM invoices GROUP BY series_id
                                  HAVING max(number_seq) - min(number_seq) + 1 <> count(*)) g), 0::bigint,
          'failures leave no gap in the numbering');

SELECT * FROM finish();
ROLLBACK;
